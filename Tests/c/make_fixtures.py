#!/usr/bin/env python3
"""Writes the fixtures of the C API test (Tests/c/test_api/).

    python3 Tests/c/make_fixtures.py OUTDIR

Uses the project's Python package (python/sam3neck): its synthetic checkpoint writer, its
safetensors writer and its float64 NumPy reference. Everything is tiny (trunk_dim 16, d_model 8,
batch 2, an odd non-square 7 x 5 grid) and seeded, so the fixtures are the same on every run.

Files (raw arrays are little-endian, C order):
  meta.txt                      "key value" lines: trunk_dim d_model batch height width
                                missing_tensor_name bad_shape_tensor_name dtype_tensor_name
  input.f32                     float32 [B, C, H, W]
  tiny.safetensors              F32 checkpoint, prefix detector.backbone.vision_backbone., with the
                                tracker neck (sam2_convs) and unrelated tensors beside the neck
  ref_level{i}.f64              float64 [B, d, h_i, w_i] reference features of tiny's "convs"
  pos_level{i}.f64              float64 [1, d, h_i, w_i] reference position encodings
  ref_sam2_level{i}.f64         reference features of tiny's "sam2_convs"
  tiny_f16.safetensors, ref_f16_level{i}.f64     the same neck stored as F16 (ref of the rounded values)
  tiny_bf16.safetensors, ref_bf16_level{i}.f64   ... as BF16
  noprefix.safetensors          only the neck, names "convs.*"
  short_prefix.safetensors      only the neck, names "vision_backbone.convs.*"
  custom_prefix.safetensors     only the neck, names "model.backbone.convs.*" (not a known prefix)
  sam2_only.safetensors         only "backbone.vision_backbone.sam2_convs.*"
  missing_tensor.safetensors    tiny without one needed tensor (meta: missing_tensor_name)
  bad_shape.safetensors         tiny with one tensor of a wrong shape (meta: bad_shape_tensor_name)
  bad_dtype.safetensors         tiny with one needed tensor stored as I32 (meta: dtype_tensor_name)
  garbage.safetensors           not a safetensors file
  truncated.safetensors         the first half of tiny.safetensors
  torch_plain_f32.pt, torch_model_bf16.pt, torch_legacy.pt, hf_neck.safetensors, sharded/
                                copies of the checkpoints real PyTorch wrote (Tests/fixtures/)
  ref_pt_{f32,bf16}_level{i}.f64, ref_pt_sam2_{f32,bf16}_level{i}.f64
                                references of their necks (weights from Tests/fixtures/expected.npz)
"""

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "python"))

import numpy as np  # noqa: E402

from sam3neck import checkpoint, reference  # noqa: E402

TRUNK_DIM = 16
D_MODEL = 8
BATCH = 2
HEIGHT = 7
WIDTH = 5
PREFIX = "detector.backbone.vision_backbone."
MISSING = "convs.1.conv_3x3.weight"
BAD_SHAPE = "convs.2.conv_1x1.weight"
BAD_DTYPE = "convs.3.conv_1x1.bias"


def write_raw(path: Path, array: np.ndarray, dtype: str) -> None:
    path.write_bytes(np.ascontiguousarray(array, dtype=dtype).tobytes())


def write_refs(out: Path, stem: str, results, with_pos: bool = False) -> None:
    for i, (feat, pos) in enumerate(results):
        assert feat.shape[0] == BATCH and feat.shape[1] == D_MODEL, feat.shape
        write_raw(out / f"{stem}{i}.f64", feat, "<f8")
        if with_pos:
            write_raw(out / f"pos_level{i}.f64", pos, "<f8")


def main(argv) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(20240917)
    x = rng.standard_normal((BATCH, TRUNK_DIM, HEIGHT, WIDTH)).astype(np.float32)
    write_raw(out / "input.f32", x, "<f4")

    # The main checkpoint and its references.
    tiny = out / "tiny.safetensors"
    weights = checkpoint.write_synthetic_checkpoint(
        tiny, trunk_dim=TRUNK_DIM, d_model=D_MODEL, seed=0, dtype="F32", prefix=PREFIX, extras=True
    )
    write_refs(out, "ref_level", reference.forward(checkpoint.canonical(weights), x), with_pos=True)
    stored = checkpoint.load_safetensors(tiny)
    # the reference must see what the file holds
    for name, value in weights.items():
        assert np.array_equal(stored[PREFIX + name], value), name
    sam2 = {k: v for k, v in stored.items() if k.startswith(PREFIX + "sam2_convs.")}
    assert sam2, "write_synthetic_checkpoint(extras=True) wrote no sam2_convs tensors"
    write_refs(out, "ref_sam2_level", reference.forward(checkpoint.canonical(sam2, "sam2_convs", PREFIX), x))

    # Other dtypes: the reference of the values after rounding.
    for dtype, stem in (("F16", "ref_f16_level"), ("BF16", "ref_bf16_level")):
        path = out / f"tiny_{dtype.lower()}.safetensors"
        rounded = checkpoint.write_synthetic_checkpoint(
            path,
            trunk_dim=TRUNK_DIM,
            d_model=D_MODEL,
            seed=0,
            dtype=dtype,
            prefix=PREFIX,
            extras=True,
        )
        write_refs(out, stem, reference.forward(checkpoint.canonical(rounded), x))

    # Other prefixes (the neck alone).
    checkpoint.save_safetensors(out / "noprefix.safetensors", weights)
    checkpoint.save_safetensors(
        out / "short_prefix.safetensors", {"vision_backbone." + k: v for k, v in weights.items()}
    )
    checkpoint.save_safetensors(
        out / "custom_prefix.safetensors", {"model.backbone." + k: v for k, v in weights.items()}
    )
    checkpoint.save_safetensors(
        out / "sam2_only.safetensors",
        {"backbone.vision_backbone." + k[len(PREFIX) :]: v for k, v in sam2.items()},
    )

    # Broken checkpoints.
    missing = {k: v for k, v in stored.items() if k != PREFIX + MISSING}
    assert len(missing) == len(stored) - 1
    checkpoint.save_safetensors(out / "missing_tensor.safetensors", missing)

    bad_shape = dict(stored)
    w = bad_shape[PREFIX + BAD_SHAPE]  # [d, C, 1, 1]
    bad_shape[PREFIX + BAD_SHAPE] = np.zeros((w.shape[0], w.shape[1], 3, 3), dtype=np.float32)
    checkpoint.save_safetensors(out / "bad_shape.safetensors", bad_shape)

    bad_dtype = dict(stored)
    bad_dtype[PREFIX + BAD_DTYPE] = np.arange(D_MODEL, dtype=np.int32)
    checkpoint.save_safetensors(out / "bad_dtype.safetensors", bad_dtype)

    (out / "garbage.safetensors").write_bytes(
        b"GARBAGE! this is not a safetensors file\n" + bytes(rng.integers(0, 256, 4000, dtype=np.uint8))
    )
    data = tiny.read_bytes()
    (out / "truncated.safetensors").write_bytes(data[: len(data) // 2])

    # The checkpoints written by real PyTorch (same trunk and d_model), and their references.
    fixtures = HERE.parent / "fixtures"
    for name in ("torch_plain_f32.pt", "torch_model_bf16.pt", "torch_legacy.pt", "hf_neck.safetensors"):
        shutil.copyfile(fixtures / name, out / name)
    shutil.copytree(fixtures / "sharded", out / "sharded", dirs_exist_ok=True)
    with np.load(fixtures / "expected.npz") as expected:
        for neck, stem in (("sam3", "ref_pt_"), ("sam2", "ref_pt_sam2_")):
            for dtype in ("f32", "bf16"):
                head = f"{neck}_{dtype}/"
                w = {
                    k[len(head) :]: expected[k] for k in expected.files if k.startswith(head) and "torch_level" not in k
                }
                assert len(w) == len(checkpoint.neck_tensor_shapes(TRUNK_DIM, D_MODEL)), sorted(w)
                write_refs(out, f"{stem}{dtype}_level", reference.forward(w, x))

    (out / "meta.txt").write_text(
        "".join(
            f"{k} {v}\n"
            for k, v in (
                ("trunk_dim", TRUNK_DIM),
                ("d_model", D_MODEL),
                ("batch", BATCH),
                ("height", HEIGHT),
                ("width", WIDTH),
                ("missing_tensor_name", MISSING),
                ("bad_shape_tensor_name", BAD_SHAPE),
                ("dtype_tensor_name", BAD_DTYPE),
            )
        )
    )
    print(f"fixtures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
