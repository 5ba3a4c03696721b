"""The element types of the neck's inputs and outputs in NumPy: float32, float16 and bfloat16.

NumPy has float16 but no bfloat16. A bfloat16 array is either an ``ml_dtypes.bfloat16`` array
(when the optional package ml_dtypes is installed: ``pip install 'sam3neck[bf16]'``) or a uint16
array holding the bit patterns (the upper 16 bits of the float32 of the same value). The neck
takes both as bfloat16 input and returns ml_dtypes.bfloat16 arrays when ml_dtypes is installed,
else uint16 bits. One line widens bits to float32::

    f32 = (bits.astype(np.uint32) << 16).view(np.float32)      # what to_float32(bits) does

ml_dtypes is imported only when a bfloat16 plan or conversion asks for it, never by
``import sam3neck``.
"""

from __future__ import annotations

import importlib
from typing import Optional

import numpy as np

__all__ = [
    "DTYPES",
    "bfloat16_dtype",
    "storage_dtypes",
    "to_bfloat16",
    "to_bfloat16_bits",
    "to_dtype",
    "to_float32",
]

#: The element types a plan can take and write, by name.
DTYPES = ("float32", "float16", "bfloat16")

_UNSET = object()
_bf16 = _UNSET  # np.dtype of ml_dtypes.bfloat16, or None when ml_dtypes is not installed


def bfloat16_dtype() -> Optional[np.dtype]:
    """np.dtype(ml_dtypes.bfloat16), or None when ml_dtypes is not installed (imported once)."""
    global _bf16
    if _bf16 is _UNSET:
        try:
            _bf16 = np.dtype(importlib.import_module("ml_dtypes").bfloat16)
        except ImportError:
            _bf16 = None
    return _bf16


def storage_dtypes(name: str) -> tuple:
    """The NumPy dtypes that hold elements of the neck's type `name` ("float32", "float16",
    "bfloat16"), the one outputs are allocated with first: (float32,), (float16,), and for
    bfloat16 (ml_dtypes.bfloat16, uint16) with ml_dtypes installed, else (uint16,)."""
    if name == "float32":
        return (np.dtype(np.float32),)
    if name == "float16":
        return (np.dtype(np.float16),)
    if name == "bfloat16":
        bf = bfloat16_dtype()
        return (np.dtype(np.uint16),) if bf is None else (bf, np.dtype(np.uint16))
    raise ValueError(f"element type must be one of {list(DTYPES)}, got {name!r}")


def to_bfloat16_bits(x) -> np.ndarray:
    """float values -> uint16 bfloat16 bit patterns, rounded to nearest even (what the library's
    stores do); NaN stays NaN (quiet), +-Inf stays +-Inf, values past bfloat16's range round to
    +-Inf. Float64 input is first rounded to float32 (bfloat16 = the upper half of a float32)."""
    a = np.asarray(x)
    if a.dtype == np.uint16:
        raise TypeError("to_bfloat16_bits takes float values; this array already holds uint16 (bfloat16 bits?)")
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    out = (rounded >> np.uint32(16)).astype(np.uint16)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if nan.any():
        out[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return out


def to_bfloat16(x) -> np.ndarray:
    """float values -> bfloat16 (nearest even): an ml_dtypes.bfloat16 array when ml_dtypes is
    installed, else uint16 bits. Either is what a plan compiled with input_dtype="bfloat16" runs."""
    bits = to_bfloat16_bits(x)
    bf = bfloat16_dtype()
    return bits if bf is None else bits.view(bf)


def to_float32(a, dtype: Optional[str] = None) -> np.ndarray:
    """Widens float16 / bfloat16 values to float32 (exact). `a` is a float array, an
    ml_dtypes.bfloat16 array, or a uint16 array of bfloat16 bits (uint16 is read as bfloat16 bits
    only; pass dtype="bfloat16" to say so explicitly, e.g. for Level.features). dtype, when given,
    is the neck's element type name the array holds (Level.dtype)."""
    a = np.asarray(a)
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if a.dtype == np.uint16:
        if dtype not in (None, "bfloat16"):
            raise TypeError(f"a uint16 array holds bfloat16 bits, not {dtype}")
        return (a.astype(np.uint32) << np.uint32(16)).view(np.float32)
    bf = bfloat16_dtype() if a.dtype.kind == "V" or a.dtype.name == "bfloat16" else None
    if bf is not None and a.dtype == bf:
        return a.astype(np.float32)
    if a.dtype.kind != "f":
        raise TypeError(f"to_float32 takes float16, bfloat16 or float32 values, got {a.dtype}")
    return a.astype(np.float32, copy=False)


def to_dtype(x, name: str) -> np.ndarray:
    """float values -> an array a plan with input_dtype=`name` runs: float32, float16 (nearest
    even, as NumPy rounds), or bfloat16 (to_bfloat16). C-contiguous."""
    if name == "float32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if name == "float16":
        return np.ascontiguousarray(x, dtype=np.float16)
    if name == "bfloat16":
        return to_bfloat16(x)
    raise ValueError(f"dtype must be one of {list(DTYPES)}, got {name!r}")
