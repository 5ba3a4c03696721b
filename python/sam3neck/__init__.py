"""sam3neck: the SAM 3 detection neck as a native library (libsam3neck), from Python.

    import numpy as np, sam3neck
    with sam3neck.Neck("weights.safetensors") as neck:
        neck.compile(height=72, width=72)
        for level in neck.run(x):          # x: float32 [1, 1024, 72, 72]
            print(level.level, level.scale, level.features.shape)

`sam3neck.reference` is the float64 NumPy reference of the same computation and
`sam3neck.checkpoint` reads and writes safetensors files (including synthetic checkpoints).
Neither needs the native library, which is loaded on first use.
"""

from . import checkpoint, reference
from ._lib import LibraryLoadError, LibraryNotFoundError
from .neck import Level, Neck, Sam3NeckError

__version__ = "0.2.0"

__all__ = [
    "Neck",
    "Level",
    "Sam3NeckError",
    "LibraryNotFoundError",
    "LibraryLoadError",
    "reference",
    "checkpoint",
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
