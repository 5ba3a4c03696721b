"""sam3neck: the SAM 3 detection neck as a native library (libsam3neck), from Python.

    import numpy as np, sam3neck
    with sam3neck.Neck("weights.safetensors") as neck:
        neck.compile(height=72, width=72)
        for level in neck.run(x):          # x: float32 [1, 1024, 72, 72]
            print(level.level, level.scale, level.features.shape)

`sam3neck.dtypes` holds float16 / bfloat16 conversions (`to_bfloat16`, `to_float32`; bfloat16 is
`ml_dtypes.bfloat16` when the optional ml_dtypes is installed, else uint16 bits).
`sam3neck.reference` is the float64 NumPy reference of the same computation (fed with
`neck.weights()`, the weights the library loaded) and `sam3neck.checkpoint` writes safetensors
files (including synthetic checkpoints). Neither needs the native library, which is loaded on
first use. The benchmark harness (`sam3neck.bench`, `sam3neck bench`) is imported by nothing here.
"""

from . import checkpoint, dtypes, reference
from ._lib import LibraryLoadError, LibraryNotFoundError
from .dtypes import to_bfloat16, to_float32
from .neck import InvalidArgumentError, Level, Neck, Sam3NeckError

__all__ = [
    "Neck",
    "Level",
    "Sam3NeckError",
    "InvalidArgumentError",
    "LibraryNotFoundError",
    "LibraryLoadError",
    "reference",
    "checkpoint",
    "dtypes",
    "to_bfloat16",
    "to_float32",
    "library_path",
    "library_version",
    "__version__",
]


def library_path() -> str:
    """The path of the native library the package uses (the loaded one once it is loaded).
    Raises LibraryNotFoundError, listing the places searched, when there is none."""
    from . import _lib

    loaded = _lib.loaded_path()
    return str(loaded if loaded is not None else _lib.library_path())


def library_version() -> str:
    """The native library's version string ("MAJOR.MINOR.PATCH"); loads the library."""
    from . import _lib

    return _lib.version_string()


def __getattr__(name: str) -> str:
    """`sam3neck.__version__`, asked for when first read: the version is defined once, by the
    SAM3_NECK_VERSION_* macros of include/sam3_neck.h; the library reports it
    (sam3_neck_version_string) and the distribution's metadata carries it (setup.py reads the
    header). The library is asked first (the wheel bundles the one built with the package), the
    installed metadata when no library can be loaded."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return library_version()
    except OSError:
        from importlib import metadata

        try:
            return metadata.version("sam3neck")
        except metadata.PackageNotFoundError:
            return "unknown"
