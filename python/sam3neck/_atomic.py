"""Atomic file writes: a temporary file in the target's folder, renamed into place on success and
removed on failure, so a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (briefly) and restoring it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: PathLike) -> Iterator[BinaryIO]:
    """`with atomic_writer(path) as f: f.write(...)`: writes `path` atomically. The file gets the
    permissions a plain open() would give it (0o666 less the umask), not mkstemp's 0o600."""
    p = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(p))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(p) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            yield f
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
