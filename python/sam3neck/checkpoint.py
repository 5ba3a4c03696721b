"""Safetensors I/O in pure NumPy, and a synthetic SAM 3 neck checkpoint writer: what the tests,
the demo and the examples need to WRITE checkpoints (and read back what they wrote). Loading a
checkpoint for the neck, in any format and naming, is the library's (Neck, Neck.weights()).

The safetensors format: an 8-byte little-endian unsigned header length N, then N bytes of JSON
``{name: {"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the raw little-endian tensor data. Offsets are relative to the first byte after the header;
tensors are stored back to back. This writer pads the header with spaces to a multiple of 8 bytes,
so that the data section starts 8-byte aligned.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ._paths import atomic_writer, make_folder, open_for_reading

__all__ = [
    "FLOAT_DTYPES",
    "NECK_MODULES",
    "neck_tensor_shapes",
    "to_bf16_bits",
    "from_bf16_bits",
    "round_to_dtype",
    "safetensors_bytes",
    "raw_safetensors_bytes",
    "save_safetensors",
    "load_safetensors",
    "parse_safetensors",
    "read_safetensors_header",
    "synthetic_neck",
    "canonical",
    "write_synthetic_checkpoint",
    "default_checkpoint_path",
    "ensure_default_checkpoint",
    "DEFAULT_PREFIX",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Float dtypes a checkpoint is written in (float tensors are converted to the chosen one).
FLOAT_DTYPES = ("F32", "F16", "BF16")

#: The prefix of the neck's tensors in the official SAM 3 checkpoint.
DEFAULT_PREFIX = "detector.backbone.vision_backbone."

#: Per branch i (0..3), the modules with weights, in the order they are applied.
#: Branch 3 begins with a 2x2 max pool, which has no weights.
NECK_MODULES: Dict[int, Tuple[str, ...]] = {
    0: ("dconv_2x2_0", "dconv_2x2_1", "conv_1x1", "conv_3x3"),
    1: ("dconv_2x2", "conv_1x1", "conv_3x3"),
    2: ("conv_1x1", "conv_3x3"),
    3: ("conv_1x1", "conv_3x3"),
}

# safetensors dtype string <-> little-endian NumPy dtype (BF16 is carried as raw uint16 bits).
_ST_TO_NP = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

_NP_INT_TO_ST = {
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint64"): "U64",
    np.dtype("uint32"): "U32",
    np.dtype("uint16"): "U16",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}


# ------------------------------------------------------------------------------------------------
# bfloat16 bit conversions
# ------------------------------------------------------------------------------------------------


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 values -> bfloat16 bit patterns (uint16), rounding to nearest, ties to even.

    NaNs stay NaNs (quiet, sign kept); values that round past the largest finite bfloat16 become
    infinity, as IEEE rounding requires.
    """
    f = np.ascontiguousarray(x, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    lsb = (u >> np.uint64(16)) & np.uint64(1)
    rounded = ((u + np.uint64(0x7FFF) + lsb) >> np.uint64(16)).astype(np.uint16)
    nan = np.isnan(f)
    if np.any(nan):
        quiet = ((u >> np.uint64(16)) | np.uint64(0x0040)).astype(np.uint16)
        rounded = np.where(nan, quiet, rounded)
    return rounded.reshape(f.shape)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 values (exact)."""
    b = np.asarray(bits, dtype=np.uint16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32).reshape(b.shape)


def round_to_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """The float32 values a float tensor has after being stored as `dtype` and read back."""
    f = np.asarray(x, dtype=np.float32)
    if dtype == "F32":
        return f.copy()
    if dtype == "F16":
        with np.errstate(over="ignore"):  # values beyond the F16 range become +-inf
            return f.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return from_bf16_bits(to_bf16_bits(f))
    raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def _encode_tensor(name: str, value, dtype: str) -> Tuple[str, list, bytes]:
    arr = np.asarray(value)
    shape = [int(s) for s in arr.shape]
    if arr.dtype.kind == "f":
        if dtype == "F32":
            data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        elif dtype == "F16":
            with np.errstate(over="ignore"):  # values beyond the F16 range become +-inf
                data = np.ascontiguousarray(arr.astype(np.float32).astype("<f2")).tobytes()
        elif dtype == "BF16":
            data = to_bf16_bits(arr).astype("<u2").tobytes()
        else:  # pragma: no cover - checked by the caller
            raise ValueError(dtype)
        return dtype, shape, data
    st = _NP_INT_TO_ST.get(arr.dtype)
    if st is None:
        raise TypeError(f"tensor {name!r}: cannot store NumPy dtype {arr.dtype} in safetensors")
    return st, shape, np.ascontiguousarray(arr, dtype=_ST_TO_NP[st]).tobytes()


def raw_safetensors_bytes(
    entries: Mapping[str, Tuple[str, "list[int]", bytes]],
    metadata: Optional[Mapping[str, str]] = None,
) -> bytes:
    """Assembles a safetensors image from already encoded tensors.

    entries: name -> (dtype string, shape, raw little-endian bytes), stored in the given order.
    Nothing is validated beyond the metadata being str -> str, so tests can build odd files.
    """
    header: dict = {}
    if metadata is not None:
        meta = dict(metadata)
        for k, v in meta.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors __metadata__ must map str to str")
        header["__metadata__"] = meta
    chunks = []
    offset = 0
    for name, (dtype, shape, data) in entries.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        data = bytes(data)
        header[name] = {
            "dtype": dtype,
            "shape": [int(s) for s in shape],
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def safetensors_bytes(
    tensors: Mapping[str, np.ndarray],
    dtype: str = "F32",
    metadata: Optional[Mapping[str, str]] = None,
) -> bytes:
    """The safetensors image of `tensors` (see save_safetensors)."""
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    entries = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        entries[name] = _encode_tensor(name, value, dtype)
    return raw_safetensors_bytes(entries, metadata)


def _atomic_write(path: PathLike, data: bytes) -> None:
    path = Path(path)
    make_folder(path.parent)
    with atomic_writer(path) as f:
        f.write(data)


def save_safetensors(
    path: PathLike,
    tensors: Mapping[str, np.ndarray],
    dtype: str = "F32",
    metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Writes `tensors` to a safetensors file.

    Float tensors are stored as `dtype` ("F32", "F16" or "BF16"; F16 and BF16 round to nearest
    even); integer and bool tensors keep their own dtype. `metadata` (str -> str) becomes the
    "__metadata__" entry. The file is written to a temporary name and renamed into place.
    """
    _atomic_write(path, safetensors_bytes(tensors, dtype=dtype, metadata=metadata))


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def read_safetensors_header(data: bytes) -> Tuple[dict, int]:
    """Parses the header of a safetensors image: returns (header dict, offset of the data section)."""
    view = memoryview(data)
    if len(view) < 8:
        raise ValueError("not a safetensors image: fewer than 8 bytes")
    (n,) = struct.unpack("<Q", bytes(view[:8]))
    if n > len(view) - 8:
        raise ValueError(f"safetensors header length {n} exceeds the {len(view) - 8} bytes after it")
    header = json.loads(bytes(view[8 : 8 + n]).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    return header, 8 + n


def parse_safetensors(data: bytes, names=None) -> Dict[str, np.ndarray]:
    """Decodes a safetensors image held in memory (see load_safetensors)."""
    header, start = read_safetensors_header(data)
    buf = memoryview(data)[start:]
    out: Dict[str, np.ndarray] = {}
    wanted = None if names is None else set(names)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if wanted is not None and name not in wanted:
            continue
        dtype = info["dtype"]
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(v) for v in info["data_offsets"])
        npd = _ST_TO_NP.get(dtype)
        if npd is None:
            raise ValueError(f"tensor {name!r}: unsupported safetensors dtype {dtype!r}")
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= begin <= end <= len(buf)) or end - begin != count * npd.itemsize:
            raise ValueError(
                f"tensor {name!r}: data_offsets {[begin, end]} do not fit shape {list(shape)} "
                f"of {dtype} in a data section of {len(buf)} bytes"
            )
        raw = np.frombuffer(buf[begin:end], dtype=npd).reshape(shape)
        if dtype == "BF16":
            arr = from_bf16_bits(raw)
        elif dtype in ("F32", "F16"):
            arr = raw.astype(np.float32)
        else:
            arr = raw.astype(npd.newbyteorder("="))
        out[name] = arr
    return out


def read_safetensors_file_header(path: PathLike) -> Tuple[dict, int]:
    """Reads only the header of a safetensors file: (header dict, offset of the data section).
    Regular files only (sam3neck._paths.open_for_reading): anything else is a PathError (OSError)."""
    with open_for_reading(path) as f:
        return _file_header(f, path)


def _file_header(f, path: PathLike) -> Tuple[dict, int]:
    head = f.read(8)
    if len(head) < 8:
        raise ValueError(f"{path}: not a safetensors file: fewer than 8 bytes")
    (n,) = struct.unpack("<Q", head)
    size = os.fstat(f.fileno()).st_size
    if n > size - 8:
        raise ValueError(f"{path}: safetensors header length {n} exceeds the {size - 8} bytes after it")
    return read_safetensors_header(head + f.read(n))


def load_safetensors(path: PathLike, names=None) -> Dict[str, np.ndarray]:
    """Reads a safetensors file. F32, F16 and BF16 tensors come back as float32 arrays; other
    dtypes keep their own (native byte order). `names`: optional iterable restricting what is
    decoded — then only the header and those tensors' bytes are read, so picking the neck out of a
    multi-GB checkpoint reads a few MB. Metadata is available through read_safetensors_header.
    Regular files only (sam3neck._paths.open_for_reading): anything else is a PathError (OSError)."""
    if names is None:
        with open_for_reading(path) as f:
            return parse_safetensors(f.read())
    out: Dict[str, np.ndarray] = {}
    with open_for_reading(path) as f:
        header, start = _file_header(f, path)
        for name in names:
            info = header.get(name)
            if info is None or name == "__metadata__":
                continue
            begin, end = (int(v) for v in info["data_offsets"])
            f.seek(start + begin)
            data = f.read(end - begin)
            # A one-tensor image of just these bytes, decoded by the same code.
            one = json.dumps({name: {**info, "data_offsets": [0, len(data)]}}).encode()
            out.update(parse_safetensors(struct.pack("<Q", len(one)) + one + data))
    return out


# ------------------------------------------------------------------------------------------------
# Synthetic checkpoints
# ------------------------------------------------------------------------------------------------


def neck_tensor_shapes(trunk_dim: int = 1024, d_model: int = 256) -> Dict[str, Tuple[int, ...]]:
    """The upstream PyTorch shapes of the neck's tensors, keyed "{i}.{module}.{weight|bias}"."""
    c, d = int(trunk_dim), int(d_model)
    if c < 4 or c % 4 != 0:
        raise ValueError(f"trunk_dim must be a positive multiple of 4, got {trunk_dim}")
    if d < 1:
        raise ValueError(f"d_model must be positive, got {d_model}")
    shapes: Dict[str, Tuple[int, ...]] = {}

    def tconv(name, cin, cout):  # ConvTranspose2d weight [in, out, kh, kw]
        shapes[f"{name}.weight"] = (cin, cout, 2, 2)
        shapes[f"{name}.bias"] = (cout,)

    def conv(name, cin, cout, k):  # Conv2d weight [out, in, kh, kw]
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        shapes[f"{name}.bias"] = (cout,)

    tconv("0.dconv_2x2_0", c, c // 2)
    tconv("0.dconv_2x2_1", c // 2, c // 4)
    conv("0.conv_1x1", c // 4, d, 1)
    conv("0.conv_3x3", d, d, 3)
    tconv("1.dconv_2x2", c, c // 2)
    conv("1.conv_1x1", c // 2, d, 1)
    conv("1.conv_3x3", d, d, 3)
    for i in (2, 3):
        conv(f"{i}.conv_1x1", c, d, 1)
        conv(f"{i}.conv_3x3", d, d, 3)
    return shapes


def synthetic_neck(
    trunk_dim: int = 1024, d_model: int = 256, seed: int = 0, group: Optional[str] = "convs"
) -> Dict[str, np.ndarray]:
    """Deterministic random neck weights, float32, named "{group}.{i}.{module}.{weight|bias}"
    (group None: the canonical "{i}.{module}.{weight|bias}" that reference.forward takes).

    Values are uniform in +-1/sqrt(fan_in), like PyTorch's default initialisation, where fan_in is
    the number of products summed into one output (in*kh*kw for Conv2d, in for the
    non-overlapping 2x2 transposed conv). Biases are drawn the same way, so they are nonzero.
    """
    rng = np.random.default_rng(seed)
    out: Dict[str, np.ndarray] = {}
    shapes = neck_tensor_shapes(trunk_dim, d_model)
    for name, shape in shapes.items():
        module = name.rsplit(".", 1)[0]
        wshape = shapes[module + ".weight"]
        if "dconv" in module:
            fan_in = wshape[0]
        else:
            fan_in = wshape[1] * wshape[2] * wshape[3]
        bound = 1.0 / np.sqrt(fan_in)
        key = name if group is None else f"{group}.{name}"
        out[key] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def canonical(tensors: Mapping[str, np.ndarray], group: str = "convs", prefix: str = "") -> Dict[str, np.ndarray]:
    """The tensors named `prefix + group + "." + name` among `tensors`, keyed by `name`, the
    canonical name ("0.conv_1x1.weight") that reference.forward takes and Neck.weights() returns:
    the inverse of the names this module writes (e.g. write_synthetic_checkpoint's return value,
    or load_safetensors of what it wrote). Loading a checkpoint of any naming is the library's."""
    head = f"{prefix}{group}."
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


def _extra_tensors(seed: int) -> Dict[str, np.ndarray]:
    """A few tensors of a real SAM 3 checkpoint that a neck loader must skip."""
    rng = np.random.default_rng(seed + 1000)
    return {
        "detector.backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight": rng.standard_normal((24, 8)).astype(
            np.float32
        ),
        "detector.backbone.vision_backbone.trunk.blocks.0.attn.qkv.bias": rng.standard_normal((24,)).astype(np.float32),
        "detector.backbone.vision_backbone.trunk.pos_embed": rng.standard_normal((1, 4, 4, 8)).astype(np.float32),
        "detector.backbone.language_backbone.encoder.token_embedding.weight": rng.standard_normal((16, 8)).astype(
            np.float32
        ),
        "detector.transformer.encoder.layers.0.norm1.weight": np.ones(8, dtype=np.float32),
        # an integer buffer (like BatchNorm's num_batches_tracked), not a float
        "detector.backbone.vision_backbone.trunk.num_batches_tracked": np.array(7, dtype=np.int64),
    }


def write_synthetic_checkpoint(
    path: PathLike,
    trunk_dim: int = 1024,
    d_model: int = 256,
    seed: int = 0,
    dtype: str = "F32",
    prefix: str = DEFAULT_PREFIX,
    extras: bool = True,
) -> Dict[str, np.ndarray]:
    """Writes a synthetic SAM 3 neck checkpoint to `path` (safetensors).

    The detection neck goes under `prefix + "convs."`. With extras=True the file also holds a
    tracker neck copy (`prefix + "sam2_convs."`, drawn with seed+1) and a few unrelated tensors
    (trunk, text encoder, an int64 buffer) before and after the neck, so loaders are exercised on
    skipping them.

    Returns the detection neck's tensors with unprefixed names ("convs.0.conv_1x1.weight", ...) as
    float32 arrays holding exactly the stored values (after F16/BF16 rounding).
    """
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    neck = synthetic_neck(trunk_dim, d_model, seed, group="convs")
    tensors: Dict[str, np.ndarray] = {}
    if extras:
        tensors.update(_extra_tensors(seed))
        tracker = synthetic_neck(trunk_dim, d_model, seed + 1, group="sam2_convs")
        tensors.update({prefix + k: v for k, v in tracker.items()})
    tensors.update({prefix + k: v for k, v in neck.items()})
    if extras:
        tensors["detector.backbone.vision_backbone.trunk.ln_post.weight"] = np.ones(8, np.float32)
    metadata = {
        "format": "pt",
        "generator": "sam3neck.checkpoint.write_synthetic_checkpoint",
        "trunk_dim": str(trunk_dim),
        "d_model": str(d_model),
        "seed": str(seed),
    }
    save_safetensors(path, tensors, dtype=dtype, metadata=metadata)
    return {k: round_to_dtype(v, dtype) for k, v in neck.items()}


def _cache_dir() -> Path:
    env = os.environ.get("SAM3NECK_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sam3neck"


def default_checkpoint_path(trunk_dim: int = 1024, d_model: int = 256, seed: int = 0) -> Path:
    """Where the default synthetic checkpoint lives: $SAM3NECK_CACHE or ~/.cache/sam3neck/."""
    return _cache_dir() / f"synthetic-sam3-neck-c{trunk_dim}-d{d_model}-seed{seed}.safetensors"


def ensure_default_checkpoint(trunk_dim: int = 1024, d_model: int = 256, seed: int = 0) -> Path:
    """Returns default_checkpoint_path(), writing the synthetic checkpoint there first if absent
    (atomically: a temporary file renamed into place)."""
    path = default_checkpoint_path(trunk_dim, d_model, seed)
    if not path.is_file():
        write_synthetic_checkpoint(path, trunk_dim=trunk_dim, d_model=d_model, seed=seed)
    return path
