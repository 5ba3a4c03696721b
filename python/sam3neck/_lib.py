"""ctypes declarations of the C ABI in include/sam3_neck.h, and lazy loading of libsam3neck.

Every function of the header is declared here exactly once (FUNCTIONS). The library is found and
loaded on first use (get_lib()), so importing the package and using the reference needs no library.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_float,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_void_p,
)
from pathlib import Path
from typing import List, Optional

__all__ = [
    "ABI_VERSION",
    "NUM_LEVELS",
    "LibraryNotFoundError",
    "LibraryLoadError",
    "LoadParams",
    "Config",
    "CompileParams",
    "IoParams",
    "FUNCTIONS",
    "STATUS_NAMES",
    "candidate_paths",
    "library_path",
    "get_lib",
]

#: SAM3_NECK_ABI_VERSION of the header these declarations follow.
ABI_VERSION = 1
#: SAM3_NECK_NUM_LEVELS
NUM_LEVELS = 4

# sam3_neck_status
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_MISSING_TENSOR = 4
ERR_SHAPE = 5
ERR_DTYPE = 6
ERR_NOT_COMPILED = 7
ERR_OUT_OF_MEMORY = 8
ERR_INTERNAL = 9

#: Enumerator names of sam3_neck_status, by value.
STATUS_NAMES = {
    OK: "SAM3_NECK_OK",
    ERR_INVALID_ARGUMENT: "SAM3_NECK_ERR_INVALID_ARGUMENT",
    ERR_IO: "SAM3_NECK_ERR_IO",
    ERR_FORMAT: "SAM3_NECK_ERR_FORMAT",
    ERR_MISSING_TENSOR: "SAM3_NECK_ERR_MISSING_TENSOR",
    ERR_SHAPE: "SAM3_NECK_ERR_SHAPE",
    ERR_DTYPE: "SAM3_NECK_ERR_DTYPE",
    ERR_NOT_COMPILED: "SAM3_NECK_ERR_NOT_COMPILED",
    ERR_OUT_OF_MEMORY: "SAM3_NECK_ERR_OUT_OF_MEMORY",
    ERR_INTERNAL: "SAM3_NECK_ERR_INTERNAL",
}

# sam3_neck_kind
KIND_SAM3 = 0
KIND_SAM2 = 1
# sam3_neck_layout
LAYOUT_NCHW = 0
LAYOUT_NHWC = 1
# sam3_neck_precision
PRECISION_DEFAULT = 0
PRECISION_STRICT = 1
PRECISION_FAST = 2  # since 0.4.0
# sam3_neck_dtype
DTYPE_FLOAT32 = 0
DTYPE_FLOAT16 = 1
DTYPE_BFLOAT16 = 2
# sam3_neck_output_layout
OUTPUT_NCHW = 0
OUTPUT_NHWC = 1
OUTPUT_SEQUENCE = 2

# C enums are passed as int.
c_status = c_int
c_kind = c_int
c_layout = c_int
c_precision = c_int
c_dtype = c_int
c_output_layout = c_int
c_neck_p = c_void_p  # sam3_neck * (opaque)


class LoadParams(Structure):
    """struct sam3_neck_load_params"""

    _fields_ = [
        ("kind", c_kind),  # sam3_neck_kind
        ("prefix", c_char_p),  # const char * (NULL = any known prefix)
    ]


class Config(Structure):
    """struct sam3_neck_config"""

    _fields_ = [
        ("trunk_dim", c_int32),
        ("d_model", c_int32),
        ("scales", c_float * NUM_LEVELS),
    ]


class CompileParams(Structure):
    """struct sam3_neck_compile_params"""

    _fields_ = [
        ("batch", c_int32),
        ("height", c_int32),
        ("width", c_int32),
        ("layout", c_layout),  # sam3_neck_layout
        ("levels_mask", c_uint32),
        ("threads", c_int32),
        ("precision", c_precision),  # sam3_neck_precision
    ]


class IoParams(Structure):
    """struct sam3_neck_io_params (since 0.3.0; versioned by struct_size)"""

    _fields_ = [
        ("struct_size", c_uint32),
        ("input_dtype", c_dtype),  # sam3_neck_dtype
        ("output_dtype", c_dtype),  # sam3_neck_dtype
        ("output_layout", c_output_layout),  # sam3_neck_output_layout
    ]


c_float_p = POINTER(c_float)

#: name -> (restype, argtypes), one entry per function of include/sam3_neck.h, in header order.
FUNCTIONS = {
    "sam3_neck_abi_version": (c_uint32, []),
    "sam3_neck_version_string": (c_char_p, []),
    "sam3_neck_status_string": (c_char_p, [c_status]),
    "sam3_neck_last_error": (c_char_p, []),
    "sam3_neck_load_default_params": (LoadParams, []),
    "sam3_neck_load_file": (c_status, [c_char_p, POINTER(LoadParams), POINTER(c_neck_p)]),
    "sam3_neck_load_memory": (
        c_status,
        [c_void_p, c_size_t, POINTER(LoadParams), POINTER(c_neck_p)],
    ),
    "sam3_neck_free": (None, [c_neck_p]),
    "sam3_neck_get_config": (c_status, [c_neck_p, POINTER(Config)]),
    "sam3_neck_compile_default_params": (CompileParams, []),
    "sam3_neck_compile": (c_status, [c_neck_p, POINTER(CompileParams)]),
    "sam3_neck_get_compile_params": (c_status, [c_neck_p, POINTER(CompileParams)]),
    "sam3_neck_io_default_params": (IoParams, []),
    "sam3_neck_compile_io": (
        c_status,
        [c_neck_p, POINTER(CompileParams), POINTER(IoParams)],
    ),
    "sam3_neck_get_io_params": (c_status, [c_neck_p, POINTER(IoParams)]),
    "sam3_neck_output_shape": (
        c_status,
        [c_neck_p, c_int32, POINTER(c_int64), POINTER(c_int32)],
    ),
    "sam3_neck_run_io": (
        c_status,
        [c_neck_p, c_void_p, c_size_t, POINTER(c_void_p), POINTER(c_size_t)],
    ),
    "sam3_neck_position_encoding_io": (c_status, [c_neck_p, c_int32, c_void_p, c_size_t]),
    "sam3_neck_level_shape": (c_status, [c_neck_p, c_int32, POINTER(c_int64)]),
    "sam3_neck_input_count": (c_status, [c_neck_p, POINTER(c_size_t)]),
    "sam3_neck_workspace_size": (c_status, [c_neck_p, POINTER(c_size_t)]),
    "sam3_neck_kernel_name": (c_status, [c_neck_p, POINTER(c_char_p)]),  # since 0.5.0
    "sam3_neck_position_encoding": (c_status, [c_neck_p, c_int32, c_float_p, c_size_t]),
    "sam3_neck_run": (
        c_status,
        [c_neck_p, c_float_p, c_size_t, POINTER(c_float_p), POINTER(c_size_t)],
    ),
    "sam3_neck_inspect_file": (c_status, [c_char_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    "sam3_neck_experimental_tensor_name": (c_char_p, [c_int32]),
    "sam3_neck_experimental_get_tensor": (
        c_status,
        [c_neck_p, c_char_p, c_float_p, c_size_t, POINTER(c_int64), POINTER(c_int32)],
    ),
}


class LibraryNotFoundError(OSError):
    """libsam3neck could not be found in any of the places searched."""


class LibraryLoadError(OSError):
    """libsam3neck was found but could not be loaded or does not match this ABI."""


def _lib_filename() -> str:
    if sys.platform == "darwin":
        return "libsam3neck.dylib"
    if sys.platform.startswith("win"):
        return "sam3neck.dll"
    return "libsam3neck.so"


def candidate_paths() -> List[Path]:
    """The places searched, in order (the environment variable is handled by library_path)."""
    pkg = Path(__file__).resolve().parent
    name = _lib_filename()
    return [pkg / name, pkg.parent.parent / ".build" / "release" / name]


def library_path() -> Path:
    """The path of the library that get_lib() loads.

    Order: $SAM3NECK_LIBRARY if set (it must exist); else libsam3neck next to the package's
    __init__.py; else the repository build output <package>/../../.build/release/.
    """
    env = os.environ.get("SAM3NECK_LIBRARY")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise LibraryNotFoundError(f"SAM3NECK_LIBRARY is set to {env!r}, but no such file exists")
        return p.resolve()
    tried = candidate_paths()
    for p in tried:
        if p.is_file():
            return p
    places = "\n  ".join(["$SAM3NECK_LIBRARY (not set)"] + [str(p) for p in tried])
    raise LibraryNotFoundError(
        "cannot find the sam3neck native library; looked in:\n  "
        + places
        + "\nBuild it with `swift build -c release` in the repository root, or set SAM3NECK_LIBRARY."
    )


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[Path] = None


def _declare(lib: ctypes.CDLL, path: Path) -> None:
    missing = []
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise LibraryLoadError(f"{path} does not export: {', '.join(missing)}")


def get_lib() -> ctypes.CDLL:
    """Loads (once) and returns the library with every function declared; checks the ABI version."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        path = library_path()
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise LibraryLoadError(f"cannot load {path}: {e}") from e
        _declare(lib, path)
        abi = int(lib.sam3_neck_abi_version())
        if abi != ABI_VERSION:
            raise LibraryLoadError(f"{path} has ABI version {abi}, but this package needs ABI version {ABI_VERSION}")
        _lib_path = path
        _lib = lib
        return lib


def loaded_path() -> Optional[Path]:
    """The path of the loaded library, or None if it has not been loaded yet."""
    return _lib_path


def _decode(b: Optional[bytes]) -> str:
    return "" if b is None else b.decode("utf-8", errors="replace")


def version_string() -> str:
    """sam3_neck_version_string() of the library (loads it)."""
    return _decode(get_lib().sam3_neck_version_string())


def status_string(status: int) -> str:
    return _decode(get_lib().sam3_neck_status_string(int(status)))


def last_error() -> str:
    return _decode(get_lib().sam3_neck_last_error())
