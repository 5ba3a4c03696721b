"""Element types and output layouts (Neck.compile's input_dtype, output_dtype, output_layout):
every combination against the float64 reference and, bit for bit, against the float32 plan's
output rounded to nearest even (the header's promise), on odd grids, batch > 1, level subsets;
NaN/Inf in every type; the Python checks; bfloat16 with and without ml_dtypes.

Bounds (sam3neck.reference.tolerance / position_tolerance, justified there): float32 outputs as
the precision mode (1e-4 / 1e-5 / 1e-2 for default / strict / fast), float16 outputs 1e-3,
bfloat16 outputs 8e-3 (in the fast mode 1e-2 plus the output's rounding, 2**-11 or 2**-8)
(normalised max error against the float64 reference computed on the same rounded input);
position encodings within 1e-5 plus half an ulp of [0.5, 1) of the output type.

Needs the native library (like test_neck.py).
"""

import itertools
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam3neck import Neck, checkpoint, dtypes, reference

DTYPES = ("float32", "float16", "bfloat16")
LAYOUTS = ("NCHW", "NHWC", "sequence")
COMBOS = list(itertools.product(DTYPES, DTYPES, LAYOUTS))
PY = Path(__file__).resolve().parents[1]


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, seed=21)
    with Neck(path) as neck:
        return path, neck.weights()


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "real.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 1024, 256, seed=5, extras=False)
    with Neck(path) as neck:
        return path, neck.weights()


def _bits(a):
    """Bit patterns of a float16 / bfloat16 / float32 array (for bitwise comparisons)."""
    a = np.asarray(a)
    return a.view(np.uint32 if a.itemsize == 4 else np.uint16)


def _rounded(a32, output_dtype):
    """The float32 result rounded to output_dtype as the library must store it."""
    if output_dtype == "float32":
        return a32
    if output_dtype == "float16":
        return a32.astype(np.float16)  # NumPy rounds to nearest even, overflow to +-Inf
    return dtypes.to_bfloat16(a32)


def _same_bits(got, want, what):
    g, w = _bits(got), _bits(want)
    gn = np.isnan(dtypes.to_float32(got))
    wn = np.isnan(dtypes.to_float32(want))
    np.testing.assert_array_equal(gn, wn, err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(g[~gn], w[~wn], err_msg=f"{what}: bits")


def run_and_check(
    path,
    weights,
    h,
    w,
    batch,
    layout,
    levels,
    input_dtype,
    output_dtype,
    output_layout,
    precision="default",
    seed=0,
    errors=None,
):
    """Runs one combination and checks it against the float32 NCHW plan (bitwise, after
    rounding and arranging) and the float64 reference (bounds); returns the worst errors."""
    with Neck(path) as neck:
        c = neck.trunk_dim
        shape = (batch, c, h, w) if layout == "NCHW" else (batch, h, w, c)
        x32 = _x(shape, seed)
        xin = dtypes.to_dtype(x32, input_dtype)
        neck.compile(
            h,
            w,
            batch=batch,
            layout=layout,
            levels=levels,
            precision=precision,
            input_dtype=input_dtype,
            output_dtype=output_dtype,
            output_layout=output_layout,
        )
        assert (neck.input_dtype, neck.output_dtype, neck.output_layout) == (input_dtype, output_dtype, output_layout)
        got = neck.run(xin)
        # the float32 plan on the same (rounded) values
        neck.compile(h, w, batch=batch, layout=layout, levels=levels, precision=precision)
        base = neck.run(dtypes.to_float32(xin))
    assert [lv.level for lv in got] == sorted(set(levels))
    xr = dtypes.to_float32(xin)
    if layout == "NHWC":
        xr = xr.transpose(0, 3, 1, 2)
    ref = reference.forward(weights, xr, levels=levels, output_layout=output_layout)
    tol = reference.tolerance(precision, output_dtype)
    ptol = reference.position_tolerance(output_dtype)
    worst = (0.0, 0.0)
    for lv, b, (feat, pos) in zip(got, base, ref):
        what = f"level {lv.level} {input_dtype}->{output_dtype} {output_layout}"
        assert lv.layout == output_layout and lv.dtype == output_dtype
        assert lv.features.shape == feat.shape and lv.pos.shape == pos.shape, what
        assert lv.features.dtype in dtypes.storage_dtypes(output_dtype)
        assert lv.pos.dtype == lv.features.dtype and not lv.pos.flags.writeable
        _same_bits(
            lv.features, _rounded(reference.to_layout(b.features, output_layout), output_dtype), what + " features"
        )
        _same_bits(lv.pos, _rounded(reference.to_layout(b.pos, output_layout), output_dtype), what + " pos")
        err = reference.normalised_error(dtypes.to_float32(lv.features), feat)
        perr = float(np.max(np.abs(dtypes.to_float32(lv.pos).astype(np.float64) - pos)))
        assert err <= tol, f"{what}: normalised error {err:.3e} > {tol:g}"
        assert perr <= ptol, f"{what}: position encoding error {perr:.3e} > {ptol:g}"
        worst = (max(worst[0], err), max(worst[1], perr))
    if errors is not None:
        errors[(input_dtype, output_dtype, output_layout)] = worst
    return worst


# ------------------------------------------------------------------------------------------------
# every combination
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("input_dtype,output_dtype,output_layout", COMBOS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_every_combination_odd_grid_batch(tiny, input_dtype, output_dtype, output_layout, layout):
    run_and_check(*tiny, 5, 7, 3, layout, (0, 1, 2, 3), input_dtype, output_dtype, output_layout)


@pytest.mark.parametrize("input_dtype,output_dtype,output_layout", COMBOS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_every_combination_fast(tiny, input_dtype, output_dtype, output_layout, layout):
    """The fast precision: every type and layout is its float32 plan's output rounded and
    arranged (bitwise), within reference.tolerance("fast", output_dtype) of the reference."""
    run_and_check(
        *tiny, 5, 7, 3, layout, (0, 1, 2, 3), input_dtype, output_dtype, output_layout, precision="fast", seed=5
    )


@pytest.mark.parametrize("input_dtype,output_dtype,output_layout", COMBOS)
@pytest.mark.parametrize("levels", [(2,), (0, 3), (1, 2)])
def test_every_combination_level_subsets(tiny, input_dtype, output_dtype, output_layout, levels):
    run_and_check(*tiny, 7, 3, 2, "NCHW", levels, input_dtype, output_dtype, output_layout, precision="strict", seed=3)


@pytest.mark.parametrize("output_dtype", DTYPES)
@pytest.mark.parametrize("output_layout", LAYOUTS)
@pytest.mark.parametrize("precision", ["default", "fast"])
def test_real_widths(real, output_dtype, output_layout, precision):
    # each input type once per output layout, batch 2, an odd non-square grid
    input_dtype = DTYPES[LAYOUTS.index(output_layout)]
    run_and_check(
        *real,
        5,
        3,
        2,
        "NHWC" if output_dtype == "float16" else "NCHW",
        (0, 1, 2, 3),
        input_dtype,
        output_dtype,
        output_layout,
        precision=precision,
        seed=7,
    )


def test_defaults_are_float32_nchw(tiny):
    with Neck(tiny[0]) as neck:
        neck.compile(4, 4)
        assert (neck.input_dtype, neck.output_dtype, neck.output_layout) == ("float32", "float32", "NCHW")
        lv = neck.run(_x((1, 16, 4, 4)))[0]
        assert (lv.layout, lv.dtype, lv.features.dtype) == ("NCHW", "float32", np.float32)
        assert "layout='NCHW'" in repr(lv) and "dtype='float32'" in repr(lv)


# ------------------------------------------------------------------------------------------------
# NaN / Inf
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("input_dtype,output_dtype", list(itertools.product(DTYPES, DTYPES)))
@pytest.mark.parametrize("precision", ["default", "fast"])
def test_nan_and_inf_in_every_type(tiny, input_dtype, output_dtype, precision):
    # A NaN and an Inf input pixel give NaN / Inf where the float32 plan gives them (the
    # bitwise check of run_and_check's kind, here with non-finite values): a NaN stays NaN in
    # float16 and bfloat16.
    path, _ = tiny
    x = _x((2, 16, 6, 5), 2)
    x[0, 3, 2, 3] = np.nan
    x[1, 5, 5, 0] = np.inf
    xin = dtypes.to_dtype(x, input_dtype)
    with Neck(path) as neck:
        neck.compile(
            6,
            5,
            batch=2,
            input_dtype=input_dtype,
            output_dtype=output_dtype,
            output_layout="sequence",
            precision=precision,
        )
        got = neck.run(xin)
        neck.compile(6, 5, batch=2, precision=precision)
        base = neck.run(dtypes.to_float32(xin))
    for lv, b in zip(got, base):
        want = _rounded(reference.to_layout(b.features, "sequence"), output_dtype)
        _same_bits(lv.features, want, f"level {lv.level}")
        wide = dtypes.to_float32(lv.features)
        assert np.isnan(wide).any(), f"level {lv.level}: the NaN was lost"
        if lv.level == 2:  # scale 1: the Inf pixel's 3x3 neighbourhood is non-finite, not all
            assert np.isfinite(wide).sum() > wide.size // 2


def test_float16_overflow_is_inf(tiny):
    # float16 stores values past 65504 as +-Inf (documented); NaN only where float32 has NaN.
    path, _ = tiny
    x = _x((1, 16, 5, 5), 4) * np.float32(3e5)
    with Neck(path) as neck:
        neck.compile(5, 5, output_dtype="float16")
        got = neck.run(x)
        neck.compile(5, 5)
        base = neck.run(x)
    big = 0
    for lv, b in zip(got, base):
        ref = b.features
        big += int((np.abs(ref) >= 65520).sum())
        np.testing.assert_array_equal(np.isinf(lv.features), np.abs(ref) >= 65520)
        assert not np.isnan(lv.features).any()
        fin = np.abs(ref) < 65520
        np.testing.assert_array_equal(lv.features[fin], ref[fin].astype(np.float16))
    assert big > 0  # the test did reach the overflow


# ------------------------------------------------------------------------------------------------
# the Python checks
# ------------------------------------------------------------------------------------------------


def test_compile_argument_checks(tiny):
    with Neck(tiny[0]) as neck:
        for kw, exc, text in [
            ({"input_dtype": "float64"}, ValueError, "input_dtype must be one of"),
            ({"output_dtype": "int8"}, ValueError, "output_dtype must be one of"),
            ({"input_dtype": 16}, TypeError, "input_dtype must be one of"),
            ({"output_dtype": np.float64}, ValueError, "output_dtype"),
            ({"output_layout": "NCWH"}, ValueError, "output_layout must be one of"),
            ({"output_layout": "seq"}, ValueError, "sequence"),
            ({"output_layout": 3}, TypeError, "output_layout"),
        ]:
            with pytest.raises(exc, match=text):
                neck.compile(4, 4, **kw)
            assert not neck.compiled
        neck.compile(4, 4, input_dtype="Float16", output_dtype=np.float16, output_layout="SEQUENCE")
        assert neck.compile_options["input_dtype"] == "float16"
        assert neck.compile_options["output_dtype"] == "float16"
        assert neck.compile_options["output_layout"] == "sequence"
        neck.compile(4, 4, output_layout="nhwc")
        assert neck.output_layout == "NHWC"


def test_input_dtype_and_layout_checks(tiny):
    with Neck(tiny[0]) as neck:
        neck.compile(4, 6, batch=2, input_dtype="float16")
        x = _x((2, 16, 4, 6))
        with pytest.raises(TypeError, match=r"float16.*input_dtype='float16'.*got float32"):
            neck.run(x)
        with pytest.raises(TypeError, match="float16"):
            neck.run(x.astype(">f2"))
        with pytest.raises(ValueError, match=r"expected \(2, 16, 4, 6\)"):
            neck.run(x.transpose(0, 2, 3, 1).astype(np.float16))
        neck.compile(4, 6, batch=2, input_dtype="bfloat16")
        with pytest.raises(TypeError, match=r"bfloat16.*uint16.*got float16.*to_bfloat16"):
            neck.run(x.astype(np.float16))
        with pytest.raises(TypeError, match="got int16"):
            neck.run(dtypes.to_bfloat16_bits(x).view(np.int16))
        neck.compile(4, 6, batch=2)
        with pytest.raises(TypeError, match=r"float32.*got float16"):
            neck.run(x.astype(np.float16))


def test_out_buffers_of_every_type(tiny):
    with Neck(tiny[0]) as neck:
        neck.compile(4, 6, batch=2, levels=(1, 3), output_dtype="bfloat16", output_layout="sequence")
        x = _x((2, 16, 4, 6))
        assert neck.level_shapes == {1: (8 * 12, 2, 8), 3: (2 * 3, 2, 8)}
        first = neck.run(x)
        bits = [np.empty(s, dtype=np.uint16) for s in neck.level_shapes.values()]
        again = neck.run(x, out=bits)
        assert again[0].features is bits[0]
        for a, b in zip(first, again):
            np.testing.assert_array_equal(_bits(a.features), b.features)
        with pytest.raises(TypeError, match=r"out\[0\].*output_dtype='bfloat16'.*got float32"):
            neck.run(x, out=[np.empty(s, np.float32) for s in neck.level_shapes.values()])
        wrong = [np.empty((2, 8, 8, 12), np.uint16), bits[1]]
        with pytest.raises(ValueError, match=r"\[h\*w, B, d\].*output_layout='sequence'"):
            neck.run(x, out=wrong)
        neck.compile(4, 6, output_dtype="float16", output_layout="NHWC", levels=2)
        out = [np.empty((1, 4, 6, 8), np.float16)]
        assert neck.run(_x((1, 16, 4, 6)), out=out)[0].features is out[0]
        with pytest.raises(ValueError, match=r"\[B, h, w, d\]"):
            neck.run(_x((1, 16, 4, 6)), out=[np.empty((1, 8, 4, 6), np.float16)])


def test_bfloat16_ml_dtypes_and_bits_give_the_same_outputs(tiny):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with Neck(tiny[0]) as neck:
        neck.compile(5, 3, input_dtype="bfloat16", output_dtype="bfloat16")
        x = _x((1, 16, 5, 3), 9)
        bits = dtypes.to_bfloat16_bits(x)
        a = neck.run(bits)
        b = neck.run(x.astype(ml_dtypes.bfloat16))
        for la, lb in zip(a, b):
            assert la.features.dtype == ml_dtypes.bfloat16
            np.testing.assert_array_equal(_bits(la.features), _bits(lb.features))
        assert neck.compile_options["input_dtype"] == "bfloat16"
        neck.compile(5, 3, input_dtype=ml_dtypes.bfloat16)
        assert neck.input_dtype == "bfloat16"


def test_bfloat16_without_ml_dtypes_is_uint16(tiny, monkeypatch):
    # As if ml_dtypes were not installed: outputs are uint16 bits, inputs are uint16 bits.
    monkeypatch.setattr(dtypes, "_bf16", None)
    with Neck(tiny[0]) as neck:
        neck.compile(5, 3, batch=2, input_dtype="bfloat16", output_dtype="bfloat16", output_layout="NHWC")
        x = _x((2, 16, 5, 3), 9)
        xin = dtypes.to_bfloat16(x)
        assert xin.dtype == np.uint16
        got = neck.run(xin)
        assert all(lv.features.dtype == np.uint16 and lv.pos.dtype == np.uint16 for lv in got)
        neck.compile(5, 3, batch=2)
        base = neck.run(dtypes.to_float32(xin))
    for lv, b in zip(got, base):
        np.testing.assert_array_equal(lv.features, dtypes.to_bfloat16_bits(reference.to_layout(b.features, "NHWC")))
        # the one line of docs/python.md widens the bits
        wide = (lv.features.astype(np.uint32) << 16).view(np.float32)
        np.testing.assert_array_equal(wide, dtypes.to_float32(lv.features))


_CHILD = r"""
import sys, numpy as np
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "ml_dtypes" or name.startswith("ml_dtypes."):
            raise ImportError("ml_dtypes blocked for this test")
sys.meta_path.insert(0, Block())
import sam3neck
from sam3neck import Neck, dtypes
assert "ml_dtypes" not in sys.modules
with Neck(sys.argv[1]) as neck:
    neck.compile(4, 4, input_dtype="bfloat16", output_dtype="bfloat16", output_layout="sequence")
    x = np.random.default_rng(0).standard_normal((1, 16, 4, 4), dtype=np.float32)
    out = neck.run(sam3neck.to_bfloat16(x))
    assert all(lv.features.dtype == np.uint16 for lv in out), [lv.features.dtype for lv in out]
    print("uint16", out[0].features.shape)
"""

_CHILD_NO_IMPORT = r"""
import sys, numpy as np
import sam3neck
with sam3neck.Neck(sys.argv[1]) as neck:
    neck.compile(4, 4, input_dtype="float16", output_dtype="float16", output_layout="NHWC")
    neck.run(np.zeros((1, 16, 4, 4), np.float16))
print("ml_dtypes imported:", "ml_dtypes" in sys.modules)
"""


def _child(code, path):
    env = dict(os.environ, PYTHONPATH=str(PY) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code, str(path)], env=env, text=True, capture_output=True, timeout=120)


def test_without_ml_dtypes_in_a_fresh_process(tiny):
    p = _child(_CHILD, tiny[0])
    assert p.returncode == 0, p.stderr
    assert "uint16 (256, 1, 8)" in p.stdout


def test_ml_dtypes_is_imported_only_for_bfloat16(tiny):
    p = _child(_CHILD_NO_IMPORT, tiny[0])
    assert p.returncode == 0, p.stderr
    assert "ml_dtypes imported: False" in p.stdout


def test_pickle_keeps_the_io_options(tiny):
    with Neck(tiny[0]) as neck:
        neck.compile(
            5, 3, batch=2, levels=(0, 2), input_dtype="float16", output_dtype="bfloat16", output_layout="sequence"
        )
        x = _x((2, 16, 5, 3), 1).astype(np.float16)
        with pickle.loads(pickle.dumps(neck)) as other:
            assert other.compile_options == neck.compile_options
            assert other.compile_params == neck.compile_params
            assert other.output_layout == "sequence"
            for a, b in zip(neck.run(x), other.run(x)):
                np.testing.assert_array_equal(_bits(a.features), _bits(b.features))
                np.testing.assert_array_equal(_bits(a.pos), _bits(b.pos))
