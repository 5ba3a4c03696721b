"""sam3neck.dtypes and the reference's element-type and layout options (no library needed)."""

import numpy as np
import pytest

from sam3neck import dtypes, reference


def _special_floats():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32)
    # ties (lower half exactly 0x8000) with even and odd kept parts, and their neighbours
    ties = (rng.integers(0, 2**16, 2000, dtype=np.uint32) << np.uint32(16)) | np.uint32(0x8000)
    near = np.concatenate([ties, ties - np.uint32(1), ties + np.uint32(1)])
    special = np.array(
        [
            0,
            0x80000000,
            0x7F800000,
            0xFF800000,
            0x7F7FFFFF,
            0xFF7FFFFF,
            0x7F7F8000,
            0x00000001,
            0x007FFFFF,
            0x7FC00000,
            0x7F800001,
            0xFFC00001,
            0x7FFF0000,
        ],
        dtype=np.uint32,
    )
    return np.concatenate([bits, near, special]).view(np.float32)


def test_bfloat16_rounding_matches_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = _special_floats()
    ours = dtypes.to_bfloat16_bits(x)
    with np.errstate(invalid="ignore", over="ignore"):
        theirs = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    nan = np.isnan(x)
    np.testing.assert_array_equal(ours[~nan], theirs[~nan])
    assert np.isnan(dtypes.to_float32(ours[nan])).all()  # a NaN stays NaN (payload aside)


def test_bfloat16_rounding_by_hand():
    # 1 + 2**-8 is a tie between 1 and 1 + 2**-7: to even, 1; 1 + 3 * 2**-8 rounds up to even.
    # 0x7F7F8000 / 0xFF7F8000: halfway past bfloat16's largest finite value (odd): to +-Inf;
    # 0x7F7F7FFF just below it: the largest finite value.
    big = np.array([0x7F7F8000, 0xFF7F8000, 0x7F7F7FFF], np.uint32).view(np.float32)
    x = np.concatenate([np.array([1 + 2**-8, 1 + 3 * 2**-8], np.float32), big, np.array([np.inf, np.nan], np.float32)])
    b = dtypes.to_bfloat16_bits(x)
    assert list(b[:2]) == [0x3F80, 0x3F82]
    assert list(b[2:6]) == [0x7F80, 0xFF80, 0x7F7F, 0x7F80]  # overflow -> Inf
    assert np.isnan(dtypes.to_float32(b)[6])
    with pytest.raises(TypeError, match="uint16"):
        dtypes.to_bfloat16_bits(b)


def test_to_float32_and_to_dtype(monkeypatch):
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    bits = dtypes.to_bfloat16_bits(x)
    wide = dtypes.to_float32(bits)
    assert wide.dtype == np.float32
    assert np.max(np.abs(wide - x) / np.abs(x)) <= 2.0**-8  # one rounding
    np.testing.assert_array_equal(dtypes.to_float32(bits, "bfloat16"), wide)
    with pytest.raises(TypeError, match="bfloat16 bits"):
        dtypes.to_float32(bits, "float16")
    with pytest.raises(TypeError):
        dtypes.to_float32(np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(dtypes.to_float32(x.astype(np.float16)), x.astype(np.float16).astype(np.float32))
    assert dtypes.to_dtype(x, "float16").dtype == np.float16
    monkeypatch.setattr(dtypes, "_bf16", None)
    assert dtypes.to_dtype(x, "bfloat16").dtype == np.uint16
    assert dtypes.storage_dtypes("bfloat16") == (np.dtype(np.uint16),)
    with pytest.raises(ValueError, match="float64"):
        dtypes.to_dtype(x, "float64")


def test_reference_round_input():
    x = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float64)
    np.testing.assert_array_equal(reference.round_input(x, None), x)
    np.testing.assert_array_equal(reference.round_input(x, "float32"), x.astype(np.float32))
    np.testing.assert_array_equal(reference.round_input(x, "float16"), x.astype(np.float16))
    bf = reference.round_input(x, "bfloat16")
    np.testing.assert_array_equal(bf, dtypes.to_float32(dtypes.to_bfloat16_bits(x)))
    np.testing.assert_array_equal(reference.round_input(dtypes.to_bfloat16_bits(x), "bfloat16"), bf)
    with pytest.raises(TypeError, match="bfloat16"):
        reference.round_input(dtypes.to_bfloat16_bits(x), None)
    with pytest.raises(ValueError, match="input_dtype"):
        reference.round_input(x, "float64")


def test_reference_to_layout():
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(reference.to_layout(a, "NCHW"), a)
    nhwc = reference.to_layout(a, "NHWC")
    seq = reference.to_layout(a, "sequence")
    assert nhwc.shape == (2, 4, 5, 3) and seq.shape == (20, 2, 3)
    for b, c, y, x in [(0, 0, 0, 0), (1, 2, 3, 4), (1, 1, 2, 0)]:
        assert nhwc[b, y, x, c] == a[b, c, y, x]
        assert seq[y * 5 + x, b, c] == a[b, c, y, x]
    with pytest.raises(ValueError, match="sequence"):
        reference.to_layout(a, "NWHC")


def test_reference_forward_options():
    from sam3neck import checkpoint  # noqa: F401 -- weights by hand below

    rng = np.random.default_rng(3)
    c, d = 4, 2
    w = {}
    for i in range(4):
        w[f"{i}.conv_1x1.weight"] = rng.standard_normal((d, c if i >= 2 else d, 1, 1))
        w[f"{i}.conv_1x1.bias"] = rng.standard_normal(d)
        w[f"{i}.conv_3x3.weight"] = rng.standard_normal((d, d, 3, 3))
        w[f"{i}.conv_3x3.bias"] = rng.standard_normal(d)
    w["0.dconv_2x2_0.weight"] = rng.standard_normal((c, d, 2, 2))
    w["0.dconv_2x2_0.bias"] = rng.standard_normal(d)
    w["0.dconv_2x2_1.weight"] = rng.standard_normal((d, d, 2, 2))
    w["0.dconv_2x2_1.bias"] = rng.standard_normal(d)
    w["1.dconv_2x2.weight"] = rng.standard_normal((c, d, 2, 2))
    w["1.dconv_2x2.bias"] = rng.standard_normal(d)
    x = rng.standard_normal((2, c, 3, 5))
    base = reference.forward(w, x)
    rounded = reference.forward(w, x.astype(np.float16), levels=(1, 2))
    got = reference.forward(
        w, x, levels=(1, 2), input_dtype="float16", output_layout="sequence", output_dtype="float16"
    )
    for (f, p), (rf, rp) in zip(got, rounded):
        assert f.dtype == np.float16 and f.shape == reference.to_layout(rf, "sequence").shape
        np.testing.assert_array_equal(f, reference.to_layout(rf, "sequence").astype(np.float16))
        np.testing.assert_array_equal(p, reference.to_layout(rp, "sequence").astype(np.float16))
    assert reference.normalised_error(rounded[1][0], base[2][0]) > 0  # the input was rounded
    with pytest.raises(ValueError, match="output_layout"):
        reference.forward(w, x, output_layout="NCWH")
    with pytest.raises(ValueError, match="output_dtype"):
        reference.forward(w, x, output_dtype="int8")


def test_normalised_error_refuses_bits():
    with pytest.raises(TypeError, match="to_float32"):
        reference.normalised_error(np.zeros(3, np.uint16), np.ones(3))


def test_tolerances():
    assert reference.tolerance("strict", "float32") == reference.TOLERANCE["strict"]
    assert reference.tolerance("strict", "float16") == 1e-3
    assert reference.tolerance("default", "bfloat16") == 8e-3
    # fast: its own bound, plus the output's rounding (half an ulp: a relative 2**-11 / 2**-8)
    assert reference.tolerance("fast") == reference.tolerance("fast", "float32") == 1e-2
    assert reference.tolerance("fast", "float16") == 1e-2 + 2**-11
    assert reference.tolerance("fast", "bfloat16") == 1e-2 + 2**-8
    # one rounding of a value in [0.5, 1) is at most half an ulp there
    v = np.float32(1 - 2**-12)  # halfway between two float16 values: error exactly 2**-12
    assert abs(float(np.float16(v)) - float(v)) <= reference.position_tolerance("float16") - 1e-5
    assert reference.position_tolerance("float32") == reference.POSITION_TOLERANCE
