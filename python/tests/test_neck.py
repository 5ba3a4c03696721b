"""libsam3neck (through the Python package) against the float64 reference.

Needs the native library. If it cannot be found, every test of this module FAILS (a missing
library is a broken build, not a reason to skip), unless SAM3NECK_ALLOW_MISSING_LIB=1.
"""

import ctypes
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import sam3neck
from sam3neck import Neck, Sam3NeckError, _lib, checkpoint, reference

# Normalised max error bound, max|out - ref64| / max|ref64| per level, per precision mode (the
# header's contract). "strict" (Winograd F(2x2), sums in float32 over K <= 9*1024 products) measures
# about 1e-6 at the real widths; "default" (Winograd F(4x4), whose transform constants cost a few
# bits; on AMX CPUs F(2x2) and F(3x3, 2x2) with bf16x3 products) about 1e-5 to 1.5e-5. Each bound
# leaves headroom for the summation order a BLAS picks.
TOLS = reference.TOLERANCE
TOL = TOLS["default"]
# Every precision mode; "fast" (bfloat16 products with float32 sums where the CPU has them, else
# the default mode's arithmetic) measures about 3e-3 to 8e-3 and is held to TOLS["fast"] = 1e-2.
PRECISIONS = ("default", "strict", "fast")
# Position encodings: max abs error against the float64 formula (values lie in [-1, 1]).
POS_TOL = reference.POSITION_TOLERANCE

try:
    _lib.get_lib()
    LIB_ERROR = None
except OSError as e:  # LibraryNotFoundError / LibraryLoadError
    LIB_ERROR = e

if LIB_ERROR is not None and os.environ.get("SAM3NECK_ALLOW_MISSING_LIB") == "1":
    pytest.skip(f"libsam3neck not available ({LIB_ERROR}); SAM3NECK_ALLOW_MISSING_LIB=1", allow_module_level=True)


@pytest.fixture(autouse=True)
def _require_library():
    if LIB_ERROR is not None:
        pytest.fail(
            f"libsam3neck is not available: {LIB_ERROR}\n(set SAM3NECK_ALLOW_MISSING_LIB=1 to skip these tests)",
            pytrace=False,
        )


PREFIX = "detector.backbone.vision_backbone."
TINY = (16, 8)  # (C, d)
REAL = (1024, 256)


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


class Ckpt:
    def __init__(self, path, c, d, weights, sam2):
        self.path, self.c, self.d = path, c, d
        self.weights = weights  # canonical float64 weights of "convs" as stored
        self.sam2 = sam2  # canonical float64 weights of "sam2_convs" as stored


def _write(path, c, d, seed=0, dtype="F32", prefix=PREFIX, extras=True):
    checkpoint.write_synthetic_checkpoint(path, c, d, seed=seed, dtype=dtype, prefix=prefix, extras=extras)
    tensors = checkpoint.load_safetensors(path)
    sam2 = checkpoint.canonical(tensors, "sam2_convs", prefix) if extras else None
    return Ckpt(path, c, d, checkpoint.canonical(tensors, "convs", prefix), sam2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("ck") / "tiny.safetensors", *TINY, seed=11)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("ck") / "real.safetensors", *REAL, seed=0)


def check_levels(got, weights, x, layout="NCHW", levels=(0, 1, 2, 3), precision="default"):
    """Compares a run's Levels with reference.forward at TOLS[precision] / POS_TOL."""
    tol = TOLS[precision]
    xr = x if layout == "NCHW" else x.transpose(0, 3, 1, 2)
    ref = reference.forward(weights, xr, levels=levels)
    assert [lv.level for lv in got] == sorted(set(levels))
    for lv, (feat, pos) in zip(got, ref):
        assert lv.scale == reference.SCALES[lv.level]
        assert lv.features.dtype == np.float32 and lv.features.shape == feat.shape
        assert lv.pos.dtype == np.float32 and lv.pos.shape == pos.shape
        err = reference.normalised_error(lv.features, feat)
        assert err <= tol, f"level {lv.level}: normalised error {err:.3e} > {tol:g} ({precision})"
        perr = float(np.max(np.abs(lv.pos.astype(np.float64) - pos)))
        assert perr <= POS_TOL, f"level {lv.level}: position encoding error {perr:.3e}"


def compile_run_check(ck, h, w, batch=1, layout="NCHW", levels=(0, 1, 2, 3), seed=0, precision="default", **kw):
    with Neck(ck.path) as neck:
        neck.compile(height=h, width=w, batch=batch, layout=layout, levels=levels, precision=precision, **kw)
        shape = (batch, ck.c, h, w) if layout == "NCHW" else (batch, h, w, ck.c)
        x = _x(shape, seed)
        check_levels(neck.run(x), ck.weights, x, layout, levels, precision)


# ------------------------------------------------------------------------------------------------
# numerics against the reference
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(6, 5), (8, 8), (7, 5), (3, 9)])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_tiny_widths(tiny, hw, batch, layout):
    compile_run_check(tiny, *hw, batch=batch, layout=layout, seed=hw[0] * 10 + batch)


@pytest.mark.parametrize("c,d", [(12, 6), (44, 14), (36, 20)])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_widths_not_multiples_of_eight(tmp_path, c, d, precision):
    """The kernels go through channels eight at a time: every width here leaves a partial chunk
    somewhere (C/2, C/4 or d)."""
    ck = _write(tmp_path / "odd.safetensors", c, d, seed=c + d, extras=False)
    compile_run_check(ck, 7, 6, batch=2, precision=precision, seed=d)


def test_odd_d_model_is_refused_at_load(tmp_path):
    path = tmp_path / "odd_d.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 12, 5, extras=False)
    with pytest.raises(Sam3NeckError, match="even d_model") as e:
        Neck(path)
    assert e.value.status == _lib.ERR_SHAPE


@pytest.mark.parametrize("hw", [(1, 1), (1, 4), (5, 1)])
def test_grids_too_small_for_level_3(tiny, hw):
    compile_run_check(tiny, *hw, levels=(0, 1, 2))
    with Neck(tiny.path) as neck:
        with pytest.raises(ValueError, match="level 3"):
            neck.compile(*hw, levels=(0, 1, 2, 3))


@pytest.mark.parametrize(
    "hw,layout,batch",
    [
        ((6, 5), "NCHW", 1),
        ((8, 8), "NCHW", 1),
        ((6, 5), "NHWC", 1),
        ((8, 8), "NHWC", 2),
        ((7, 5), "NCHW", 3),
        ((3, 9), "NHWC", 1),
    ],
)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_real_widths(real, hw, layout, batch, precision):
    compile_run_check(real, *hw, batch=batch, layout=layout, seed=3, precision=precision)


@pytest.mark.parametrize("levels", [(2,), (0, 2), (1, 3), (3,), (0, 1, 2), (0,), (2, 1)])
def test_level_subsets(tiny, levels):
    compile_run_check(tiny, 7, 6, levels=levels)


@pytest.mark.parametrize("levels", [(0, 2), (1, 3)])
def test_level_subsets_real(real, levels):
    compile_run_check(real, 6, 5, levels=levels, layout="NHWC")


@pytest.mark.parametrize("threads", [1, 0, 2])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_threads_and_precision(tiny, real, threads, precision):
    compile_run_check(tiny, 6, 5, batch=2, threads=threads, precision=precision)
    compile_run_check(real, 8, 8, threads=threads, precision=precision)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_half_precision_checkpoints(tmp_path, dtype):
    ck = _write(tmp_path / f"{dtype}.safetensors", *TINY, seed=5, dtype=dtype)
    compile_run_check(ck, 6, 5, batch=2)
    compile_run_check(ck, 3, 9, layout="NHWC")


def test_bf16_checkpoint_real_widths(tmp_path):
    ck = _write(tmp_path / "real-bf16.safetensors", *REAL, seed=1, dtype="BF16", extras=False)
    compile_run_check(ck, 6, 5)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "ndarray"])
def test_load_from_bytes(tiny, kind):
    data = tiny.path.read_bytes()
    buf = {
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "ndarray": np.frombuffer(data, dtype=np.uint8),
    }[kind]
    with Neck.from_bytes(buf) as neck:
        assert (neck.trunk_dim, neck.d_model) == TINY
        neck.compile(5, 6, batch=2)
        x = _x((2, 16, 5, 6), 8)
        check_levels(neck.run(x), tiny.weights, x)


@pytest.mark.parametrize("prefix", [PREFIX, "backbone.vision_backbone.", "vision_backbone.", ""])
def test_prefixes(tmp_path, prefix):
    ck = _write(tmp_path / "p.safetensors", *TINY, seed=4, prefix=prefix, extras=False)
    x = _x((1, 16, 5, 4), 2)
    for p in (None, prefix):
        with Neck(ck.path, prefix=p) as neck:
            neck.compile(5, 4)
            check_levels(neck.run(x), ck.weights, x)


def test_custom_prefix_needs_exact_prefix(tmp_path):
    ck = _write(tmp_path / "c.safetensors", *TINY, prefix="model.backbone.", extras=False)
    with Neck(ck.path, prefix="model.backbone.") as neck:
        neck.compile(4, 4)
        x = _x((1, 16, 4, 4))
        check_levels(neck.run(x), ck.weights, x)
    with pytest.raises(Sam3NeckError) as e:
        Neck(ck.path)  # not a known prefix
    assert e.value.status == _lib.ERR_MISSING_TENSOR
    with pytest.raises(Sam3NeckError) as e:
        Neck(ck.path, prefix="vision_backbone.")
    assert e.value.status == _lib.ERR_MISSING_TENSOR


def test_sam2_kind_reads_tracker_neck(tiny):
    x = _x((1, 16, 6, 5), 9)
    with Neck(tiny.path, kind="sam2") as neck:
        neck.compile(6, 5)
        got = neck.run(x)
        check_levels(got, tiny.sam2, x)
    with Neck(tiny.path, kind="sam3") as neck:
        neck.compile(6, 5)
        other = neck.run(x)
    assert not np.allclose(got[2].features, other[2].features)


def test_sam2_kind_missing_group(tmp_path):
    ck = _write(tmp_path / "n.safetensors", *TINY, extras=False)
    with pytest.raises(Sam3NeckError) as e:
        Neck(ck.path, kind="sam2")
    assert e.value.status == _lib.ERR_MISSING_TENSOR
    assert "sam2_convs" in e.value.message


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("c,d,hw", [(16, 8, 6), (1024, 256, 8)])
def test_nan_propagates_like_pytorch(tmp_path, precision, c, d, hw):
    # One NaN and one Inf input pixel must give NaN/Inf exactly where PyTorch's (and the
    # reference's) direct convolutions and max pool put them: not in neighbouring pixels, which
    # a Winograd tile would otherwise reach.
    ck = _write(tmp_path / "n.safetensors", c, d, seed=4, extras=False)
    x = _x((1, c, hw, hw), 1)
    x[0, 3, 2, 3] = np.nan
    x[0, 5, hw - 1, 0] = np.inf
    with np.errstate(invalid="ignore"):
        ref = reference.forward(ck.weights, x)
    with Neck(ck.path) as neck:
        neck.compile(hw, hw, precision=precision)
        got = neck.run(x)
    for lv, (feat, _) in zip(got, ref):
        np.testing.assert_array_equal(np.isnan(lv.features), np.isnan(feat), err_msg=f"NaN pattern of level {lv.level}")
        np.testing.assert_array_equal(np.isinf(lv.features), np.isinf(feat), err_msg=f"Inf pattern of level {lv.level}")
        ok = np.isfinite(feat)
        if lv.level <= 1:  # on the fine levels most outputs stay finite
            assert ok.sum() > feat.size // 2
        if ok.any():
            assert reference.normalised_error(lv.features[ok], feat[ok]) <= TOLS[precision]


# ------------------------------------------------------------------------------------------------
# the Python API
# ------------------------------------------------------------------------------------------------


def test_config_and_plan_queries(tiny):
    with Neck(tiny.path) as neck:
        assert neck.trunk_dim == 16 and neck.d_model == 8
        assert neck.scales == (4.0, 2.0, 1.0, 0.5)
        assert not neck.compiled
        assert neck.compile(7, 5, batch=2, levels=(3, 1), layout="nhwc") is neck
        assert neck.compiled
        assert neck.levels == (1, 3)
        assert neck.level_shapes == {1: (2, 8, 14, 10), 3: (2, 8, 3, 2)}
        assert neck.input_shape == (2, 7, 5, 16)
        assert neck.workspace_bytes > 0
        assert neck.kernel in ("avx512", "avx2", "generic", "openblas", "amx_bf16x3")
        params = neck.compile_params
        assert params["batch"] == 2 and params["height"] == 7 and params["width"] == 5
        assert params["layout"] == "NHWC" and params["levels"] == (1, 3)
        assert params["precision"] == "default"
        assert params["threads"] >= 0
        pos = neck.position_encoding(3)
        assert pos.shape == (1, 8, 3, 2) and not pos.flags.writeable
        with pytest.raises(ValueError, match="not compiled"):
            neck.position_encoding(0)


def test_level_shapes_real(real):
    with Neck(real.path) as neck:
        neck.compile(72, 72, levels=(0, 1, 2, 3))
        assert neck.level_shapes == {
            0: (1, 256, 288, 288),
            1: (1, 256, 144, 144),
            2: (1, 256, 72, 72),
            3: (1, 256, 36, 36),
        }
        assert neck.input_shape == (1, 1024, 72, 72)
        assert neck.workspace_bytes > 0


def test_pos_cached_per_compile(tiny):
    with Neck(tiny.path) as neck:
        neck.compile(4, 6)
        x = _x((1, 16, 4, 6))
        a = neck.run(x)
        b = neck.run(x)
        for la, lb in zip(a, b):
            assert la.pos is lb.pos
            assert la.features is not lb.features
            np.testing.assert_array_equal(la.features, lb.features)  # runs are deterministic


def test_out_buffers_are_reused(tiny):
    with Neck(tiny.path) as neck:
        neck.compile(5, 5, levels=(0, 2))
        x = _x((1, 16, 5, 5), 4)
        out = [np.full(s, np.nan, np.float32) for s in neck.level_shapes.values()]
        got = neck.run(x, out=out)
        assert got[0].features is out[0] and got[1].features is out[1]
        check_levels(got, tiny.weights, x, levels=(0, 2))
        x2 = _x((1, 16, 5, 5), 5)
        got2 = neck.run(x2, out=out)
        assert got2[1].features is out[1]
        check_levels(got2, tiny.weights, x2, levels=(0, 2))


def test_compile_twice_with_different_shapes(tiny):
    with Neck(tiny.path) as neck:
        neck.compile(4, 4, batch=1)
        x1 = _x((1, 16, 4, 4))
        check_levels(neck.run(x1), tiny.weights, x1)
        neck.compile(3, 7, batch=2, layout="NHWC", levels=(0, 3))
        x2 = _x((2, 3, 7, 16), 6)
        check_levels(neck.run(x2), tiny.weights, x2, "NHWC", (0, 3))
        with pytest.raises(ValueError, match=r"expected \(2, 3, 7, 16\)"):
            neck.run(x1)


def test_concurrent_runs_on_one_handle(tiny):
    with Neck(tiny.path) as neck:
        neck.compile(6, 5, batch=2)
        xs = [_x((2, 16, 6, 5), s) for s in range(6)]
        results = [None] * len(xs)
        errors = []

        def work(k):
            try:
                for _ in range(3):
                    results[k] = neck.run(xs[k])
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for x, got in zip(xs, results):
            check_levels(got, tiny.weights, x)


def test_close_and_context_manager(tiny):
    neck = Neck(tiny.path)
    neck.compile(3, 3)
    neck.close()
    neck.close()  # idempotent
    assert neck.closed and not neck.compiled
    with pytest.raises(Sam3NeckError, match="closed"):
        neck.run(_x((1, 16, 3, 3)))
    with pytest.raises(Sam3NeckError, match="closed"):
        neck.compile(3, 3)
    with pytest.raises(Sam3NeckError, match="closed"):
        neck.workspace_bytes
    with pytest.raises(Sam3NeckError, match="closed"):
        neck.kernel
    with Neck(tiny.path) as n2:
        pass
    assert n2.closed
    n3 = Neck(tiny.path)
    del n3  # freed by the finalizer; nothing to observe but no crash


def test_run_before_compile(tiny):
    with Neck(tiny.path) as neck:
        with pytest.raises(Sam3NeckError) as e:
            neck.run(_x((1, 16, 72, 72)))
        assert e.value.status == _lib.ERR_NOT_COMPILED
        with pytest.raises(Sam3NeckError):
            neck.level_shapes


def test_input_checks(tiny):
    with Neck(tiny.path) as neck:
        neck.compile(4, 5, batch=2)
        good = _x((2, 16, 4, 5))
        with pytest.raises(TypeError, match="ndarray"):
            neck.run(good.tolist())
        with pytest.raises(TypeError, match=r"float64.*astype\(np.float32\)"):
            neck.run(good.astype(np.float64))
        with pytest.raises(TypeError, match="float32"):
            neck.run(good.astype(">f4"))
        with pytest.raises(ValueError, match=r"expected \(2, 16, 4, 5\)"):
            neck.run(_x((1, 16, 4, 5)))
        with pytest.raises(ValueError, match="shape"):
            neck.run(good.reshape(2, 16, 20))
        with pytest.raises(ValueError, match="NHWC"):
            neck.run(np.ascontiguousarray(good.transpose(0, 2, 3, 1)))
        nc = _x((2, 16, 5, 4)).transpose(0, 1, 3, 2)
        assert nc.shape == good.shape
        with pytest.raises(ValueError, match="C-contiguous"):
            neck.run(nc)
        with pytest.raises(ValueError, match="C-contiguous"):
            neck.run(_x((2, 32, 4, 5))[:, ::2])
        # out= checks
        shapes = list(neck.level_shapes.values())
        with pytest.raises(ValueError, match="one per compiled level"):
            neck.run(good, out=[np.empty(shapes[0], np.float32)])
        bad = [np.empty(s, np.float32) for s in shapes]
        bad[1] = np.empty(shapes[2], np.float32)
        with pytest.raises(ValueError, match=r"out\[1\]"):
            neck.run(good, out=bad)
        bad = [np.empty(s, np.float32) for s in shapes]
        bad[0] = np.zeros(shapes[0], np.float64)
        with pytest.raises(TypeError, match=r"out\[0\]"):
            neck.run(good, out=bad)
        big = np.empty(sum(int(np.prod(s)) for s in shapes), np.float32)
        overlapping = [big[: int(np.prod(s))].reshape(s) for s in shapes]
        with pytest.raises(ValueError, match="overlaps"):
            neck.run(good, out=overlapping)
        # the neck still works after all that
        check_levels(neck.run(good), tiny.weights, good)


def test_compile_argument_checks(tiny):
    with Neck(tiny.path) as neck:
        with pytest.raises(ValueError, match="layout"):
            neck.compile(4, 4, layout="NWHC")
        for bad in ("turbo", "bf16", "", "fast "):
            with pytest.raises(
                ValueError,
                match=r"precision must be one of \['default', 'fast', "
                r"'strict'\], got " + re.escape(repr(bad)),
            ):
                neck.compile(4, 4, precision=bad)
        with pytest.raises(TypeError, match="precision"):
            neck.compile(4, 4, precision=2)
        assert not neck.compiled
        with pytest.raises(ValueError, match="empty"):
            neck.compile(4, 4, levels=())
        with pytest.raises(ValueError, match="out of range"):
            neck.compile(4, 4, levels=(0, 4))
        with pytest.raises(ValueError, match="out of range|0\\.\\."):
            neck.compile(4, 4, levels=(-1,))
        with pytest.raises(ValueError, match="twice"):
            neck.compile(4, 4, levels=(1, 1))
        with pytest.raises(ValueError, match="height"):
            neck.compile(0, 4)
        with pytest.raises(ValueError, match="batch"):
            neck.compile(4, 4, batch=0)
        with pytest.raises(ValueError, match="threads"):
            neck.compile(4, 4, threads=-1)
        with pytest.raises(TypeError, match="width"):
            neck.compile(4, 4.5)
        assert not neck.compiled
        neck.compile(4, 4, levels=2)  # a single int is accepted
        assert neck.levels == (2,)
        for ok in ("fast", "FAST", "Strict", "default"):  # the names, in any case
            assert neck.compile(4, 4, precision=ok).compile_params["precision"] == ok.lower()


def test_compile_failure_in_library_keeps_the_previous_plan(tiny):
    """(Every refusal path of compile: test_compile_refusal.py.)"""
    with Neck(tiny.path) as neck:
        neck.compile(4, 4)
        with pytest.raises(Sam3NeckError) as e:
            neck.compile(32768, 32768, batch=64)  # terabytes: must be refused, not attempted
        assert e.value.status == _lib.ERR_OUT_OF_MEMORY
        assert neck.compiled and neck.input_shape == (1, 16, 4, 4)
        x = _x((1, 16, 4, 4))
        check_levels(neck.run(x), tiny.weights, x)


def test_load_argument_checks(tiny, tmp_path):
    with pytest.raises(ValueError, match="neck"):
        Neck(tiny.path, neck="sam4")
    with pytest.raises(ValueError, match="neck"):
        Neck(tiny.path, kind="sam4")
    with pytest.raises(ValueError, match="disagree"):
        Neck(tiny.path, neck="sam2", kind="sam3")
    with pytest.raises(TypeError, match="prefix"):
        Neck(tiny.path, prefix=3)
    missing = tmp_path / "does-not-exist.safetensors"
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        Neck(missing)
    with pytest.raises(Sam3NeckError, match="index.json"):
        Neck(tmp_path)  # a folder is read as a sharded checkpoint: it needs an index


# ------------------------------------------------------------------------------------------------
# checkpoint errors reported by the library
# ------------------------------------------------------------------------------------------------


def _neck_tensors(c=16, d=8, prefix=PREFIX):
    return {prefix + k: v for k, v in checkpoint.synthetic_neck(c, d, 0).items()}


def _shape_re(shape):
    return r"\D+".join(str(s) for s in shape)


def test_missing_tensor_is_named(tmp_path):
    t = _neck_tensors()
    del t[PREFIX + "convs.1.conv_3x3.bias"]
    p = tmp_path / "m.safetensors"
    checkpoint.save_safetensors(p, t)
    with pytest.raises(Sam3NeckError) as e:
        Neck(p)
    assert e.value.status == _lib.ERR_MISSING_TENSOR
    assert "convs.1.conv_3x3.bias" in e.value.message


def test_misshaped_tensor_names_both_shapes(tmp_path):
    t = _neck_tensors()
    name = PREFIX + "convs.2.conv_3x3.weight"
    t[name] = np.zeros((8, 8, 1, 3), np.float32)
    p = tmp_path / "s.safetensors"
    checkpoint.save_safetensors(p, t)
    with pytest.raises(Sam3NeckError) as e:
        Neck(p)
    assert e.value.status == _lib.ERR_SHAPE
    msg = e.value.message
    assert "convs.2.conv_3x3.weight" in msg
    assert re.search(_shape_re((8, 8, 3, 3)), msg), msg
    assert re.search(_shape_re((8, 8, 1, 3)), msg), msg


def test_inconsistent_widths(tmp_path):
    t = _neck_tensors()
    t[PREFIX + "convs.3.conv_1x1.weight"] = np.zeros((8, 12, 1, 1), np.float32)
    p = tmp_path / "w.safetensors"
    checkpoint.save_safetensors(p, t)
    with pytest.raises(Sam3NeckError) as e:
        Neck(p)
    assert e.value.status == _lib.ERR_SHAPE
    assert "convs.3.conv_1x1.weight" in e.value.message


@pytest.mark.parametrize("bad", ["I32", "F64"])
def test_bad_dtype_is_named(tmp_path, bad):
    t = _neck_tensors()
    name = PREFIX + "convs.0.conv_1x1.bias"
    entries = {}
    for k, v in t.items():
        if k == name:
            arr = v.astype(np.int32) if bad == "I32" else v.astype("<f8")
            entries[k] = (bad, list(v.shape), arr.tobytes())
        else:
            entries[k] = ("F32", list(v.shape), v.astype("<f4").tobytes())
    p = tmp_path / "d.safetensors"
    p.write_bytes(checkpoint.raw_safetensors_bytes(entries))
    with pytest.raises(Sam3NeckError) as e:
        Neck(p)
    assert e.value.status == _lib.ERR_DTYPE
    assert "convs.0.conv_1x1.bias" in e.value.message


def test_unneeded_tensors_of_any_dtype_are_skipped(tmp_path):
    t = _neck_tensors()
    entries = {
        "trunk.freqs_cis": ("C64", [2, 2], bytes(32)),
        "trunk.mask": ("BOOL", [3], bytes(3)),
        "trunk.ids": ("I64", [2], bytes(16)),
    }
    for k, v in t.items():
        entries[k] = ("F32", list(v.shape), v.astype("<f4").tobytes())
    p = tmp_path / "e.safetensors"
    p.write_bytes(checkpoint.raw_safetensors_bytes(entries))
    with Neck(p) as neck:
        assert neck.trunk_dim == 16


@pytest.mark.parametrize("case", ["empty", "short", "huge_header", "not_json", "bad_offsets", "truncated_data"])
def test_malformed_files(tmp_path, case):
    good = checkpoint.safetensors_bytes(_neck_tensors())
    if case == "empty":
        data = b""
    elif case == "short":
        data = good[:5]
    elif case == "huge_header":
        data = (10**12).to_bytes(8, "little") + good[8:]
    elif case == "not_json":
        n = int.from_bytes(good[:8], "little")
        data = good[:8] + b"{" * n + good[8 + n :]
    elif case == "bad_offsets":
        t = _neck_tensors()
        entries = {k: ("F32", list(v.shape), v.astype("<f4").tobytes()) for k, v in t.items()}
        k0 = next(iter(entries))
        dt, shape, raw = entries[k0]
        entries[k0] = (dt, shape, raw[:-4])  # shape says 4 bytes more than the offsets span
        data = checkpoint.raw_safetensors_bytes(entries)
    else:
        data = good[:-100]
    p = tmp_path / "bad.safetensors"
    p.write_bytes(data)
    for load in (lambda: Neck(p), lambda: Neck.from_bytes(data)):
        with pytest.raises(Sam3NeckError) as e:
            load()
        assert e.value.status in (_lib.ERR_FORMAT, _lib.ERR_IO), (case, e.value)
        assert e.value.message


# ------------------------------------------------------------------------------------------------
# the C ABI directly, for what the Python layer checks before calling
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def lib():
    return _lib.get_lib()


def _msg(lib):
    return lib.sam3_neck_last_error().decode()


def _header_version():
    """MAJOR.MINOR.PATCH of include/sam3_neck.h, where the version is defined."""
    text = (Path(__file__).resolve().parents[2] / "include" / "sam3_neck.h").read_text()
    return ".".join(
        re.search(rf"^#define SAM3_NECK_VERSION_{p}\s+(\d+)\s*$", text, re.M).group(1)
        for p in ("MAJOR", "MINOR", "PATCH")
    )


def test_c_versions_and_status_strings(lib):
    assert lib.sam3_neck_abi_version() == 1
    assert lib.sam3_neck_version_string().decode() == _header_version() == sam3neck.library_version()
    assert lib.sam3_neck_status_string(0).decode() == "ok"
    assert lib.sam3_neck_status_string(1).decode() == "invalid argument"
    assert lib.sam3_neck_status_string(99).decode() == "unknown status"
    for s in range(10):
        assert lib.sam3_neck_status_string(s)
    assert sam3neck.library_path().endswith("libsam3neck.so")


def test_c_defaults(lib):
    lp = lib.sam3_neck_load_default_params()
    assert lp.kind == _lib.KIND_SAM3 and lp.prefix is None
    cp = lib.sam3_neck_compile_default_params()
    assert (cp.batch, cp.height, cp.width) == (1, 72, 72)
    assert cp.layout == _lib.LAYOUT_NCHW and cp.levels_mask == 0xF
    assert cp.threads == 0 and cp.precision == _lib.PRECISION_DEFAULT


def test_c_last_error_is_per_thread(lib, tmp_path):
    out = ctypes.c_void_p()
    missing = str(tmp_path / "nowhere.safetensors").encode()
    assert lib.sam3_neck_load_file(missing, None, ctypes.byref(out)) == _lib.ERR_IO
    assert out.value is None
    assert "nowhere.safetensors" in _msg(lib)  # the message names the path
    seen = []
    t = threading.Thread(target=lambda: seen.append(lib.sam3_neck_last_error()))
    t.start()
    t.join()
    assert seen == [b""]
    assert "nowhere.safetensors" in _msg(lib)  # a success does not clear it
    lib.sam3_neck_abi_version()
    assert "nowhere.safetensors" in _msg(lib)


def test_c_null_arguments(lib, tiny):
    out = ctypes.c_void_p()
    assert lib.sam3_neck_load_file(None, None, ctypes.byref(out)) == _lib.ERR_INVALID_ARGUMENT
    assert lib.sam3_neck_load_file(str(tiny.path).encode(), None, None) == _lib.ERR_INVALID_ARGUMENT
    assert lib.sam3_neck_load_memory(None, 10, None, ctypes.byref(out)) == _lib.ERR_INVALID_ARGUMENT
    cfg = _lib.Config()
    assert lib.sam3_neck_get_config(None, ctypes.byref(cfg)) == _lib.ERR_INVALID_ARGUMENT
    assert lib.sam3_neck_compile(None, None) == _lib.ERR_INVALID_ARGUMENT
    lib.sam3_neck_free(None)  # no-op


class _Handle:
    def __init__(self, lib, path):
        self.lib = lib
        self.h = ctypes.c_void_p()
        assert lib.sam3_neck_load_file(str(path).encode(), None, ctypes.byref(self.h)) == 0
        assert self.h.value

    def __enter__(self):
        return self.h

    def __exit__(self, *a):
        self.lib.sam3_neck_free(self.h)


def _params(lib, **kw):
    p = lib.sam3_neck_compile_default_params()
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def test_c_compile_checks(lib, tiny):
    with _Handle(lib, tiny.path) as h:
        count = ctypes.c_size_t()
        assert lib.sam3_neck_input_count(h, ctypes.byref(count)) == _lib.ERR_NOT_COMPILED
        for bad in (
            dict(batch=0),
            dict(height=0),
            dict(width=-3),
            dict(layout=7),
            dict(levels_mask=0),
            dict(levels_mask=0x10),
            dict(threads=-1),
            dict(precision=3),
            dict(precision=5),
            dict(precision=2**31 - 1),
        ):
            p = _params(lib, **{"height": 4, "width": 4, **bad})
            assert lib.sam3_neck_compile(h, ctypes.byref(p)) == _lib.ERR_INVALID_ARGUMENT, bad
            assert _msg(lib)
        p = _params(lib, height=1, width=5, levels_mask=0xF)
        assert lib.sam3_neck_compile(h, ctypes.byref(p)) == _lib.ERR_SHAPE
        p = _params(lib, height=1, width=5, levels_mask=0x7)
        assert lib.sam3_neck_compile(h, ctypes.byref(p)) == 0
        # NULL params = the defaults (72 x 72)
        assert lib.sam3_neck_compile(h, None) == 0
        assert lib.sam3_neck_input_count(h, ctypes.byref(count)) == 0
        assert count.value == 16 * 72 * 72


def test_c_run_and_query_checks(lib, tiny):
    with _Handle(lib, tiny.path) as h:
        p = _params(lib, height=4, width=6, batch=1, levels_mask=0b0101)
        assert lib.sam3_neck_compile(h, ctypes.byref(p)) == 0
        shape = (ctypes.c_int64 * 4)()
        assert lib.sam3_neck_level_shape(h, 1, shape) == _lib.ERR_INVALID_ARGUMENT  # not compiled
        assert lib.sam3_neck_level_shape(h, 4, shape) == _lib.ERR_INVALID_ARGUMENT
        assert lib.sam3_neck_level_shape(h, 2, shape) == 0 and list(shape) == [1, 8, 4, 6]
        assert lib.sam3_neck_level_shape(h, 0, shape) == 0 and list(shape) == [1, 8, 16, 24]
        pos = np.zeros(8 * 4 * 6, np.float32)
        fp = pos.ctypes.data_as(_lib.c_float_p)
        assert lib.sam3_neck_position_encoding(h, 2, fp, pos.size - 1) == _lib.ERR_SHAPE
        assert lib.sam3_neck_position_encoding(h, 1, fp, pos.size) == _lib.ERR_INVALID_ARGUMENT
        assert lib.sam3_neck_position_encoding(h, 2, fp, pos.size) == 0
        np.testing.assert_allclose(pos.reshape(1, 8, 4, 6), reference.position_encoding(8, 4, 6), atol=POS_TOL)

        x = _x((1, 16, 4, 6))
        o0 = np.zeros((1, 8, 16, 24), np.float32)
        o2 = np.zeros((1, 8, 4, 6), np.float32)
        ptrs = (_lib.c_float_p * 4)(o0.ctypes.data_as(_lib.c_float_p), None, o2.ctypes.data_as(_lib.c_float_p), None)
        counts = (ctypes.c_size_t * 4)(o0.size, 0, o2.size, 0)
        xp = x.ctypes.data_as(_lib.c_float_p)
        assert lib.sam3_neck_run(h, xp, x.size - 1, ptrs, counts) == _lib.ERR_SHAPE
        assert lib.sam3_neck_run(h, xp, x.size + 1, ptrs, counts) == _lib.ERR_SHAPE
        small = (ctypes.c_size_t * 4)(o0.size, 0, o2.size - 1, 0)
        assert lib.sam3_neck_run(h, xp, x.size, ptrs, small) == _lib.ERR_SHAPE
        nulls = (_lib.c_float_p * 4)(None, None, o2.ctypes.data_as(_lib.c_float_p), None)
        assert lib.sam3_neck_run(h, xp, x.size, nulls, counts) == _lib.ERR_INVALID_ARGUMENT
        assert lib.sam3_neck_run(h, None, x.size, ptrs, counts) == _lib.ERR_INVALID_ARGUMENT
        assert lib.sam3_neck_run(h, xp, x.size, None, counts) == _lib.ERR_INVALID_ARGUMENT
        assert lib.sam3_neck_run(h, xp, x.size, ptrs, None) == _lib.ERR_INVALID_ARGUMENT
        assert lib.sam3_neck_run(h, xp, x.size, ptrs, counts) == 0
        ref = reference.forward(tiny.weights, x, levels=(0, 2))
        assert reference.normalised_error(o0, ref[0][0]) <= TOL
        assert reference.normalised_error(o2, ref[1][0]) <= TOL
        # larger capacities are fine
        big = np.zeros(o2.size + 100, np.float32)
        ptrs[2] = big.ctypes.data_as(_lib.c_float_p)
        counts[2] = big.size
        assert lib.sam3_neck_run(h, xp, x.size, ptrs, counts) == 0
        np.testing.assert_array_equal(big[: o2.size].reshape(o2.shape), o2)
        assert np.all(big[o2.size :] == 0)


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------


def test_cli_version(capsys):
    from sam3neck.__main__ import main

    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert f"sam3neck (python) {_header_version()}" in out
    assert f"libsam3neck {_header_version()} (ABI 1)" in out


def test_cli_demo_with_weights(tiny, capsys, monkeypatch):
    from sam3neck.__main__ import main

    monkeypatch.delenv("WEIGHTS", raising=False)
    rc = main(
        [
            "demo",
            "--weights",
            str(tiny.path),
            "--height",
            "6",
            "--width",
            "5",
            "--batch",
            "2",
            "--layout",
            "NHWC",
            "--runs",
            "1",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "(2, 8, 24, 20)" in out and "OK" in out


def test_cli_demo_default_checkpoint(tmp_path, capsys, monkeypatch):
    from sam3neck.__main__ import main

    monkeypatch.setenv("SAM3NECK_CACHE", str(tmp_path))
    monkeypatch.delenv("WEIGHTS", raising=False)
    assert main(["demo", "--height", "4", "--width", "3", "--runs", "1", "--levels", "1,3"]) == 0
    out = capsys.readouterr().out
    assert "synthetic-sam3-neck-c1024-d256-seed0.safetensors" in out
    assert "(1, 256, 8, 6)" in out and "(1, 256, 2, 1)" in out


def test_position_encodings_are_fetched_on_first_read(tiny):
    """Compile and run do not copy the position encodings into Python (at 72 x 72 they are as
    large as the outputs); the first read of Level.pos fetches one level, and Levels already
    returned keep theirs across a later compile() and close()."""
    path, weights = tiny.path, tiny.weights
    x = np.random.default_rng(4).standard_normal((1, tiny.c, 5, 7)).astype(np.float32)
    n = Neck(path)
    n.compile(5, 7)
    levels = n.run(x)
    assert n._plan.pos == {}
    pos1 = levels[1].pos
    assert set(n._plan.pos) == {1} and levels[1].pos is pos1 and n.position_encoding(1) is pos1
    want = {lv.level: reference.forward(weights, x)[lv.level][1] for lv in levels}
    n.compile(3, 3)  # replaces the plan: the earlier Levels fetched theirs first
    later = n.run(np.zeros((1, x.shape[1], 3, 3), np.float32))
    n.close()
    for lv in levels:
        assert np.max(np.abs(lv.pos - want[lv.level])) <= reference.POSITION_TOLERANCE
    assert later[0].pos.shape == (1, later[0].features.shape[1], 12, 12)


def test_kernel_follows_the_precision(tiny):
    """Neck.kernel (sam3_neck_kernel_name, since 0.5.0): strict runs float32 products; the default
    mode is strict's choice unless it runs bf16x3 on AMX; fast is a bfloat16 code, or the default's
    where the CPU has none. Before compile: not compiled."""
    with Neck(tiny.path) as neck:
        with pytest.raises(Sam3NeckError, match="not compiled"):
            neck.kernel
        kernels = {p: neck.compile(4, 6, precision=p).kernel for p in ("strict", "default", "fast")}
    assert kernels["strict"] in ("avx512", "avx2", "generic", "openblas"), kernels
    assert kernels["default"] in (kernels["strict"], "amx_bf16x3"), kernels
    assert kernels["fast"] in ("amx_bf16", "avx512_bf16", kernels["default"]), kernels


def test_c_kernel_name(lib, tiny):
    with _Handle(lib, tiny.path) as h:
        name = ctypes.c_char_p(b"untouched")
        assert lib.sam3_neck_kernel_name(h, ctypes.byref(name)) == _lib.ERR_NOT_COMPILED
        assert name.value == b"untouched"
        assert lib.sam3_neck_compile(h, None) == 0
        assert lib.sam3_neck_kernel_name(h, None) == _lib.ERR_INVALID_ARGUMENT
        assert b"name is NULL" in lib.sam3_neck_last_error()
        assert lib.sam3_neck_kernel_name(h, ctypes.byref(name)) == 0
        first = ctypes.cast(name, ctypes.c_void_p).value
        assert lib.sam3_neck_compile(h, None) == 0
        assert lib.sam3_neck_kernel_name(h, ctypes.byref(name)) == 0
        # static storage: the same string for the same choice, whatever the plan
        assert ctypes.cast(name, ctypes.c_void_p).value == first
