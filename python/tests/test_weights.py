"""Neck.weights(): the weights the library loaded, by canonical name, equal to what was written,
whatever the checkpoint's format and naming (safetensors, PyTorch zip, sharded safetensors,
Transformers names, F16/BF16 widened to float32); and the naming rules the library applies
(which prefix and group it takes), which Python no longer re-derives. Also: the runtime import
path never imports the benchmark tree."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torchzip
from sam3neck import InvalidArgumentError, Neck, Sam3NeckError, _lib, checkpoint, reference

FIX = Path(__file__).resolve().parents[2] / "Tests" / "fixtures"
PREFIX = checkpoint.DEFAULT_PREFIX


def _canonical_names():
    return [_lib.get_lib().sam3_neck_experimental_tensor_name(i).decode() for i in range(22)]


def assert_same_weights(got, want):
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert got[k].dtype == np.float32, k
        assert got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_names_are_the_writers_canonical_names():
    names = _canonical_names()
    assert _lib.get_lib().sam3_neck_experimental_tensor_name(22) is None
    assert names == list(checkpoint.neck_tensor_shapes(16, 8))  # same names, same order


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_safetensors_weights_are_the_stored_values(tmp_path, dtype):
    path = tmp_path / f"n_{dtype}.safetensors"
    written = checkpoint.write_synthetic_checkpoint(path, 16, 8, seed=4, dtype=dtype)
    with Neck(path) as neck:
        got = neck.weights()
    assert_same_weights(got, checkpoint.canonical(written))
    if dtype == "BF16":  # widened: every value's low 16 bits are zero, and it is not the F32 value
        bits = np.concatenate([v.ravel() for v in got.values()]).view(np.uint32)
        assert not np.any(bits & 0xFFFF)
        f32 = checkpoint.canonical(checkpoint.synthetic_neck(16, 8, seed=4))
        assert any(not np.array_equal(got[k], f32[k]) for k in f32)


def test_sam2_neck_weights(tmp_path):
    path = tmp_path / "both.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, seed=5)
    stored = checkpoint.load_safetensors(path)
    with Neck(path, neck="sam2") as neck:
        assert_same_weights(neck.weights(), checkpoint.canonical(stored, "sam2_convs", PREFIX))


def test_torch_zip_weights(tmp_path):
    neck = checkpoint.synthetic_neck(16, 8, seed=6, group=None)
    arrays = {PREFIX + "convs." + k: v for k, v in neck.items()}
    arrays["detector.backbone.vision_backbone.trunk.pos_embed"] = np.ones((2, 3), np.float32)
    path = tmp_path / "n.pt"
    torchzip.write_checkpoint(path, arrays, wrap="model")
    with Neck(path) as n:
        assert_same_weights(n.weights(), neck)
    with Neck.from_bytes(path.read_bytes()) as n:
        assert_same_weights(n.weights(), neck)


@pytest.fixture(scope="module")
def expected():
    with np.load(FIX / "expected.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("kind", ["sam3", "sam2"])
@pytest.mark.parametrize(
    "name,dtype",
    [
        ("torch_plain_f32.pt", "f32"),
        ("torch_model_bf16.pt", "bf16"),
        ("hf_neck.safetensors", "f32"),
        ("sharded", "f32"),
        ("sharded/model.safetensors.index.json", "f32"),
    ],
)
def test_fixture_weights_are_what_pytorch_wrote(expected, name, dtype, kind):
    """Real PyTorch / Transformers / sharded files (Tests/fixtures); expected.npz holds each neck's
    weights as float32 (bf16 ones widened)."""
    head = f"{kind}_{dtype}/"
    want = {k[len(head) :]: v for k, v in expected.items() if k.startswith(head) and "torch_level" not in k}
    assert len(want) == 22
    with Neck(FIX / name, neck=kind) as neck:
        got = neck.weights()
    assert_same_weights(got, want)
    # what the demo does: the reference from these weights matches the library's run
    x = expected["x"]
    with Neck(FIX / name, neck=kind) as neck:
        neck.compile(x.shape[2], x.shape[3], x.shape[0], precision="strict")
        out = neck.run(x)
    for lv, (feat, _) in zip(out, reference.forward(got, x)):
        assert reference.normalised_error(lv.features, feat) <= reference.TOLERANCE["strict"]


def test_weights_of_a_closed_neck_raise(tmp_path):
    path = tmp_path / "n.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, extras=False)
    neck = Neck(path)
    neck.close()
    with pytest.raises(Sam3NeckError, match="closed"):
        neck.weights()


# -- naming: the library's rules, as Neck sees them ------------------------------------------------


def _save(path, tensors):
    checkpoint.save_safetensors(path, tensors)
    return path


@pytest.mark.parametrize("prefix", [PREFIX, "backbone.vision_backbone.", "vision_backbone.", ""])
def test_known_prefixes_are_found(tmp_path, prefix):
    convs = checkpoint.synthetic_neck(8, 4, seed=0, group=None)
    tensors = {prefix + "convs." + k: v for k, v in convs.items()}
    tensors["detector.backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight"] = np.zeros((3, 2), np.float32)
    path = _save(tmp_path / "p.safetensors", tensors)
    for given in (None, prefix):
        with Neck(path, prefix=given) as neck:
            assert_same_weights(neck.weights(), convs)
    with pytest.raises(Sam3NeckError) as e:
        Neck(path, prefix="nope.")
    assert e.value.status == _lib.ERR_MISSING_TENSOR


def test_group_is_a_whole_name_component(tmp_path):
    convs = checkpoint.synthetic_neck(8, 4, seed=0, group=None)
    sam2 = checkpoint.synthetic_neck(8, 4, seed=1, group=None)
    tensors = {PREFIX + "sam2_convs." + k: v for k, v in sam2.items()}
    tensors.update({PREFIX + "convs." + k: v for k, v in convs.items()})
    path = _save(tmp_path / "both.safetensors", tensors)
    with Neck(path) as neck:
        assert_same_weights(neck.weights(), convs)
    with Neck(path, neck="sam2") as neck:
        assert_same_weights(neck.weights(), sam2)
    # only the tracker neck present: the detection neck ("convs") is not found in "sam2_convs"
    only = _save(tmp_path / "only.safetensors", {PREFIX + "sam2_convs." + k: v for k, v in sam2.items()})
    with pytest.raises(Sam3NeckError) as e:
        Neck(only)
    assert e.value.status == _lib.ERR_MISSING_TENSOR


def test_several_prefixes_need_a_choice(tmp_path):
    a = checkpoint.synthetic_neck(8, 4, seed=0, group=None)
    b = checkpoint.synthetic_neck(8, 4, seed=1, group=None)
    tensors = {"a.convs." + k: v for k, v in a.items()}
    tensors.update({"b.convs." + k: v for k, v in b.items()})
    path = _save(tmp_path / "two.safetensors", tensors)
    with pytest.raises(Sam3NeckError, match="prefix"):
        Neck(path)
    with Neck(path, prefix="b.") as neck:
        assert_same_weights(neck.weights(), b)


# -- compile values: the library's check, Python's documented ValueError ----------------------------


def test_refused_compile_values_are_value_errors_with_the_library_status(tmp_path):
    path = tmp_path / "n.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, extras=False)
    with Neck(path) as neck:
        with pytest.raises(InvalidArgumentError, match="level 3") as e:
            neck.compile(1, 4)
        assert isinstance(e.value, ValueError) and e.value.status == _lib.ERR_SHAPE
        with pytest.raises(InvalidArgumentError, match="height") as e:
            neck.compile(40000, 4)
        assert e.value.status == _lib.ERR_INVALID_ARGUMENT
        assert not neck.compiled
        neck.compile(1, 4, levels=(0, 1, 2))  # without level 3 the same grid compiles
        assert neck.compiled


# -- the runtime import path ----------------------------------------------------------------------


def _modules_after(code):
    p = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    return set(p.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import sam3neck",
        "import sam3neck; sam3neck.__version__; sam3neck.Neck",
        "import sam3neck.__main__ as m\ntry:\n    m.main(['run', '--help'])\nexcept SystemExit:\n    pass",
        "import sam3neck.__main__ as m\ntry:\n    m.main(['--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_runtime_never_imports_the_bench_tree(code):
    mods = _modules_after(code)
    assert "sam3neck" in mods
    assert not {m for m in mods if m == "sam3neck.bench" or m.startswith("sam3neck.bench.")}


def test_the_check_above_can_fail():
    mods = _modules_after(
        "import sam3neck.__main__ as m\ntry:\n    m.main(['bench', '--help'])\nexcept SystemExit:\n    pass"
    )
    assert "sam3neck.bench" in mods and "sam3neck.bench.harness" in mods


def test_version_is_the_headers():
    header = (Path(__file__).resolve().parents[2] / "include" / "sam3_neck.h").read_text()
    import re

    parts = [
        re.search(rf"^#define SAM3_NECK_VERSION_{p}\s+(\d+)\s*$", header, re.M).group(1)
        for p in ("MAJOR", "MINOR", "PATCH")
    ]
    import sam3neck

    assert sam3neck.__version__ == ".".join(parts) == sam3neck.library_version()
