"""A minimal writer of torch.save-style zip checkpoints, for tests that need files real PyTorch
would not write: hostile pickles (forbidden globals), compressed or truncated archives, and a
sparse multi-GB archive (zip64) in which the neck is a small part.

The committed fixtures in Tests/fixtures/ come from real PyTorch; this writer follows the same
layout (`<root>/data.pkl`, `<root>/data/<key>`, `<root>/byteorder`) with a hand-assembled
protocol-2 pickle, so each test controls exactly the bytes it is about.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

STORAGE = {
    "float32": "FloatStorage",
    "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage",
    "complex64": "ComplexFloatStorage",
    "int64": "LongStorage",
}


@dataclass
class TensorRef:
    """A tensor as _rebuild_tensor_v2 sees it: a view of storage `key`."""

    key: str
    storage: str  # e.g. "FloatStorage"
    numel: int  # of the storage
    shape: Tuple[int, ...]
    stride: Tuple[int, ...]
    offset: int = 0


class Pickle:
    """Assembles protocol-2 opcodes."""

    def __init__(self) -> None:
        self.b = bytearray(b"\x80\x02")

    def op(self, code: bytes) -> "Pickle":
        self.b += code
        return self

    def mark(self) -> "Pickle":
        return self.op(b"(")

    def global_(self, module: str, name: str) -> "Pickle":
        return self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def str_(self, s: str) -> "Pickle":
        e = s.encode("utf-8")
        return self.op(b"X" + struct.pack("<I", len(e)) + e)

    def int_(self, v: int) -> "Pickle":
        if 0 <= v < 256:
            return self.op(b"K" + bytes([v]))
        if -(2**31) <= v < 2**31:
            return self.op(b"J" + struct.pack("<i", v))
        n = (v.bit_length() + 8) // 8
        return self.op(b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True))

    def tuple_(self, values: Sequence[int]) -> "Pickle":
        self.mark()
        for v in values:
            self.int_(v)
        return self.op(b"t")

    def tensor(self, t: TensorRef) -> "Pickle":
        self.global_("torch._utils", "_rebuild_tensor_v2").mark()
        self.mark().str_("storage").global_("torch", t.storage).str_(t.key).str_("cpu").int_(t.numel)
        self.op(b"t").op(b"Q")  # persistent id tuple, BINPERSID
        self.int_(t.offset).tuple_(t.shape).tuple_(t.stride).op(b"\x89")  # requires_grad False
        self.global_("collections", "OrderedDict").op(b")R")  # backward hooks
        return self.op(b"tR")

    def state_dict(self, tensors: Dict[str, TensorRef]) -> "Pickle":
        self.global_("collections", "OrderedDict").op(b")R").mark()
        for name, t in tensors.items():
            self.str_(name).tensor(t)
        return self.op(b"u")

    def stop(self) -> bytes:
        return bytes(self.b + b".")


def contiguous(shape: Sequence[int]) -> Tuple[int, ...]:
    stride, acc = [], 1
    for d in reversed(shape):
        stride.append(acc)
        acc *= d
    return tuple(reversed(stride))


def state_dict_pickle(tensors: Dict[str, TensorRef], wrap: Optional[str] = None) -> bytes:
    p = Pickle()
    if wrap:
        p.op(b"}").mark().str_(wrap)
    p.state_dict(tensors)
    if wrap:
        p.op(b"u")
    return p.stop()


class ZipWriter:
    """Stored entries, zip64 records when offsets or sizes pass 4 GB; `sparse` entries are holes
    (seeked over), so a multi-GB archive costs no disk blocks."""

    def __init__(self, path, root: str = "archive") -> None:
        self.f = open(path, "wb")
        self.root = root
        self.central: List[bytes] = []

    def _local(self, name: bytes, size: int, crc: int, method: int = 0, csize: Optional[int] = None) -> int:
        offset = self.f.tell()
        csize = size if csize is None else csize
        big = size >= 0xFFFFFFFF or csize >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, csize) if big else b""
        self.f.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                45,
                0,
                method,
                0,
                0,
                crc,
                0xFFFFFFFF if big else csize,
                0xFFFFFFFF if big else size,
                len(name),
                len(extra),
            )
            + name
            + extra
        )
        return offset

    def _central(
        self, name: bytes, size: int, crc: int, offset: int, method: int = 0, csize: Optional[int] = None
    ) -> None:
        csize = size if csize is None else csize
        vals = []
        sz, cs, off = size, csize, offset
        if size >= 0xFFFFFFFF:
            vals.append(size)
            sz = 0xFFFFFFFF
        if csize >= 0xFFFFFFFF:
            vals.append(csize)
            cs = 0xFFFFFFFF
        if offset >= 0xFFFFFFFF:
            vals.append(offset)
            off = 0xFFFFFFFF
        extra = struct.pack("<HH", 1, 8 * len(vals)) + b"".join(struct.pack("<Q", v) for v in vals) if vals else b""
        self.central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                45,
                45,
                0,
                method,
                0,
                0,
                crc,
                cs,
                sz,
                len(name),
                len(extra),
                0,
                0,
                0,
                0,
                off,
            )
            + name
            + extra
        )

    def add(self, name: str, data: bytes, compress: bool = False) -> None:
        n = f"{self.root}/{name}".encode()
        crc = zlib.crc32(data)
        if compress:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            body = c.compress(data) + c.flush()
            off = self._local(n, len(data), crc, method=8, csize=len(body))
            self.f.write(body)
            self._central(n, len(data), crc, off, method=8, csize=len(body))
            return
        off = self._local(n, len(data), crc)
        self.f.write(data)
        self._central(n, len(data), crc, off)

    def add_sparse(self, name: str, size: int) -> None:
        """An entry of `size` zero bytes that occupies no disk blocks (CRC left 0: not checked)."""
        n = f"{self.root}/{name}".encode()
        off = self._local(n, size, 0)
        self.f.seek(size, 1)
        self._central(n, size, 0, off)

    def close(self) -> None:
        start = self.f.tell()
        for c in self.central:
            self.f.write(c)
        size = self.f.tell() - start
        count = len(self.central)
        if start >= 0xFFFFFFFF or count >= 0xFFFF:
            z64 = self.f.tell()
            self.f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, size, start))
            self.f.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
            self.f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
        else:
            self.f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, start, 0))
        self.f.close()


def write_checkpoint(
    path,
    arrays: Dict[str, np.ndarray],
    wrap: Optional[str] = None,
    sparse_before: int = 0,
    pickle: Optional[bytes] = None,
    compress_pickle: bool = False,
    edit_refs=None,
) -> int:
    """Writes `arrays` (float32 / float16 / complex64 / int64) as a torch.save-style archive, one
    storage per tensor, after an optional hole of `sparse_before` bytes (a storage nobody
    references). `edit_refs(refs)` may change the tensor references before they are pickled (to
    describe views the data does not back). Returns the bytes of tensor data written."""
    refs, blobs = {}, {}
    for k, (name, a) in enumerate(arrays.items()):
        a = np.ascontiguousarray(a)
        refs[name] = TensorRef(str(k), STORAGE[a.dtype.name], a.size, a.shape, contiguous(a.shape))
        blobs[str(k)] = a.tobytes()
    if edit_refs:
        edit_refs(refs)
    z = ZipWriter(path)
    z.add("data.pkl", pickle if pickle is not None else state_dict_pickle(refs, wrap), compress=compress_pickle)
    z.add("byteorder", b"little")
    if sparse_before:
        z.add_sparse("data/unused", sparse_before)
    for key, blob in blobs.items():
        z.add(f"data/{key}", blob)
    z.add("version", b"3\n")
    z.close()
    return sum(len(b) for b in blobs.values())
