"""python -m sam3neck run: the neck over feature files (.npy), writing one .npz per input.

    sam3neck run --weights W feats.npy feats.npz [--png feats.png]
    sam3neck run --weights W FOLDER OUTFOLDER        # every FOLDER/*.npy
    (--input INPUT / --out OUTPUT are accepted too)

An input holds the trunk's features, [C, H, W] or [B, C, H, W] (or [H, W, C] / [B, H, W, C] with
--layout NHWC), in float32 (other float types are converted, with a note); with --input-dtype
float16 / bfloat16 the neck takes that type (float files are rounded to it, with a note; for
bfloat16 a uint16 file is taken as bfloat16 bits). The output .npz holds `level{i}` for each
computed level, [B, d, h, w] (or [d, h, w] for a 3-D input; --output-layout NHWC: [B, h, w, d],
sequence: [h*w, B, d], without the B axis for a 3-D input), and with --with-pos also `pos{i}`
(batch 1, or no batch axis for a 3-D input), in --output-dtype: float32, float16, or bfloat16
stored as uint16 bit patterns with a `note` entry saying so and how to widen them. Outputs are
written atomically (a temporary file in the same folder, renamed into place).

Every path is opened as the checkpoint loader opens a checkpoint (sam3neck._paths): an input is
read only if it is a regular file (a FIFO, device or folder is reported at once, never waited on);
an output's folder is made if missing, and an output only ever replaces a regular file (a folder,
FIFO or device there is refused, not replaced); the --png path is checked before anything runs.

In folder mode the files are grouped by shape so that the neck is compiled once per distinct
shape; a file that cannot be read or run is reported and the others are still processed; the
exit status is 1 if any failed. Every number a .npy header claims is checked against the file's
size before anything is allocated. Progress goes to stderr when it is a terminal (a tqdm bar with
the `progress` extra, else a line per file); a summary line is always printed. --png needs the
`viz` extra (matplotlib).

Exit status: 0 all files written, 1 some file (or the checkpoint, or the picture) failed, 2 usage
error, 130 interrupted.

The neck's arithmetic happens in the library; this module only reads, checks and writes arrays.
`run_file` is the reusable piece (see examples/neck_on_dask.py).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Deque, Dict, List, Optional, Sequence, TextIO, Tuple, Union

import numpy as np

from . import dtypes, reference
from ._paths import PathError, atomic_writer, check_output, make_folder, open_for_reading
from .neck import Neck, Sam3NeckError, parse_levels

__all__ = [
    "InputError",
    "FileResult",
    "probe_features",
    "read_features",
    "run_file",
    "write_npz",
    "Progress",
    "add_arguments",
    "run_cli",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The --precision help of `run` and `demo`: each mode's bound (reference.TOLERANCE, the header's
#: SAM3_NECK_BOUND_*) on the normalised max error of every level against the float64 reference.
_BOUND = {k: f"{v:.0e}".replace("e-0", "e-") for k, v in reference.TOLERANCE.items()}  # "1e-4"
PRECISION_HELP = (
    f"default (error <= {_BOUND['default']}), strict (<= {_BOUND['strict']}, float32 products "
    f"only) or fast (<= {_BOUND['fast']}: bfloat16 products with float32 sums on CPUs with "
    "AVX512_BF16 or AMX-BF16, elsewhere the default mode's arithmetic); the error is the "
    "normalised max error of each level against the float64 reference (default: default)"
)


class InputError(Exception):
    """A feature file that cannot be run; the message names the file and the reason."""


# ------------------------------------------------------------------------------------------------
# reading and checking inputs
# ------------------------------------------------------------------------------------------------

#: The longest .npy header accepted (NumPy's own limit for untrusted files).
MAX_HEADER_BYTES = 10000
_MAGIC = b"\x93NUMPY"


#: Inputs read ahead of the neck, and output sets still being written behind it (run_cli).
READ_AHEAD = 2
WRITE_BEHIND = 1


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (VmHWM; 0 where unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def memory_bytes() -> Optional[int]:
    """This machine's physical memory in bytes (None where unknown): an input whose data is larger
    is refused before anything is allocated for it."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class _Header:
    __slots__ = ("shape", "fortran", "dtype", "offset", "nbytes")

    def __init__(self, shape, fortran, dtype, offset, nbytes):
        self.shape, self.fortran, self.dtype, self.offset, self.nbytes = shape, fortran, dtype, offset, nbytes


def _read_header(f, path: str, size: int) -> _Header:
    """Reads and checks the .npy header of the open file f (of `size` bytes). Every number the
    header claims is checked against the file's size before anything is allocated from it."""
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != _MAGIC:
        raise InputError(f"{path}: not a .npy file (no NumPy header)")
    major, minor = magic[6], magic[7]
    if major not in (1, 2, 3):
        raise InputError(f"{path}: bad .npy header: format version {major}.{minor} (NumPy writes 1.0, 2.0, 3.0)")
    width = 2 if major == 1 else 4
    raw = f.read(width)
    if len(raw) < width:
        raise InputError(f"{path}: bad .npy header: the file ends inside the header ({size} bytes)")
    length = int.from_bytes(raw, "little")
    offset = 8 + width + length
    if offset > size:
        raise InputError(
            f"{path}: bad .npy header: it claims {length} bytes of header, but the file "
            f"has only {size - 8 - width} after the header's length field (truncated?)"
        )
    if length > MAX_HEADER_BYTES:
        raise InputError(f"{path}: bad .npy header: {length} bytes long (at most {MAX_HEADER_BYTES} accepted)")
    fmt = np.lib.format
    copy = io.BytesIO(magic + raw + f.read(length))
    fmt.read_magic(copy)
    try:
        # 3.0 differs from 2.0 only in allowing utf-8 field names (structured dtypes: refused below)
        reader = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(copy)
    except ValueError as e:
        raise InputError(f"{path}: bad .npy header: {e}") from None
    except Exception as e:  # noqa: BLE001 -- NumPy's parser of untrusted text raises many kinds
        raise InputError(f"{path}: bad .npy header: cannot parse it ({type(e).__name__}: {e})") from None
    shape = tuple(int(s) for s in shape)
    return _Header(shape, bool(fortran), dtype, offset, None)


def _check_size(h: _Header, path: str, size: int) -> None:
    """The data the header's shape and dtype need must be possible, fit in memory, and be exactly
    what the file holds after its header."""
    if any(s < 0 for s in h.shape):
        raise InputError(f"{path}: impossible shape {h.shape} in the .npy header (negative size)")
    count = 1
    for s in h.shape:
        count *= s
    nbytes = count * h.dtype.itemsize
    if nbytes >= 2**63:
        raise InputError(
            f"{path}: impossible shape {h.shape} in the .npy header: {count} "
            f"elements of {h.dtype} would need {nbytes:.3g} bytes"
        )
    have = size - h.offset
    if nbytes > have:
        raise InputError(
            f"{path}: truncated or bad header: shape {h.shape} of {h.dtype} needs "
            f"{nbytes} bytes of data, but the file holds only {have} after its header"
        )
    if nbytes < have:
        raise InputError(
            f"{path}: {have - nbytes} bytes after the data that shape {h.shape} of "
            f"{h.dtype} describes ({nbytes} bytes): the header does not match the file"
        )
    memory = memory_bytes()
    if memory is not None and nbytes > memory:
        raise InputError(f"{path}: too large: {nbytes} bytes of data, more than this machine's memory ({memory} bytes)")
    h.nbytes = nbytes


#: The `note` entry of an .npz whose arrays hold bfloat16 bit patterns.
BFLOAT16_NOTE = (
    "level* and pos* hold bfloat16 values as uint16 bit patterns (the upper 16 bits "
    "of a float32); widen with (a.astype(np.uint32) << 16).view(np.float32)"
)


def _open_input(p: str):
    """The input file `p`, opened as every user path is (sam3neck._paths.open_for_reading:
    regular files only, a FIFO never waited on); InputError naming it when it cannot be."""
    try:
        return open_for_reading(p)
    except PathError as e:
        raise InputError(str(e)) from None


def _probe(f, p: str, trunk_dim: int, layout: str, input_dtype: str = "float32"):
    """Reads and checks the header of the open input file f (path p)."""
    lay = layout.upper()
    try:
        size = os.fstat(f.fileno()).st_size
        h = _read_header(f, p, size)
    except OSError as e:
        raise InputError(f"{p}: cannot read: {e.strerror or e}") from None
    shape, dtype = h.shape, h.dtype
    bits = input_dtype == "bfloat16" and dtype == np.dtype(np.uint16)
    if (dtype.kind != "f" or dtype.fields is not None) and not bits:
        also = " (or uint16 bfloat16 bits)" if input_dtype == "bfloat16" else ""
        raise InputError(
            f"{p}: dtype {dtype} is not a floating-point type{also}; the neck takes "
            f"{input_dtype} features (convert with x.astype(np.float32))"
        )
    _check_size(h, p, size)
    names = "[C, H, W] or [B, C, H, W]" if lay == "NCHW" else "[H, W, C] or [B, H, W, C]"
    if len(shape) not in (3, 4):
        raise InputError(f"{p}: shape {shape} is not {names} ({lay})")
    squeeze = len(shape) == 3
    shape4 = (1,) + shape if squeeze else shape
    c_axis = 1 if lay == "NCHW" else 3
    if shape4[c_axis] != trunk_dim:
        other = 3 if lay == "NCHW" else 1
        hint = ""
        if shape4[other] == trunk_dim:
            alt = "NHWC" if lay == "NCHW" else "NCHW"
            hint = f"; it looks like {alt}: pass --layout {alt}"
        raise InputError(
            f"{p}: shape {shape} has {shape4[c_axis]} channels where {names} ({lay}) puts them, "
            f"but the checkpoint's trunk_dim is {trunk_dim}{hint}"
        )
    if 0 in shape4:
        raise InputError(f"{p}: shape {shape} is empty")
    return shape4, squeeze, h


def probe_features(
    path: PathLike, trunk_dim: int, layout: str = "NCHW", input_dtype: str = "float32"
) -> Tuple[Tuple[int, int, int, int], bool, np.dtype]:
    """Reads only the .npy header of `path` and checks it as neck input.

    Returns ((B, C, H, W) or (B, H, W, C) as the neck takes it, whether the file is 3-D (no batch
    axis), the stored dtype). Raises InputError (naming the file) for a missing or unreadable
    file, one that is not a regular file (a FIFO, device or folder: refused at once, never waited
    on; sam3neck._paths.open_for_reading), a bad header, a non-float dtype, an impossible shape,
    data whose size does not match the file's (truncated) or exceeds the machine's memory, a
    shape that is not 3-D/4-D, or a channel count other than trunk_dim. Nothing is allocated from the header's numbers. With
    input_dtype="bfloat16" a uint16 file (bfloat16 bits) is accepted too.
    """
    p = os.fspath(path)
    with _open_input(p) as f:
        shape4, squeeze, h = _probe(f, p, trunk_dim, layout, input_dtype)
    return shape4, squeeze, h.dtype


def read_features(
    path: PathLike, trunk_dim: int, layout: str = "NCHW", input_dtype: str = "float32"
) -> Tuple[np.ndarray, bool, Optional[str]]:
    """Reads and checks a feature file (see probe_features). Returns (x, squeezed, note): x is a
    C-contiguous 4-D array of input_dtype (float32, float16, or bfloat16 as sam3neck.to_bfloat16
    gives it), `squeezed` tells that the file was 3-D, and `note` says what was converted (e.g.
    "float64 converted to float32", "float32 rounded to bfloat16"), else None. For bfloat16, a
    uint16 file is taken as bfloat16 bits."""
    p = os.fspath(path)
    with _open_input(p) as f:  # one open: the data read is that of the header checked
        shape4, squeeze, h = _probe(f, p, trunk_dim, layout, input_dtype)
        count = h.nbytes // h.dtype.itemsize
        try:
            f.seek(h.offset)
            a = np.fromfile(f, dtype=h.dtype, count=count)
        except MemoryError:
            raise InputError(f"{p}: too large: not enough memory for its {h.nbytes} bytes") from None
        except (ValueError, OSError) as e:
            raise InputError(f"{p}: unreadable .npy data: {e}") from None
    if a.size != count:  # the file shrank after its header was checked
        raise InputError(f"{p}: truncated: {a.size} of {count} values could be read")
    a = a.reshape(h.shape, order="F" if h.fortran else "C")
    note = None
    native = a.dtype.newbyteorder("=")
    if input_dtype == "bfloat16" and native == np.dtype(np.uint16):
        x = np.ascontiguousarray(a.reshape(shape4), dtype=np.uint16)  # bfloat16 bits
        bf = dtypes.bfloat16_dtype()
        return (x if bf is None else x.view(bf)), squeeze, None
    if native != np.dtype(input_dtype):  # the other byte order of the same type: swapped silently
        verb = "converted to" if input_dtype == "float32" else "rounded to"
        note = f"{p}: {a.dtype} {verb} {input_dtype}"
    x = dtypes.to_dtype(a.reshape(shape4), input_dtype)
    return x, squeeze, note


# ------------------------------------------------------------------------------------------------
# writing outputs
# ------------------------------------------------------------------------------------------------


def write_npz(path: PathLike, arrays: Dict[str, np.ndarray]) -> None:
    """np.savez(path, **arrays), atomically: written to a temporary file in the same folder, then
    renamed into place; on any failure the temporary file is removed and `path` is untouched.
    `path` must be in an existing folder and, if it exists, be a regular file (it is replaced):
    anything else, or a failed write, is a PathError (an OSError) whose message is
    "<path>: <cause>" (sam3neck._paths.atomic_writer)."""
    try:
        with atomic_writer(path) as f:
            np.savez(f, **arrays)
    except PathError:
        raise
    except OSError as e:
        raise PathError(path, f"cannot be written: {e.strerror or e}", e.errno) from None


# ------------------------------------------------------------------------------------------------
# one file
# ------------------------------------------------------------------------------------------------


class FileResult:
    """What run_file did: `path`, `out`, `input_shape` (as stored), `compiled` (whether this call
    compiled the neck), `seconds` (read + run + write), `shapes` ({"level0": shape, ...} as
    written), `note` (a conversion note or None); with keep=True also `x` (the float32 input, 4-D
    as run) and `features` ({level: (scale, [B, d, h, w])})."""

    __slots__ = ("path", "out", "input_shape", "compiled", "seconds", "shapes", "note", "x", "features")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def __repr__(self) -> str:
        return f"FileResult({self.path!r} -> {self.out!r}, {self.shapes})"


def run_file(
    neck: Neck,
    path: PathLike,
    out: PathLike,
    levels: Sequence[int] = (0, 1, 2, 3),
    layout: str = "NCHW",
    threads: int = 0,
    precision: str = "default",
    with_pos: bool = False,
    keep: bool = False,
    input_dtype: str = "float32",
    output_dtype: str = "float32",
    output_layout: str = "NCHW",
) -> FileResult:
    """Runs `neck` on the feature file `path` and writes the .npz `out` (atomically).

    input_dtype, output_dtype and output_layout are Neck.compile's; bfloat16 outputs are written
    as uint16 bit patterns with a `note` entry (BFLOAT16_NOTE).

    The neck is compiled only when its compile_options differ from what this file needs, so
    calling run_file over many files of one shape compiles once. Raises InputError (naming the
    file) for a file that cannot be read or run, PathError (an OSError naming `out`) when `out`
    cannot be written (write_npz), Sam3NeckError when the library fails.
    """
    t0 = time.perf_counter()
    opts = _FileOptions(levels, layout, threads, precision, with_pos, keep, input_dtype, output_dtype, output_layout)
    staged = _compute(neck, _read(path, neck.trunk_dim, opts), out, opts)
    _write(staged)
    staged.result.seconds = time.perf_counter() - t0
    return staged.result


class _FileOptions:
    """run_file's options, shared by its three stages."""

    def __init__(self, levels, layout, threads, precision, with_pos, keep, input_dtype, output_dtype, output_layout):
        self.levels, self.threads, self.precision = levels, threads, precision
        self.with_pos, self.keep = with_pos, keep
        self.input_dtype, self.output_dtype = input_dtype, output_dtype
        self.layout = layout.upper()
        self.output_layout = "sequence" if output_layout.lower() == "sequence" else output_layout.upper()


class _Staged:
    """A file between its stages: read (path, x, squeeze, note), then computed (out, arrays to
    write, result)."""

    __slots__ = ("path", "x", "squeeze", "note", "out", "arrays", "result")


def _read(path: PathLike, trunk_dim: int, o: _FileOptions) -> _Staged:
    """Stage 1 (any thread): the input file, checked and loaded."""
    s = _Staged()
    s.path = os.fspath(path)
    s.x, s.squeeze, s.note = read_features(s.path, trunk_dim, o.layout, o.input_dtype)
    return s


def _compute(neck: Neck, s: _Staged, out: PathLike, o: _FileOptions) -> _Staged:
    """Stage 2 (the neck's thread): compile when the shape or options changed, run, and lay the
    outputs out as they are written. The arrays are this run's own (Neck.run allocates them)."""
    x, p = s.x, s.path
    b, h, w = (x.shape[0], x.shape[2], x.shape[3]) if o.layout == "NCHW" else x.shape[:3]
    want = {
        "height": h,
        "width": w,
        "batch": b,
        "layout": o.layout,
        "levels": parse_levels(o.levels),
        "threads": int(o.threads),
        "precision": o.precision.lower(),
        "input_dtype": o.input_dtype,
        "output_dtype": o.output_dtype,
        "output_layout": o.output_layout,
    }
    compiled = False
    if not neck.compiled or neck.compile_options != want:
        try:
            neck.compile(**want)
        except ValueError as e:
            raise InputError(f"{p}: {e}") from None
        compiled = True
    result = neck.run(x)

    def stored(a: np.ndarray) -> np.ndarray:
        if s.squeeze:  # drop the batch axis: axis 1 of a sequence [h*w, B, d], else axis 0
            a = a[:, 0] if o.output_layout == "sequence" else a[0]
        # bfloat16 as its bits (an ml_dtypes array would not load back without ml_dtypes)
        return a.view(np.uint16) if o.output_dtype == "bfloat16" else a

    arrays: Dict[str, np.ndarray] = {}
    for lv in result:
        arrays[f"level{lv.level}"] = stored(lv.features)
    if o.with_pos:
        for lv in result:
            arrays[f"pos{lv.level}"] = stored(lv.pos)
    shapes = {k: tuple(v.shape) for k, v in arrays.items()}
    if o.output_dtype == "bfloat16":
        arrays["note"] = np.array(BFLOAT16_NOTE)
    s.out, s.arrays = os.fspath(out), arrays
    s.result = FileResult(
        path=p,
        out=s.out,
        input_shape=x.shape[1:] if s.squeeze else x.shape,
        compiled=compiled,
        note=s.note,
        shapes=shapes,
    )
    if o.keep:
        # for the picture: float32, NCHW [B, d, h, w]
        s.result.x = dtypes.to_float32(x)
        s.result.features = {lv.level: (lv.scale, _as_nchw32(lv, b, neck.d_model, (h, w))) for lv in result}
    s.x = None  # the input is not needed past the run
    return s


def _write(s: _Staged) -> None:
    """Stage 3 (any thread): the .npz, atomically; then the outputs are let go."""
    write_npz(s.out, s.arrays)
    s.arrays = None


def _as_nchw32(lv, batch: int, d: int, grid: Tuple[int, int]) -> np.ndarray:
    """A Level's features as float32 [B, d, h, w], whatever its output type and layout."""
    from .reference import level_shape

    f = dtypes.to_float32(lv.features, lv.dtype)
    _, _, h, w = level_shape(lv.level, batch, d, *grid)
    if lv.layout == "NHWC":
        return f.transpose(0, 3, 1, 2)
    if lv.layout == "sequence":
        return f.reshape(h, w, batch, d).transpose(2, 3, 0, 1)
    return f


# ------------------------------------------------------------------------------------------------
# progress bar
# ------------------------------------------------------------------------------------------------


class Progress:
    """Progress over `total` files on `stream`, when it is a terminal (or enabled=True): a tqdm bar
    when tqdm is installed (the `progress` extra), else a plain line per finished file. Disabled,
    it draws nothing. message() prints a line (above the bar)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, enabled: Optional[bool] = None):
        self.total = max(0, int(total))
        self.stream = stream
        if enabled is None:
            isatty = getattr(stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.done = 0
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=self.total, file=stream, unit="file", dynamic_ncols=True)

    def update(self, done: int, label: str = "") -> None:
        """Sets the count of finished files (and the file being run, `label`)."""
        if self.bar is not None:
            self.bar.set_postfix_str(label)
            self.bar.update(done - self.bar.n)
        elif self.enabled and done > self.done:
            self.stream.write(f"sam3neck run: {done}/{self.total} files done\n")
            self.stream.flush()
        self.done = done

    def message(self, text: str) -> None:
        """Prints `text` on its own line."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------


def levels_arg(text: str) -> List[int]:
    """--levels of the command line ("0,1,2"), through the package's one level parser."""
    try:
        return list(parse_levels(text))
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _output_layout_arg(text: str) -> str:
    return "sequence" if text.lower() == "sequence" else text.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `run` command's arguments to `parser` (and sets func=run_cli)."""
    parser.add_argument(
        "input_pos",
        nargs="?",
        metavar="INPUT",
        help="a .npy file ([C,H,W] or [B,C,H,W]; NHWC with --layout NHWC) or a "
        "folder whose *.npy files are processed one after another",
    )
    parser.add_argument(
        "out_pos",
        nargs="?",
        metavar="OUTPUT",
        help="the .npz to write (for a folder input: the output folder, receiving <stem>.npz per input)",
    )
    parser.add_argument("--weights", required=True, help="the checkpoint (sam3.pt, safetensors, a sharded index)")
    parser.add_argument("--input", help="INPUT, as a flag")
    parser.add_argument("--out", "--output", dest="out", help="OUTPUT, as a flag")
    parser.add_argument(
        "--neck",
        "--kind",
        dest="neck",
        default="sam3",
        choices=["sam3", "sam2"],
        help="the detection neck (sam3) or the SAM 2 / tracker neck (sam2)",
    )
    parser.add_argument("--prefix", default=None, help="exact tensor-name prefix (default: any known)")
    parser.add_argument(
        "--levels", type=levels_arg, default=[0, 1, 2, 3], help="levels to compute, e.g. 0,1,2 (default 0,1,2,3)"
    )
    parser.add_argument("--layout", default="NCHW", type=str.upper, choices=["NCHW", "NHWC"], help="the inputs' layout")
    parser.add_argument(
        "--input-dtype",
        default="float32",
        type=str.lower,
        choices=list(dtypes.DTYPES),
        help="the element type the neck takes: float files are rounded to it "
        "(with a note); for bfloat16 a uint16 file is taken as its bits",
    )
    parser.add_argument(
        "--output-dtype",
        default="float32",
        type=str.lower,
        choices=list(dtypes.DTYPES),
        help="the element type written (bfloat16: as uint16 bits, with a note in the file)",
    )
    parser.add_argument(
        "--output-layout",
        default="NCHW",
        type=_output_layout_arg,
        choices=["NCHW", "NHWC", "sequence"],
        help="NCHW [B, d, h, w], NHWC [B, h, w, d] or sequence [h*w, B, d]",
    )
    parser.add_argument("--threads", type=int, default=0, help="threads per run (0 = all cores)")
    parser.add_argument("--precision", default="default", choices=["default", "strict", "fast"], help=PRECISION_HELP)
    parser.add_argument("--with-pos", action="store_true", help="also write the position encodings (pos0 ...)")
    parser.add_argument(
        "--png",
        default=None,
        metavar="FILE",
        help="draw the input and each level (channel L2 norm, heat map) of the "
        "first image (for a folder: of the first file) into FILE",
    )
    parser.set_defaults(func=run_cli, parser=parser)


def _paths(args: argparse.Namespace) -> Optional[str]:
    """Merges the positional INPUT/OUTPUT into args.input/args.out; returns a usage error or None."""
    for pos, flag, name in (("input_pos", "input", "INPUT"), ("out_pos", "out", "OUTPUT")):
        value = getattr(args, pos, None)
        if value is not None and getattr(args, flag) is not None:
            return f"{name} given twice (as an argument and as --{flag})"
        if value is not None:
            setattr(args, flag, value)
        if getattr(args, flag) is None:
            return f"the following arguments are required: {name} (or --{flag})"
    return None


def _label(r: FileResult) -> str:
    return ", ".join(f"{k} {list(v)}" for k, v in r.shapes.items() if k.startswith("level"))


def run_cli(args: argparse.Namespace, stderr: Optional[TextIO] = None) -> int:
    """Runs the `run` command (arguments as add_arguments defines them; messages to `stderr`,
    default sys.stderr); returns the exit status: 0 ok, 1 when anything failed, 2 for a usage
    error, 130 when interrupted."""
    err = sys.stderr if stderr is None else stderr
    t0 = time.perf_counter()
    usage = _paths(args)
    if usage:
        parser = getattr(args, "parser", None)
        if parser is not None:
            parser.error(usage)  # exits with status 2
        err.write(f"sam3neck run: error: {usage}\n")
        return 2

    def fail(text: str) -> int:
        err.write(f"sam3neck run: error: {text}\n")
        return 1

    if args.png:
        from ._extras import MissingExtraError, require
        from .picture import FEATURE

        try:
            require("matplotlib", "viz", FEATURE)
        except MissingExtraError as e:
            return fail(str(e))

    # The checkpoint is the library's to open (regular files only, as here; sam3_neck.h).
    if not os.path.exists(args.weights):
        return fail(f"{args.weights}: no such checkpoint file")
    src = Path(args.input)
    if not src.exists():
        return fail(f"{src}: no such file or folder")
    # Every path read or written below goes through sam3neck._paths: inputs are opened as regular
    # files only (a FIFO or device named *.npy is reported, never waited on), outputs only replace
    # regular files in existing folders.
    folder = src.is_dir()
    if folder:
        try:  # every *.npy but folders; what is not a regular file is reported when opened
            files = sorted(p for p in src.iterdir() if p.suffix == ".npy" and not p.is_dir())
        except OSError as e:
            return fail(f"{src}: cannot list this folder: {e.strerror or e}")
        if not files:
            return fail(f"{src}: no .npy files in this folder")
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            return fail(f"{out_dir}: exists and is not a folder (a folder input needs an output folder)")
        try:
            make_folder(out_dir)
        except PathError as e:
            return fail(f"{out_dir}: cannot make the output folder: {e.strerror}")
        outs = [out_dir / (p.stem + ".npz") for p in files]
    else:
        files = [src]
        out = Path(args.out)
        if out.is_dir():
            out = out / (src.stem + ".npz")
        try:
            make_folder(out.parent)
        except PathError as e:
            return fail(f"{out}: cannot make the output's folder {out.parent}: {e.strerror}")
        try:
            check_output(out)
        except PathError as e:
            return fail(str(e))
        outs = [out]
    if args.png:
        try:
            check_output(args.png)
        except PathError as e:
            return fail(f"{e} (--png)")

    try:
        neck = Neck(args.weights, neck=args.neck, prefix=args.prefix)
    except (Sam3NeckError, OSError, ValueError, TypeError) as e:
        return fail(f"{args.weights}: cannot load the neck: {e}")

    progress = Progress(len(files), err, enabled=None if folder else False)
    failed: List[Tuple[str, str]] = []
    done = 0
    compiles = 0
    shown: Optional[Tuple[int, FileResult]] = None  # (file index, result) to draw
    written: List[FileResult] = []

    # Group by shape (header only) so that each distinct shape is compiled once; files whose
    # header is already wrong fail here, in listing order.
    groups: Dict[tuple, List[int]] = {}
    io_options = {
        "input_dtype": getattr(args, "input_dtype", "float32"),
        "output_dtype": getattr(args, "output_dtype", "float32"),
        "output_layout": getattr(args, "output_layout", "NCHW"),
    }
    for i, p in enumerate(files):
        try:
            if folder:
                check_output(outs[i])  # checked again when written
            shape4, _, _ = probe_features(p, neck.trunk_dim, args.layout, io_options["input_dtype"])
        except (InputError, PathError) as e:
            failed.append((str(p), str(e)))
            progress.message(f"sam3neck run: error: {e}")
            done += 1
            progress.update(done)
            continue
        groups.setdefault(shape4, []).append(i)

    # The files in three overlapping stages: the next inputs are read on one thread (READ_AHEAD of
    # them at most) and the last outputs written on another (WRITE_BEHIND sets at most) while the
    # neck runs, so a folder goes at about the library's own pace; the bounds keep memory flat.
    order = [i for indices in groups.values() for i in indices]
    reads: Deque[Tuple[int, "Future[_Staged]"]] = deque()
    writes: Deque[Tuple[int, _Staged, "Future[None]"]] = deque()
    per_file = {
        "levels": args.levels,
        "layout": args.layout,
        "threads": args.threads,
        "precision": args.precision,
        "with_pos": args.with_pos,
        **io_options,
    }
    read_opts = _FileOptions(keep=False, **per_file)

    def failure(i: int, e: BaseException) -> None:
        p = files[i]
        text = (
            str(e)
            if isinstance(e, (InputError, PathError))
            else f"{p}: out of memory"
            if isinstance(e, MemoryError)
            else f"{p}: {e}"
        )
        failed.append((str(p), text))
        progress.message(f"sam3neck run: error: {text}")

    def finish_writes(keep: int) -> None:
        nonlocal done, compiles, shown
        while len(writes) > keep:
            i, staged, future = writes.popleft()
            try:
                future.result()
            except (OSError, MemoryError) as e:
                failure(i, e)
            else:
                r = staged.result
                r.seconds = time.perf_counter() - t0
                compiles += r.compiled
                written.append(r)
                if r.note:
                    progress.message(f"sam3neck run: note: {r.note}")
                if r.x is not None and (shown is None or i < shown[0]):
                    shown = (i, r)
            done += 1
            progress.update(done)

    try:
        with (
            neck,
            ThreadPoolExecutor(1, thread_name_prefix="sam3neck-read") as reader,
            ThreadPoolExecutor(1, thread_name_prefix="sam3neck-write") as writer,
        ):
            next_read = 0

            def read_ahead() -> None:
                nonlocal next_read
                while next_read < len(order) and len(reads) < READ_AHEAD:
                    i = order[next_read]
                    reads.append((i, reader.submit(_read, files[i], neck.trunk_dim, read_opts)))
                    next_read += 1

            try:
                for _ in order:
                    read_ahead()
                    i, future = reads.popleft()
                    progress.update(done, files[i].name)
                    try:
                        keep = bool(args.png) and (shown is None or i < shown[0])
                        staged = _compute(neck, future.result(), outs[i], _FileOptions(keep=keep, **per_file))
                    except (InputError, Sam3NeckError, OSError, MemoryError) as e:
                        failure(i, e)
                        done += 1
                        progress.update(done)
                        continue
                    read_ahead()
                    writes.append((i, staged, writer.submit(_write, staged)))
                    finish_writes(WRITE_BEHIND)
                finish_writes(0)
            except KeyboardInterrupt:
                for _, future in reads:
                    future.cancel()
                raise
    except KeyboardInterrupt:
        progress.close()
        err.write(
            f"sam3neck run: interrupted after {done} of {len(files)} files (outputs written so far are complete)\n"
        )
        return 130
    progress.close()

    status = 1 if failed else 0
    if args.png:
        if shown is None:
            err.write("sam3neck run: error: no picture: no input was run successfully\n")
            status = 1
        else:
            status = max(status, _draw(args.png, shown[1], args.layout, err))

    secs = time.perf_counter() - t0
    if folder:
        err.write(
            f"sam3neck run: {len(files)} files: {len(written)} written to {outs[0].parent}, "
            f"{len(failed)} failed; compiled {compiles} shape(s); {secs:.2f} s, "
            f"{len(written) / secs:.2f} images/s, peak RSS {peak_rss_mb():.0f} MB\n"
        )
    elif written:
        r = written[0]
        err.write(f"sam3neck run: {r.path} {list(r.input_shape)} -> {r.out}: {_label(r)}; {secs:.2f} s\n")
    else:
        err.write(f"sam3neck run: {files[0]}: failed; nothing written\n")
    return status


def _draw(path: str, r: FileResult, layout: str, err: TextIO) -> int:
    """Writes the picture of r's first image to `path`; returns 0, or 1 (reported) on failure."""
    from . import picture

    x = r.x[0] if layout.upper() == "NCHW" else r.x[0].transpose(2, 0, 1)  # float32 (run_file)
    levels = [(i, scale, f[0]) for i, (scale, f) in sorted(r.features.items())]
    batch = r.x.shape[0]
    title = Path(r.path).name + (f"  (image 1 of {batch})" if batch > 1 else "")
    try:
        picture.write_png(path, picture.figure(x, levels, title=title))
    except OSError as e:
        text = f"{e}" if isinstance(e, PathError) else f"{path}: cannot be written: {e.strerror or e}"
        err.write(f"sam3neck run: error: {text} (--png)\n")
        return 1
    err.write(f"sam3neck run: picture of {r.path} written to {path}\n")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m sam3neck.runner ...`: the `run` command on its own."""
    parser = argparse.ArgumentParser(prog="sam3neck run", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)
