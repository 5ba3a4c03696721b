"""The float64 NumPy reference of the SAM 3 detection neck: the oracle the tests compare against.

Written to be read against PyTorch's definition of the neck (upstream Sam3DualViTDetNeck) rather
than to be fast, but
vectorised enough (matrix products over the channel axis) that the real widths (C=1024, d=256) on
a 72x72 grid take seconds. Internally the branches work channels-last ([B, H, W, C]) so that every
layer is a product over the last axis; the public functions take and return NCHW like PyTorch.

Per branch i (upstream Sam3DualViTDetNeck):
  0 (scale 4):   dconv_2x2_0 -> GELU -> dconv_2x2_1 -> conv_1x1 -> conv_3x3
  1 (scale 2):   dconv_2x2 -> conv_1x1 -> conv_3x3
  2 (scale 1):   conv_1x1 -> conv_3x3
  3 (scale 0.5): maxpool 2x2 s2 (floor) -> conv_1x1 -> conv_3x3
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from . import dtypes as _dtypes
from .neck import parse_levels

__all__ = [
    "SCALES",
    "NUM_LEVELS",
    "gelu",
    "erf",
    "conv_transpose2x2",
    "conv2d",
    "maxpool2x2",
    "position_encoding",
    "TOLERANCE",
    "OUTPUT_TOLERANCE",
    "POSITION_TOLERANCE",
    "tolerance",
    "position_tolerance",
    "round_input",
    "to_layout",
    "neck_config",
    "level_shape",
    "forward",
    "normalised_error",
]

#: The bound on normalised_error of the library's output against this reference, per precision
#: mode (the guarantee sam3_neck.h states for sam3_neck_precision); what the demo, the benchmark
#: and the tests check against.
TOLERANCE = {"default": 1e-4, "strict": 1e-5, "fast": 1e-2}
#: The bound on normalised_error for half-precision outputs (output_dtype), against the float64
#: reference computed on the same (rounded) input, in every precision mode. Rounding to nearest
#: adds at most half a unit in the last place, a relative 2**-11 = 4.9e-4 for float16 (10 stored
#: significand bits) and 2**-8 = 3.9e-3 for bfloat16 (7 bits), to the float32 result's error
#: (<= TOLERANCE["default"] = 1e-4): 5.9e-4 and 4.0e-3 at most, so the bounds leave about 1.7x
#: and 2x headroom. (Values past float16's 65504 become Inf: no bound holds for those.)
OUTPUT_TOLERANCE = {"float16": 1e-3, "bfloat16": 8e-3}
#: The bound on the max absolute error of the position encodings (values in [-1, 1]).
POSITION_TOLERANCE = 1e-5
#: Half a unit in the last place of [0.5, 1), the largest rounding error of a value in [-1, 1],
#: per output element type.
_HALF_ULP_BELOW_ONE = {"float32": 2.0**-25, "float16": 2.0**-12, "bfloat16": 2.0**-9}


def tolerance(precision: str = "default", output_dtype: str = "float32") -> float:
    """The bound on normalised_error of a plan's outputs: TOLERANCE[precision] for float32
    outputs, OUTPUT_TOLERANCE[output_dtype] for float16 / bfloat16 outputs; in the fast mode,
    TOLERANCE["fast"] plus the output's rounding (a relative 2**-11 or 2**-8)."""
    if precision == "fast":
        return TOLERANCE["fast"] + 2.0 * _HALF_ULP_BELOW_ONE.get(output_dtype, 0.0) * (output_dtype != "float32")
    if output_dtype == "float32":
        return TOLERANCE[precision]
    return OUTPUT_TOLERANCE[output_dtype]


def position_tolerance(output_dtype: str = "float32") -> float:
    """The bound on the max absolute error of position encodings of output type output_dtype:
    POSITION_TOLERANCE plus one rounding to that type (half an ulp of [0.5, 1))."""
    if output_dtype == "float32":
        return POSITION_TOLERANCE
    return POSITION_TOLERANCE + _HALF_ULP_BELOW_ONE[output_dtype]


#: Scale factor of each level, in level order.
SCALES = (4.0, 2.0, 1.0, 0.5)
NUM_LEVELS = 4

# ------------------------------------------------------------------------------------------------
# erf and GELU (exact, float64)
# ------------------------------------------------------------------------------------------------

try:  # optional: SciPy's erf is vectorised and accurate to about one ulp in float64
    from scipy.special import erf as _scipy_erf  # type: ignore
except Exception:  # pragma: no cover - depends on the environment
    _scipy_erf = None

_math_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x) -> np.ndarray:
    """The error function in float64 (SciPy when available, else math.erf element by element)."""
    a = np.asarray(x, dtype=np.float64)
    if _scipy_erf is not None:
        return np.asarray(_scipy_erf(a), dtype=np.float64)
    return np.asarray(_math_erf(a), dtype=np.float64).reshape(a.shape)


def gelu(x) -> np.ndarray:
    """PyTorch's default nn.GELU(): 0.5 * x * (1 + erf(x / sqrt(2))) (not the tanh approximation)."""
    a = np.asarray(x, dtype=np.float64)
    return 0.5 * a * (1.0 + erf(a / math.sqrt(2.0)))


# ------------------------------------------------------------------------------------------------
# Layers, channels-last internals
# ------------------------------------------------------------------------------------------------


def _check_bias(b: np.ndarray, n: int, what: str) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    if b.shape != (n,):
        raise ValueError(f"{what}: bias has shape {b.shape}, expected ({n},)")
    return b


def _tconv2x2_nhwc(x: np.ndarray, w: np.ndarray, b: np.ndarray, what: str = "conv_transpose2x2"):
    """ConvTranspose2d(k=2, s=2, pad=0). x [B,H,W,Cin], w [Cin,Cout,2,2] -> [B,2H,2W,Cout]."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 4 or w.shape[2:] != (2, 2):
        raise ValueError(f"{what}: weight has shape {w.shape}, expected [in, out, 2, 2]")
    bsz, h, wd, cin = x.shape
    if w.shape[0] != cin:
        raise ValueError(f"{what}: weight has {w.shape[0]} input channels, input has {cin}")
    cout = w.shape[1]
    b = _check_bias(b, cout, what)
    # y[n, i, j, o, a, b] = sum_c x[n, i, j, c] * w[c, o, a, b]
    y = np.tensordot(x, w, axes=([3], [0]))
    # output pixel (2i + a, 2j + b): order the axes as [n, i, a, j, b, o] and merge (i,a), (j,b)
    y = y.transpose(0, 1, 4, 2, 5, 3).reshape(bsz, 2 * h, 2 * wd, cout)
    return y + b


def _conv2d_nhwc(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int, what: str = "conv2d"):
    """Conv2d(stride 1, zero padding `pad`). x [B,H,W,Cin], w [Cout,Cin,kh,kw] -> [B,Ho,Wo,Cout]."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"{what}: weight has shape {w.shape}, expected [out, in, kh, kw]")
    bsz, h, wd, cin = x.shape
    cout, wcin, kh, kw = w.shape
    if wcin != cin:
        raise ValueError(f"{what}: weight has {wcin} input channels, input has {cin}")
    b = _check_bias(b, cout, what)
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"{what}: a {kh}x{kw} kernel does not fit a {h}x{wd} input with pad {pad}")
    xp = x
    if pad:
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.empty((bsz, ho, wo, cout), dtype=np.float64)
    out[...] = b
    # out[n, i, j] = b + sum_{dy,dx} xp[n, i+dy, j+dx] @ w[:, :, dy, dx].T : one matrix product per
    # kernel tap, taken over whole padded rows (a contiguous operand), then shifted by dx columns.
    for dy in range(kh):
        rows = xp[:, dy : dy + ho, :, :]
        for dx in range(kw):
            z = rows @ w[:, :, dy, dx].T
            out += z[:, :, dx : dx + wo, :]
    return out


def _maxpool2x2_nhwc(x: np.ndarray) -> np.ndarray:
    """MaxPool2d(k=2, s=2): floor on odd sizes (the last row/column is dropped); a NaN anywhere in
    a window gives NaN, like PyTorch."""
    bsz, h, wd, c = x.shape
    ho, wo = h // 2, wd // 2
    if ho < 1 or wo < 1:
        raise ValueError(f"maxpool2x2 needs a grid of at least 2x2, got {h}x{wd}")
    v = x[:, : 2 * ho, : 2 * wo, :].reshape(bsz, ho, 2, wo, 2, c)
    return v.max(axis=(2, 4))  # np.max propagates NaN


def _nchw_to_nhwc(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 4:
        raise ValueError(f"{what}: expected a 4-D [B, C, H, W] array, got shape {a.shape}")
    return a.transpose(0, 2, 3, 1)


def _nhwc_to_nchw(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def conv_transpose2x2(x, w, b) -> np.ndarray:
    """ConvTranspose2d(k=2, s=2, padding 0) in float64.

    x [B, Cin, H, W]; w [Cin, Cout, 2, 2] (PyTorch layout); b [Cout] -> [B, Cout, 2H, 2W] with
    out[n, o, 2i+a, 2j+b] = b[o] + sum_c x[n, c, i, j] * w[c, o, a, b].
    """
    return _nhwc_to_nchw(_tconv2x2_nhwc(_nchw_to_nhwc(x, "conv_transpose2x2"), w, b))


def conv2d(x, w, b, pad: int = 0) -> np.ndarray:
    """Conv2d, stride 1, zero padding `pad`, in float64 (cross-correlation, like PyTorch).

    x [B, Cin, H, W]; w [Cout, Cin, kh, kw]; b [Cout] -> [B, Cout, H+2pad-kh+1, W+2pad-kw+1].
    """
    return _nhwc_to_nchw(_conv2d_nhwc(_nchw_to_nhwc(x, "conv2d"), w, b, int(pad)))


def maxpool2x2(x) -> np.ndarray:
    """MaxPool2d(k=2, s=2) in float64: x [B, C, H, W] -> [B, C, H//2, W//2], NaN-propagating."""
    return _nhwc_to_nchw(_maxpool2x2_nhwc(_nchw_to_nhwc(x, "maxpool2x2")))


# ------------------------------------------------------------------------------------------------
# Position encoding
# ------------------------------------------------------------------------------------------------


def position_encoding(d: int, h: int, w: int) -> np.ndarray:
    """The sine position encoding of one level, float64 [1, d, h, w] (upstream PositionEmbeddingSine).

    F = d/2 features per axis, T = 10000, eps = 1e-6, scale = 2*pi:
      y_norm(r) = (r+1) / (h + eps) * 2pi,   x_norm(c) = (c+1) / (w + eps) * 2pi,
      dim_t[k] = T ** (2 * floor(k/2) / F),
      channels 0..F-1 encode y, F..2F-1 encode x; channel k of a half is sin(v / dim_t[k]) for even
      k and cos(v / dim_t[k]) for odd k.
    """
    d, h, w = int(d), int(h), int(w)
    if d < 2 or d % 2 != 0:
        raise ValueError(f"position_encoding needs an even d >= 2, got {d}")
    if h < 1 or w < 1:
        raise ValueError(f"position_encoding needs h, w >= 1, got {h}x{w}")
    f = d // 2
    temperature, eps, scale = 10000.0, 1e-6, 2.0 * math.pi
    y_norm = (np.arange(h, dtype=np.float64) + 1.0) / (h + eps) * scale
    x_norm = (np.arange(w, dtype=np.float64) + 1.0) / (w + eps) * scale
    k = np.arange(f)
    dim_t = temperature ** (2.0 * (k // 2) / f)
    even = (k % 2) == 0

    def encode(v):  # v [n] -> [F, n]
        arg = v[None, :] / dim_t[:, None]
        return np.where(even[:, None], np.sin(arg), np.cos(arg))

    pos = np.empty((1, d, h, w), dtype=np.float64)
    pos[0, :f] = encode(y_norm)[:, :, None]
    pos[0, f:] = encode(x_norm)[:, None, :]
    return pos


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------


def _float64(weights: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}


def _get(w: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    try:
        return w[key]
    except KeyError:
        raise KeyError(f"neck tensor {key!r} is missing from the weights") from None


def neck_config(weights: Mapping[str, np.ndarray]) -> Tuple[int, int]:
    """(trunk_dim C, d_model d) inferred from the shapes of the neck's tensors (canonical names)."""
    w = weights
    c = d = None
    for i in (2, 3):
        if f"{i}.conv_1x1.weight" in w:
            d, c = w[f"{i}.conv_1x1.weight"].shape[:2]
            break
    if c is None and "0.dconv_2x2_0.weight" in w:
        c = w["0.dconv_2x2_0.weight"].shape[0]
    if c is None and "1.dconv_2x2.weight" in w:
        c = w["1.dconv_2x2.weight"].shape[0]
    if d is None:
        for i in range(NUM_LEVELS):
            if f"{i}.conv_3x3.weight" in w:
                d = w[f"{i}.conv_3x3.weight"].shape[0]
                break
    if c is None or d is None:
        raise KeyError("cannot infer trunk_dim and d_model: the neck's tensors are missing")
    return int(c), int(d)


def level_shape(level: int, batch: int, d_model: int, height: int, width: int) -> Tuple[int, int, int, int]:
    """[B, d, h, w] of level `level` for an H x W input grid."""
    if level == 0:
        return (batch, d_model, 4 * height, 4 * width)
    if level == 1:
        return (batch, d_model, 2 * height, 2 * width)
    if level == 2:
        return (batch, d_model, height, width)
    if level == 3:
        return (batch, d_model, height // 2, width // 2)
    raise ValueError(f"level must be in 0..3, got {level}")


# ------------------------------------------------------------------------------------------------
# The neck
# ------------------------------------------------------------------------------------------------


def _branch(w: Mapping[str, np.ndarray], i: int, x: np.ndarray) -> np.ndarray:
    """Branch i on channels-last float64 input x [B, H, W, C] -> [B, h, w, d]."""
    p = f"{i}."

    def wb(module):
        return _get(w, p + module + ".weight"), _get(w, p + module + ".bias")

    if i == 0:
        y = _tconv2x2_nhwc(x, *wb("dconv_2x2_0"), what="0.dconv_2x2_0")
        y = gelu(y)
        y = _tconv2x2_nhwc(y, *wb("dconv_2x2_1"), what="0.dconv_2x2_1")
    elif i == 1:
        y = _tconv2x2_nhwc(x, *wb("dconv_2x2"), what="1.dconv_2x2")
    elif i == 2:
        y = x
    elif i == 3:
        y = _maxpool2x2_nhwc(x)
    else:
        raise ValueError(f"level must be in 0..3, got {i}")
    y = _conv2d_nhwc(y, *wb("conv_1x1"), pad=0, what=p + "conv_1x1")
    y = _conv2d_nhwc(y, *wb("conv_3x3"), pad=1, what=p + "conv_3x3")
    return y


def round_input(x, input_dtype: Optional[str]) -> np.ndarray:
    """x as the float64 values a plan with input_dtype sees: float values rounded to nearest even
    to that type ("float32", "float16", "bfloat16"); for bfloat16 also an ml_dtypes.bfloat16 array
    or a uint16 array of bfloat16 bits, taken as they are. None: x as given (any float dtype)."""
    a = np.asarray(x)
    if input_dtype is None:
        if a.dtype == np.uint16:
            raise TypeError("x is uint16: pass input_dtype='bfloat16' if it holds bfloat16 bits")
        return _dtypes.to_float32(a).astype(np.float64) if a.dtype.kind != "f" else a.astype(np.float64)
    if input_dtype not in _dtypes.DTYPES:
        raise ValueError(f"input_dtype must be one of {list(_dtypes.DTYPES)}, got {input_dtype!r}")
    if input_dtype == "bfloat16":
        if a.dtype.kind == "f":
            a = _dtypes.to_bfloat16_bits(a)
        return _dtypes.to_float32(a, "bfloat16").astype(np.float64)
    if a.dtype.kind != "f":
        raise TypeError(f"x must hold float values for input_dtype={input_dtype!r}, got {a.dtype}")
    return a.astype(input_dtype).astype(np.float64)


def to_layout(a, output_layout: str) -> np.ndarray:
    """An NCHW array [B, d, h, w] arranged as an output of output_layout: "NCHW" (unchanged),
    "NHWC" [B, h, w, d] or "sequence" [h*w, B, d] (features.flatten(2).permute(2, 0, 1))."""
    a = np.asarray(a)
    if a.ndim != 4:
        raise ValueError(f"to_layout takes a [B, d, h, w] array, got shape {a.shape}")
    if output_layout == "NCHW":
        return a
    if output_layout == "NHWC":
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    if output_layout == "sequence":
        b, d, h, w = a.shape
        return np.ascontiguousarray(a.reshape(b, d, h * w).transpose(2, 0, 1))
    raise ValueError(f"output_layout must be 'NCHW', 'NHWC' or 'sequence', got {output_layout!r}")


def _round_output(a: np.ndarray, output_dtype: Optional[str]) -> np.ndarray:
    if output_dtype is None or output_dtype == "float64":
        return a
    if output_dtype == "bfloat16":  # through float32, like the library's float32 result
        return _dtypes.to_bfloat16(a)
    if output_dtype in ("float32", "float16"):
        return a.astype(output_dtype)
    raise ValueError(f"output_dtype must be None or one of {list(_dtypes.DTYPES)}, got {output_dtype!r}")


def forward(
    weights: Mapping[str, np.ndarray],
    x,
    layout: str = "NCHW",
    levels: Optional[Iterable[int]] = None,
    input_dtype: Optional[str] = None,
    output_dtype: Optional[str] = None,
    output_layout: str = "NCHW",
) -> List[Tuple[np.ndarray, np.ndarray]]:
    """The neck in float64.

    weights: the neck's tensors by canonical name ("0.conv_1x1.weight", ...), what Neck.weights()
      returns for a loaded checkpoint (the library resolves every format and naming scheme).
    x: [B, C, H, W] for layout "NCHW" or [B, H, W, C] for "NHWC" (any float dtype).
    levels: level indices to compute, or None for all four.
    input_dtype: None (x as given), or "float32" / "float16" / "bfloat16": x is first rounded to
      that type (nearest even), as a plan compiled with that input_dtype sees it; for "bfloat16"
      x may also be an ml_dtypes.bfloat16 array or uint16 bfloat16 bits (see round_input).
    output_dtype: None (float64, the oracle), or "float32" / "float16" / "bfloat16": the float64
      results rounded to that type (bfloat16 through float32; ml_dtypes.bfloat16 or uint16 bits).
    output_layout: "NCHW" ([B, d, h, w], pos [1, d, h, w]), "NHWC" ([B, h, w, d]) or "sequence"
      ([h*w, B, d], pos [h*w, 1, d]), as Neck.compile's option.
    Returns one (features, pos) pair per requested level, in increasing level order.
    """
    w = _float64(weights)
    lay = str(layout).upper()
    out_lay = "sequence" if str(output_layout).lower() == "sequence" else str(output_layout).upper()
    to_layout(np.zeros((1, 1, 1, 1)), out_lay)  # checks the name before any work
    _round_output(np.zeros(1), output_dtype)
    a = round_input(x, input_dtype)
    if a.ndim != 4:
        raise ValueError(f"x must be 4-D ([B, C, H, W] or [B, H, W, C]), got shape {a.shape}")
    if lay == "NCHW":
        xh = a.transpose(0, 2, 3, 1)
    elif lay == "NHWC":
        xh = a
    else:
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    results = []
    for i in range(NUM_LEVELS) if levels is None else parse_levels(levels):
        y = _branch(w, i, xh)
        feat = _nhwc_to_nchw(y)
        pos = position_encoding(feat.shape[1], feat.shape[2], feat.shape[3])
        results.append(
            (
                _round_output(to_layout(feat, out_lay), output_dtype),
                _round_output(to_layout(pos, out_lay), output_dtype),
            )
        )
    return results


def normalised_error(out, ref) -> float:
    """max|out - ref| / max|ref| (the project's per-level error measure; max|out - ref| if ref is
    all zeros). NaN anywhere gives NaN, which fails any `<=` test."""
    for what, v in (("out", out), ("ref", ref)):
        if np.asarray(v).dtype.kind in "iu":
            raise TypeError(
                f"{what} holds {np.asarray(v).dtype}, not float values; widen "
                "bfloat16 bits first with sam3neck.to_float32"
            )
    o = np.asarray(out, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if o.shape != r.shape:
        raise ValueError(f"shapes differ: {o.shape} vs reference {r.shape}")
    if r.size == 0:
        return 0.0
    diff = float(np.max(np.abs(o - r)))
    scale = float(np.max(np.abs(r)))
    if scale == 0.0 or math.isnan(scale):
        return diff if scale == 0.0 else float("nan")
    return diff / scale
