"""The paths a person names, opened the way the checkpoint loader opens a checkpoint (sam3_neck.h,
"Untrusted checkpoints"): regular files only, and nothing that can block.

Reading: open_for_reading opens with O_NONBLOCK (a FIFO with no writer would otherwise wait
forever in open()), checks the type on the open descriptor (so what is read is what was checked),
refuses anything but a regular file, then clears O_NONBLOCK. Writing: atomic_writer writes a
temporary file in the target's folder and renames it into place; the target must be in an existing
folder and, if it exists, be a regular file: a folder, FIFO, device or socket there is refused, not
replaced (renaming over /dev/null as root would replace the device). Every reader and writer of a
user path in the package goes through these two (the command line, sam3neck.checkpoint, the
picture), and a refusal is a PathError whose message is "<path>: <cause>".
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from typing import BinaryIO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["PathError", "open_for_reading", "check_output", "make_folder", "atomic_writer"]


class PathError(OSError):
    """A path that cannot be read or written as asked; str() is "<path>: <cause>"."""

    def __init__(self, path: PathLike, cause: str, code: Optional[int] = None):
        super().__init__(code, cause, os.fspath(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"

    def __reduce__(self):
        return (type(self), (self.filename, self.strerror, self.errno))


def describe(mode: int) -> str:
    """What a file that is not a regular file is ("a folder", "a FIFO (named pipe)", ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return f"not a regular file (type 0o{stat.S_IFMT(mode):o})"


def _cause(e: OSError) -> str:
    return e.strerror or str(e)


_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def open_for_reading(path: PathLike) -> BinaryIO:
    """Opens `path` for reading (binary, blocking reads) if it is a regular file; raises PathError
    ("no such file", "is a FIFO (named pipe), not a regular file: ...", "cannot open: ...")."""
    p = os.fspath(path)
    try:
        fd = os.open(p, _READ_FLAGS)
    except FileNotFoundError:
        raise PathError(p, "no such file", errno.ENOENT) from None
    except NotADirectoryError:
        raise PathError(p, f"no such file: {_blocking_ancestor(p).strerror}", errno.ENOTDIR) from None
    except OSError as e:
        raise PathError(p, f"cannot open: {_cause(e)}", e.errno) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PathError(p, f"is {describe(mode)}, not a regular file: only regular files are read")
        if _READ_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _folder_problem(folder: str) -> Optional[PathError]:
    """Why `folder` (which should be an existing folder) is not one, as a PathError whose cause
    names the culprit ("no such folder /a/b", "/a is a file, not a folder"); None if it is one."""
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        return PathError(folder, f"no such folder {folder}", errno.ENOENT)
    except NotADirectoryError:
        return _blocking_ancestor(folder)
    except OSError as e:
        return PathError(folder, f"cannot use {folder}: {_cause(e)}", e.errno)
    if not stat.S_ISDIR(mode):
        what = "a file" if stat.S_ISREG(mode) else describe(mode)
        return PathError(folder, f"{folder} is {what}, not a folder", errno.ENOTDIR)
    return None


def _blocking_ancestor(path: str) -> PathError:
    """For a path with something else where a folder should be: the error naming it."""
    child, parent = path, os.path.dirname(path)
    while parent and parent != child:
        try:
            mode = os.stat(parent).st_mode
        except OSError:
            child, parent = parent, os.path.dirname(parent)
            continue
        if not stat.S_ISDIR(mode):
            what = "a file" if stat.S_ISREG(mode) else describe(mode)
            return PathError(path, f"{parent} is {what}, not a folder", errno.ENOTDIR)
        break
    return PathError(path, f"a part of {path} is not a folder", errno.ENOTDIR)


def make_folder(folder: PathLike) -> None:
    """Makes `folder` (and its parents) unless it exists. PathError(folder, cause) when it cannot,
    the cause naming what is in the way ("/a/b is a file, not a folder")."""
    f = os.fspath(folder)
    try:
        os.makedirs(f, exist_ok=True)
    except OSError as e:
        problem = _folder_problem(f)
        raise (problem or PathError(f, _cause(e), e.errno)) from None


def check_output(path: PathLike) -> None:
    """Refuses (PathError) an output path that cannot be written as a new file or replace a
    regular one: its folder missing, not a folder or not writable, or the path itself an existing
    folder, FIFO, device or socket (links are followed to see what they name)."""
    p = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(p))
    problem = _folder_problem(folder)
    if problem is not None:
        raise PathError(p, f"cannot be written: {problem.strerror}", problem.errno)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:  # nothing there (or a dangling link, which the rename replaces)
        mode = None
    except OSError as e:
        raise PathError(p, f"cannot be written: {_cause(e)}", e.errno) from None
    if mode is not None and not stat.S_ISREG(mode):
        raise PathError(
            p, f"is {describe(mode)}, not a regular file: an output only ever replaces a regular file", errno.EEXIST
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PathError(p, f"cannot be written: no permission to write in {folder}", errno.EACCES)


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
    """`with atomic_writer(path) as f: f.write(...)`: writes `path` atomically (a temporary file in
    the same folder, renamed into place; removed on any failure, leaving `path` untouched). The
    path is checked first (check_output) and again just before the rename; the file gets the
    permissions a plain open() would give it (0o666 less the umask), not mkstemp's 0o600.
    PathError (naming `path`) when it cannot be written; what the body raises passes through."""
    p = os.fspath(path)
    check_output(p)
    folder = os.path.dirname(os.path.abspath(p))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(p) + ".", suffix=".tmp", dir=folder)
    except OSError as e:
        raise PathError(p, f"cannot be written: {_cause(e)}", e.errno) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            yield f
        check_output(p)  # a folder or FIFO put there meanwhile is not replaced
        try:
            os.replace(tmp, p)
        except OSError as e:
            raise PathError(p, f"cannot be written: {_cause(e)}", e.errno) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
