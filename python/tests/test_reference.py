"""The float64 reference checked against naive loops written straight from the spec.

These tests do not need the native library.
"""

import itertools
import math

import numpy as np
import pytest

from sam3neck import checkpoint, reference

RNG = np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------------
# naive implementations (loops over every index, from the spec's formulas)
# ------------------------------------------------------------------------------------------------


def naive_conv_transpose2x2(x, w, b):
    """ConvTranspose2d(k=2, s=2): out[n, o, 2i+a, 2j+b] = b[o] + sum_c x[n,c,i,j] * w[c,o,a,b]."""
    n_, cin, h, wd = x.shape
    cout = w.shape[1]
    out = np.zeros((n_, cout, 2 * h, 2 * wd))
    for n, o, i, j, a, bb in itertools.product(range(n_), range(cout), range(h), range(wd), range(2), range(2)):
        s = b[o]
        for c in range(cin):
            s += x[n, c, i, j] * w[c, o, a, bb]
        out[n, o, 2 * i + a, 2 * j + bb] = s
    return out


def naive_conv2d(x, w, b, pad):
    """Conv2d, stride 1, zero padding: out[n,o,i,j] = b[o] + sum x[n,c,i+dy-pad,j+dx-pad] w[o,c,dy,dx]."""
    n_, cin, h, wd = x.shape
    cout, _, kh, kw = w.shape
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.zeros((n_, cout, ho, wo))
    for n, o, i, j in itertools.product(range(n_), range(cout), range(ho), range(wo)):
        s = b[o]
        for c, dy, dx in itertools.product(range(cin), range(kh), range(kw)):
            r, q = i + dy - pad, j + dx - pad
            if 0 <= r < h and 0 <= q < wd:
                s += x[n, c, r, q] * w[o, c, dy, dx]
        out[n, o, i, j] = s
    return out


def naive_maxpool(x):
    n_, c_, h, wd = x.shape
    out = np.zeros((n_, c_, h // 2, wd // 2))
    for n, c, i, j in itertools.product(range(n_), range(c_), range(h // 2), range(wd // 2)):
        window = [x[n, c, 2 * i + a, 2 * j + b] for a in range(2) for b in range(2)]
        out[n, c, i, j] = math.nan if any(math.isnan(v) for v in window) else max(window)
    return out


def naive_gelu(v):
    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def naive_pos(d, h, w):
    F = d // 2
    T, eps, scale = 10000.0, 1e-6, 2 * math.pi
    pos = np.zeros((1, d, h, w))
    for ch in range(d):
        half, k = divmod(ch, F)  # half 0 = y, 1 = x
        dim_t = T ** (2 * (k // 2) / F)
        for r in range(h):
            for c in range(w):
                if half == 0:
                    v = (r + 1) / (h + eps) * scale
                else:
                    v = (c + 1) / (w + eps) * scale
                pos[0, ch, r, c] = math.sin(v / dim_t) if k % 2 == 0 else math.cos(v / dim_t)
    return pos


def naive_forward(w, x, level):
    """One branch composed from the naive ops, NCHW, float64."""
    g = lambda name: (w[f"{level}.{name}.weight"], w[f"{level}.{name}.bias"])  # noqa: E731
    if level == 0:
        y = naive_conv_transpose2x2(x, *g("dconv_2x2_0"))
        y = np.vectorize(naive_gelu)(y)
        y = naive_conv_transpose2x2(y, *g("dconv_2x2_1"))
    elif level == 1:
        y = naive_conv_transpose2x2(x, *g("dconv_2x2"))
    elif level == 2:
        y = x
    else:
        y = naive_maxpool(x)
    y = naive_conv2d(y, *g("conv_1x1"), pad=0)
    return naive_conv2d(y, *g("conv_3x3"), pad=1)


def tiny_weights(c=8, d=4, seed=0):
    return {k: v.astype(np.float64) for k, v in checkpoint.synthetic_neck(c, d, seed, group=None).items()}


# ------------------------------------------------------------------------------------------------
# layers
# ------------------------------------------------------------------------------------------------


def test_conv_transpose_weight_layout():
    x = RNG.standard_normal((2, 3, 2, 3))
    w = RNG.standard_normal((3, 5, 2, 2))  # [in, out, kh, kw]
    b = RNG.standard_normal(5)
    np.testing.assert_allclose(
        reference.conv_transpose2x2(x, w, b), naive_conv_transpose2x2(x, w, b), rtol=1e-13, atol=1e-13
    )


def test_conv_transpose_tap_placement():
    # one input pixel, one channel: the 2x2 kernel lands at rows 2i..2i+1, cols 2j..2j+1 unflipped
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, 0] = 1.0
    w = np.arange(4.0).reshape(1, 1, 2, 2) + 1.0  # [[1, 2], [3, 4]]
    out = reference.conv_transpose2x2(x, w, np.zeros(1))
    expected = np.zeros((4, 4))
    expected[2:4, 0:2] = [[1, 2], [3, 4]]
    np.testing.assert_array_equal(out[0, 0], expected)


def test_conv_transpose_rejects_out_in_layout():
    x = RNG.standard_normal((1, 3, 2, 2))
    w = RNG.standard_normal((5, 3, 2, 2))  # [out, in] would be wrong
    with pytest.raises(ValueError, match="input channels"):
        reference.conv_transpose2x2(x, w, np.zeros(3))


@pytest.mark.parametrize("hw", [(4, 4), (3, 5), (1, 1), (2, 7)])
@pytest.mark.parametrize("k,pad", [(3, 1), (1, 0), (3, 0)])
def test_conv2d_with_padding(hw, k, pad):
    h, w_ = hw
    if h + 2 * pad < k or w_ + 2 * pad < k:
        pytest.skip("kernel larger than padded input")
    x = RNG.standard_normal((2, 3, h, w_))
    w = RNG.standard_normal((4, 3, k, k))
    b = RNG.standard_normal(4)
    np.testing.assert_allclose(reference.conv2d(x, w, b, pad), naive_conv2d(x, w, b, pad), rtol=1e-12, atol=1e-12)


def test_conv2d_is_cross_correlation():
    # a single tap at (dy, dx) = (0, 0) of a 3x3 kernel with pad 1 reads pixel (i-1, j-1)
    x = RNG.standard_normal((1, 1, 4, 5))
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 0, 0] = 1.0
    out = reference.conv2d(x, w, np.zeros(1), 1)
    np.testing.assert_array_equal(out[0, 0, 1:, 1:], x[0, 0, :-1, :-1])
    np.testing.assert_array_equal(out[0, 0, 0, :], 0.0)
    np.testing.assert_array_equal(out[0, 0, :, 0], 0.0)


@pytest.mark.parametrize("hw", [(4, 4), (5, 5), (5, 4), (3, 7), (2, 2), (7, 3)])
def test_maxpool_floor(hw):
    x = RNG.standard_normal((2, 3) + hw)
    out = reference.maxpool2x2(x)
    assert out.shape == (2, 3, hw[0] // 2, hw[1] // 2)
    np.testing.assert_array_equal(out, naive_maxpool(x))


def test_maxpool_nan_propagates():
    x = RNG.standard_normal((1, 2, 5, 5))
    x[0, 0, 1, 2] = np.nan  # window (0, 1)
    x[0, 1, 4, 4] = np.nan  # dropped by the floor: affects nothing
    x[0, 1, 0, 0] = -np.inf
    out = reference.maxpool2x2(x)
    expected = naive_maxpool(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out[0, 0, 0, 1])
    assert np.isnan(out).sum() == 1
    np.testing.assert_array_equal(out[~np.isnan(out)], expected[~np.isnan(expected)])


def test_maxpool_needs_2x2():
    with pytest.raises(ValueError):
        reference.maxpool2x2(np.zeros((1, 1, 1, 4)))


def test_gelu_matches_math_erf():
    v = np.concatenate(
        [np.linspace(-10, 10, 2001), [-40.0, -6.5, -1e-8, 0.0, 1e-300, 1e-8, 40.0], RNG.standard_normal(1000) * 3]
    )
    expected = np.array([naive_gelu(t) for t in v])
    # (1 + erf) cancels for negative x, so compare with an absolute floor of a few ulp of 1
    np.testing.assert_allclose(reference.gelu(v), expected, rtol=1e-14, atol=1e-15)


def test_gelu_is_exact_not_tanh():
    # exact GELU(1) = 0.841344746068543; the tanh approximation gives 0.841191990607...
    assert abs(float(reference.gelu(1.0)) - 0.8413447460685429) < 1e-15
    tanh_approx = 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * (1 + 0.044715)))
    assert abs(float(reference.gelu(1.0)) - tanh_approx) > 1e-4


def test_erf_fallback_is_math_erf(monkeypatch):
    v = RNG.standard_normal((7, 11)) * 2
    monkeypatch.setattr(reference, "_scipy_erf", None)
    got = reference.erf(v)
    assert got.dtype == np.float64 and got.shape == v.shape
    np.testing.assert_array_equal(got, np.vectorize(math.erf)(v))


# ------------------------------------------------------------------------------------------------
# position encoding
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d,h,w", [(8, 3, 5), (4, 1, 1), (16, 6, 2), (12, 7, 7), (2, 2, 3)])
def test_position_encoding_matches_spec_loop(d, h, w):
    pos = reference.position_encoding(d, h, w)
    assert pos.shape == (1, d, h, w) and pos.dtype == np.float64
    np.testing.assert_allclose(pos, naive_pos(d, h, w), rtol=0, atol=1e-15)


def test_position_encoding_channel_order():
    d, h, w = 8, 4, 6
    pos = reference.position_encoding(d, h, w)[0]
    F = d // 2
    # y half first: constant along columns; x half: constant along rows
    assert np.all(pos[:F] == pos[:F, :, :1])
    assert np.all(pos[F:] == pos[F:, :1, :])
    # channel 0 = sin(y_norm), channel 1 = cos(y_norm) (same frequency, dim_t = 1)
    y = (np.arange(h) + 1) / (h + 1e-6) * 2 * np.pi
    x = (np.arange(w) + 1) / (w + 1e-6) * 2 * np.pi
    np.testing.assert_allclose(pos[0, :, 0], np.sin(y), atol=1e-15)
    np.testing.assert_allclose(pos[1, :, 0], np.cos(y), atol=1e-15)
    np.testing.assert_allclose(pos[F, 0, :], np.sin(x), atol=1e-15)
    np.testing.assert_allclose(pos[F + 1, 0, :], np.cos(x), atol=1e-15)
    # channel 2 = sin(y / 10000^(2/F))
    np.testing.assert_allclose(pos[2, :, 0], np.sin(y / 10000 ** (2 / F)), atol=1e-15)
    # the last row / column is just below 2pi (because of eps), not at it
    assert abs(pos[0, -1, 0] - math.sin(2 * math.pi * h / (h + 1e-6))) < 1e-15


def test_position_encoding_needs_even_d():
    with pytest.raises(ValueError):
        reference.position_encoding(7, 2, 2)


# ------------------------------------------------------------------------------------------------
# the whole neck
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(3, 2), (2, 3), (3, 3)])
def test_forward_matches_naive_composition(hw):
    c, d = 8, 4
    w = tiny_weights(c, d, seed=5)
    x = RNG.standard_normal((2, c) + hw)
    out = reference.forward(w, x)
    assert len(out) == 4
    for level, (feat, pos) in enumerate(out):
        np.testing.assert_allclose(feat, naive_forward(w, x, level), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(pos, naive_pos(d, *feat.shape[2:]), atol=1e-15)


@pytest.mark.parametrize("hw", [(6, 5), (7, 5), (3, 9), (1, 1), (8, 8), (2, 3)])
def test_level_shapes_odd_and_non_square(hw):
    c, d, b = 8, 6, 3
    h, w_ = hw
    weights = tiny_weights(c, d)
    levels = [0, 1, 2, 3] if min(hw) >= 2 else [0, 1, 2]
    out = reference.forward(weights, RNG.standard_normal((b, c, h, w_)), levels=levels)
    expected = {0: (b, d, 4 * h, 4 * w_), 1: (b, d, 2 * h, 2 * w_), 2: (b, d, h, w_), 3: (b, d, h // 2, w_ // 2)}
    for level, (feat, pos) in zip(levels, out):
        assert feat.shape == expected[level] == reference.level_shape(level, b, d, h, w_)
        assert pos.shape == (1,) + expected[level][1:]
        assert feat.dtype == np.float64 and pos.dtype == np.float64


def test_level_3_needs_2x2():
    with pytest.raises(ValueError):
        reference.forward(tiny_weights(), RNG.standard_normal((1, 8, 1, 5)), levels=[3])


def test_nhwc_equals_nchw():
    weights = tiny_weights(8, 4)
    x = RNG.standard_normal((2, 8, 5, 3))
    a = reference.forward(weights, x, layout="NCHW")
    b = reference.forward(weights, np.ascontiguousarray(x.transpose(0, 2, 3, 1)), layout="NHWC")
    for (fa, pa), (fb, pb) in zip(a, b):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("levels", [(2,), (0, 2), (1, 3), (3, 0), [1]])
def test_level_subsets(levels):
    weights = tiny_weights(8, 4)
    x = RNG.standard_normal((1, 8, 4, 3))
    full = reference.forward(weights, x)
    sub = reference.forward(weights, x, levels=levels)
    assert len(sub) == len(set(levels))
    for (feat, pos), level in zip(sub, sorted(set(levels))):
        np.testing.assert_array_equal(feat, full[level][0])


def test_forward_takes_canonical_names_and_infers_widths():
    w32 = checkpoint.synthetic_neck(12, 6, seed=3, group=None)
    x = RNG.standard_normal((1, 12, 2, 2))
    a = reference.forward(w32, x)
    b = reference.forward({k: v.astype(np.float64) for k, v in w32.items()}, x)
    for (fa, _), (fb, _) in zip(a, b):
        np.testing.assert_array_equal(fa, fb)
    assert reference.neck_config(w32) == (12, 6)
    assert a[0][0].shape == (1, 6, 8, 8)
    # checkpoint names are the library's to resolve (Neck.weights()), not the reference's
    prefixed = {"detector.backbone.vision_backbone.convs." + k: v for k, v in w32.items()}
    with pytest.raises(KeyError, match="0.dconv_2x2_0.weight"):
        reference.forward(prefixed, x)


def test_forward_checks_channels():
    with pytest.raises(ValueError, match="input channels"):
        reference.forward(tiny_weights(8, 4), RNG.standard_normal((1, 12, 3, 3)))


def test_forward_missing_tensor_is_named():
    w = tiny_weights(8, 4)
    del w["2.conv_3x3.bias"]
    with pytest.raises(KeyError, match="2.conv_3x3.bias"):
        reference.forward(w, RNG.standard_normal((1, 8, 3, 3)), levels=[2])


def test_normalised_error():
    ref = np.array([1.0, -4.0, 2.0])
    assert reference.normalised_error(ref, ref) == 0.0
    assert reference.normalised_error(ref + [0, 0, 0.4], ref) == pytest.approx(0.1)
    assert math.isnan(reference.normalised_error(np.array([np.nan, 0, 0]), ref))
    with pytest.raises(ValueError):
        reference.normalised_error(ref[:2], ref)


def test_real_widths_small_grid_runs_quickly():
    weights = checkpoint.synthetic_neck(1024, 256, seed=0, group=None)
    x = RNG.standard_normal((1, 1024, 6, 5))
    out = reference.forward(weights, x)
    assert [f.shape for f, _ in out] == [(1, 256, 24, 20), (1, 256, 12, 10), (1, 256, 6, 5), (1, 256, 3, 2)]
    for f, _ in out:
        assert 0.05 < np.max(np.abs(f)) < 10  # outputs of order one
