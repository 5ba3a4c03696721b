"""Optional dependencies (the package's extras): imported only by the features that need them, with
an error that names the extra to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """A feature needs an optional package that is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Imports `module` for `feature`, or raises MissingExtraError naming `pip install
    'sam3neck[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{feature} needs {module.split('.')[0]}, which is not installed ({e}): pip install 'sam3neck[{extra}]'"
        ) from None
