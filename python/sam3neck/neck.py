"""The Python face of libsam3neck: Neck (load, compile, run, close), Level and Sam3NeckError.

A thin layer over the C ABI (see _lib.py): it checks the types of the arguments and what the C
structs cannot represent, leaves the values to the library (whose rules are in sam3_neck.h), turns
status codes into Sam3NeckError, and allocates output arrays. It computes nothing.
"""

from __future__ import annotations

import ctypes
import functools
import errno
import operator
import os
import pickle
import threading
import weakref
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from . import dtypes as _dtypes

__all__ = ["Neck", "Level", "Sam3NeckError", "InvalidArgumentError", "parse_levels", "compile_defaults"]

_KINDS = {"sam3": _lib.KIND_SAM3, "sam2": _lib.KIND_SAM2}
_LAYOUTS = {"NCHW": _lib.LAYOUT_NCHW, "NHWC": _lib.LAYOUT_NHWC}
_LAYOUT_NAMES = {v: k for k, v in _LAYOUTS.items()}
_PRECISIONS = {"default": _lib.PRECISION_DEFAULT, "strict": _lib.PRECISION_STRICT, "fast": _lib.PRECISION_FAST}
_PRECISION_NAMES = {v: k for k, v in _PRECISIONS.items()}
_DTYPES = {"float32": _lib.DTYPE_FLOAT32, "float16": _lib.DTYPE_FLOAT16, "bfloat16": _lib.DTYPE_BFLOAT16}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_OUTPUT_LAYOUTS = {"NCHW": _lib.OUTPUT_NCHW, "NHWC": _lib.OUTPUT_NHWC, "sequence": _lib.OUTPUT_SEQUENCE}
_OUTPUT_LAYOUT_NAMES = {v: k for k, v in _OUTPUT_LAYOUTS.items()}
_OUTPUT_SHAPE_NAMES = {"NCHW": "[B, d, h, w]", "NHWC": "[B, h, w, d]", "sequence": "[h*w, B, d]"}
_INT32_MAX = 2**31 - 1


#: DLPack device types (DLDeviceType in dlpack.h), for error messages.
_DL_DEVICES = {
    1: "CPU",
    2: "CUDA",
    3: "CUDAHost",
    4: "OpenCL",
    7: "Vulkan",
    8: "Metal",
    9: "VPI",
    10: "ROCM",
    11: "ROCMHost",
    12: "ExtDev",
    13: "CUDAManaged",
    14: "OneAPI",
    15: "WebGPU",
    16: "Hexagon",
    17: "MAIA",
}
_DL_CPU = 1


def _from_dlpack(obj, what: str) -> np.ndarray:
    """A NumPy view (no copy) of a CPU array that implements the DLPack protocol (__dlpack__ and
    __dlpack_device__: PyTorch and JAX CPU tensors, NumPy arrays...). Only DLPack device type 1
    (kDLCPU) is accepted; every other device, pinned host memory (kDLCUDAHost) included, is a
    TypeError naming it (sam3neck reads and writes CPU memory only, and copying from a device is
    the caller's choice to make). A producer that fails to export is a TypeError with its reason.
    The view is writable only when the producer says so (DLPack 1.0; NumPy imports a pre-1.0
    producer's memory read-only)."""
    device = getattr(obj, "__dlpack_device__", None)
    if device is None:
        raise TypeError(
            f"{what} has __dlpack__ but no __dlpack_device__, so its device is unknown: "
            f"sam3neck takes CPU arrays only; pass a numpy.ndarray"
        )
    try:
        dev_type, dev_id = (int(v) for v in device())
    except Exception as e:  # noqa: BLE001 - the producer's failure, reported as what it is
        raise TypeError(f"{what}.__dlpack_device__() failed: {e}") from e
    if dev_type != _DL_CPU:
        name = _DL_DEVICES.get(dev_type, f"unknown device type {dev_type}")
        raise TypeError(
            f"{what} is on device {name}:{dev_id} (DLPack device type {dev_type}): sam3neck takes "
            f"CPU arrays only; copy it to host memory first (x.cpu() in PyTorch, cupy.asnumpy(x) "
            f"in CuPy, jax.device_put(x, jax.devices('cpu')[0]) in JAX)"
        )
    try:
        return np.from_dlpack(obj)
    except (BufferError, RuntimeError, TypeError, ValueError) as e:
        failure = e
    try:  # NumPy has no bfloat16: such a tensor is read here, as ml_dtypes.bfloat16 / uint16
        a = _bfloat16_from_dlpack(obj)
    except (BufferError, RuntimeError, TypeError, ValueError):
        a = None
    if a is not None:
        failure = None  # its traceback holds this frame, and so `a`: break the cycle
        return a
    raise TypeError(
        f"{what} ({type(obj).__module__}.{type(obj).__name__}) could not be imported through DLPack: {failure}"
    ) from failure


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):  # DLPack < 1.0: capsule "dltensor"
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class _DLManagedTensorVersioned(ctypes.Structure):  # DLPack 1.x: capsule "dltensor_versioned"
    _fields_ = [
        ("major", ctypes.c_uint32),
        ("minor", ctypes.c_uint32),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", _DLTensor),
    ]


_DL_BFLOAT = 4  # kDLBfloat
_DL_FLAG_READ_ONLY = 1
_DL_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# Capsule names stay alive for the process: PyCapsule_SetName keeps the pointer, not a copy.
_USED_NAMES = {b"dltensor": b"used_dltensor", b"dltensor_versioned": b"used_dltensor_versioned"}


class _DLPackOwner:
    """Holds an imported DLPack tensor for the NumPy array made from it (the array's base) and
    calls the producer's deleter when that array is gone."""

    def __init__(self, address: int, deleter: int, interface: dict):
        self.__array_interface__ = interface
        if deleter:
            weakref.finalize(self, _DL_DELETER(deleter), address)


@functools.lru_cache(maxsize=None)
def _capsule_api():
    """PyCapsule_IsValid, _GetPointer and _SetName as private ctypes functions (setting argtypes
    on the shared ctypes.pythonapi could clash with other users of it)."""

    def fn(name, restype):
        proto = ctypes.PYFUNCTYPE(restype, ctypes.py_object, ctypes.c_char_p)
        return proto((name, ctypes.pythonapi))

    return (
        fn("PyCapsule_IsValid", ctypes.c_int),
        fn("PyCapsule_GetPointer", ctypes.c_void_p),
        fn("PyCapsule_SetName", ctypes.c_int),
    )


def _bfloat16_from_dlpack(obj) -> Optional[np.ndarray]:
    """A CPU DLPack tensor of bfloat16 (kDLBfloat, 16 bits, 1 lane), which np.from_dlpack cannot
    import, as a view of its memory: ml_dtypes.bfloat16 when installed, else uint16 bits; writable
    unless a DLPack 1.0 producer flags it read-only (a pre-1.0 one cannot say: read-only, as NumPy
    does). None for anything else (the capsule is then left to its own destructor)."""
    try:
        capsule = obj.__dlpack__(max_version=(1, 0))
    except TypeError:
        capsule = obj.__dlpack__()
    is_valid, get_pointer, set_name = _capsule_api()
    for name, struct in ((b"dltensor_versioned", _DLManagedTensorVersioned), (b"dltensor", _DLManagedTensor)):
        if is_valid(capsule, name):
            break
    else:
        return None
    address = get_pointer(capsule, name)
    managed = struct.from_address(address)
    if struct is _DLManagedTensorVersioned and managed.major != 1:
        return None
    t = managed.dl_tensor
    if (
        t.device.device_type != _DL_CPU
        or t.dtype.code != _DL_BFLOAT
        or t.dtype.bits != 16
        or t.dtype.lanes != 1
        or t.ndim < 0
    ):
        return None
    read_only = struct is _DLManagedTensor or bool(managed.flags & _DL_FLAG_READ_ONLY)
    shape = tuple(int(t.shape[k]) for k in range(t.ndim))
    strides = None if not t.strides else tuple(2 * int(t.strides[k]) for k in range(t.ndim))
    interface = {
        "version": 3,
        "shape": shape,
        "typestr": "<u2",
        "strides": strides,
        "data": ((t.data or 0) + int(t.byte_offset), read_only),
    }
    if set_name(capsule, _USED_NAMES[name]) != 0:
        raise RuntimeError("could not mark the DLPack capsule consumed")
    owner = _DLPackOwner(address, managed.deleter, interface)  # ours to delete from here on
    bits = np.asarray(owner)
    bf = _dtypes.bfloat16_dtype()
    return bits if bf is None else bits.view(bf)


def _is_dlpack(obj) -> bool:
    return not isinstance(obj, np.ndarray) and hasattr(obj, "__dlpack__")


class Sam3NeckError(Exception):
    """A call into libsam3neck failed (or the handle is closed / not compiled).

    status       the sam3_neck_status code (int)
    status_name  its enumerator name, e.g. "SAM3_NECK_ERR_SHAPE"
    message      the library's message (sam3_neck_last_error()) or the Python-side reason
    """

    def __init__(self, status: int, message: str, function: Optional[str] = None):
        self.status = int(status)
        self.status_name = _lib.STATUS_NAMES.get(self.status, f"unknown status {self.status}")
        self.message = message
        self.function = function
        where = f"{function}: " if function and not message.startswith(function) else ""
        super().__init__(f"{where}{message} [{self.status_name}]")

    def __reduce__(self):
        # Exceptions pickle as cls(*self.args) by default, which this __init__ cannot take; a
        # worker process (multiprocessing, Dask) must be able to send the error back.
        return (type(self), (self.status, self.message, self.function))


class InvalidArgumentError(Sam3NeckError, ValueError):
    """The library refused an argument's value (e.g. a grid too small for a requested level):
    a Sam3NeckError with the library's status and message that is also the ValueError the
    Python API documents for bad arguments."""


def _check(status: int, function: str, refused: Tuple[int, ...] = ()) -> None:
    """Raises for a failed call: InvalidArgumentError for the statuses in `refused` (the caller's
    argument values), else Sam3NeckError, with the library's message."""
    if status != _lib.OK:
        msg = _lib.last_error()
        if not msg:
            msg = f"failed with status {status} ({_lib.status_string(status)}) and no message"
        raise (InvalidArgumentError if status in refused else Sam3NeckError)(status, msg, function)


class Level:
    """One pyramid level of a run.

    level     index 0..3
    scale     4.0, 2.0, 1.0 or 0.5
    features  the level's features in the compiled output layout and type: [B, d, h, w] (NCHW,
              the default), [B, h, w, d] (NHWC) or [h*w, B, d] (sequence)
    pos       its position encoding, the same layout and type with B = 1 (read-only, shared
              between runs; fetched from the library on first use, so a caller that never reads
              it never pays its memory)
    layout    "NCHW", "NHWC" or "sequence" (the plan's output_layout)
    dtype     "float32", "float16" or "bfloat16" (the plan's output_dtype); bfloat16 arrays are
              ml_dtypes.bfloat16 when ml_dtypes is installed, else uint16 bit patterns
              (sam3neck.to_float32(level.features) widens either)
    """

    __slots__ = ("level", "scale", "features", "_pos", "layout", "dtype")

    def __init__(
        self, level: int, scale: float, features: np.ndarray, pos, layout: str = "NCHW", dtype: str = "float32"
    ):
        self.level = level
        self.scale = scale
        self.features = features
        self._pos = pos  # the array, or a callable that returns it
        self.layout = layout
        self.dtype = dtype

    @property
    def pos(self) -> np.ndarray:
        if callable(self._pos):
            self._pos = self._pos()
        return self._pos

    @property
    def shape(self) -> Tuple[int, ...]:
        """The features' shape, in the output layout."""
        return tuple(self.features.shape)

    def __repr__(self) -> str:
        return (
            f"Level(level={self.level}, scale={self.scale}, shape={self.shape}, "
            f"layout={self.layout!r}, dtype={self.dtype!r})"
        )


class _Plan:
    __slots__ = (
        "batch",
        "height",
        "width",
        "layout",
        "levels",
        "threads",
        "precision",
        "input_dtype",
        "output_dtype",
        "output_layout",
        "input_storage",
        "output_storage",
        "input_shape",
        "input_count",
        "level_shapes",
        "workspace_bytes",
        "kernel",
        "pos",
        "requested",
        "handed_out",  # whether a run returned Levels that may still read .pos
    )


def _rebuild_neck(path: str, neck: str, prefix: Optional[str], compile_options: Optional[Dict[str, object]]) -> "Neck":
    """Unpickles a Neck: loads `path` again and, if it was compiled, compiles it the same way."""
    rebuilt = Neck(path, neck=neck, prefix=prefix)
    if compile_options is not None:
        rebuilt.compile(**compile_options)
    return rebuilt


def _free_handle(free, handle_value: int) -> None:
    free(ctypes.c_void_p(handle_value))


def _as_int(value, name: str, minimum: int = -_INT32_MAX - 1) -> int:
    """An integer argument as the int32 the C struct holds (ctypes would wrap a larger one
    silently); what values are valid is the library's to say."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if v < minimum or v > _INT32_MAX:
        raise ValueError(f"{name} must be in {minimum}..{_INT32_MAX}, got {v}")
    return v


def parse_levels(levels) -> Tuple[int, ...]:
    """Level indices as a sorted tuple: one int, a sequence of ints, or text such as "0,1,2".
    The one parser of levels in the package (Neck.compile, the reference, the command line).
    TypeError for something that is not levels, ValueError for an empty list, an index outside
    0..NUM_LEVELS-1 or an index named twice."""
    if isinstance(levels, str):
        try:
            levels = [int(t) for t in levels.replace(" ", "").split(",") if t]
        except ValueError:
            raise ValueError(f"levels must be like 0,1,2,3, got {levels!r}") from None
    elif isinstance(levels, (int, np.integer)) and not isinstance(levels, bool):
        levels = (levels,)
    if isinstance(levels, bytes):
        raise TypeError(f"levels must be a sequence of level indices 0..3, got {levels!r}")
    try:
        items = list(levels)
    except TypeError:
        raise TypeError(f"levels must be a sequence of level indices 0..3, got {levels!r}") from None
    if not items:
        raise ValueError("levels is empty: name at least one level in 0..3")
    seen = []
    for item in items:
        i = _as_int(item, "a level index", 0)
        if i >= _lib.NUM_LEVELS:
            raise ValueError(f"level {i} is out of range: levels are 0..{_lib.NUM_LEVELS - 1}")
        if i in seen:
            raise ValueError(f"level {i} is named twice in levels={tuple(items)}")
        seen.append(i)
    return tuple(sorted(seen))


def _choice(value, table: Dict[str, int], name: str, normalise) -> int:
    return table[_choice_name(value, table, name, normalise)]


def _choice_name(value, table: Dict[str, int], name: str, normalise) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {sorted(table)}, got {value!r}")
    key = normalise(value)
    if key not in table:
        raise ValueError(f"{name} must be one of {sorted(table)}, got {value!r}")
    return key


def _dtype_name(value, name: str) -> str:
    """An element type: "float32", "float16" or "bfloat16" (case-insensitive), or the NumPy
    dtype / scalar type of one (np.float16, ml_dtypes.bfloat16)."""
    if not isinstance(value, str) and isinstance(value, (type, np.dtype)):
        try:
            value = np.dtype(value).name
        except TypeError:
            pass
    return _choice_name(value, _DTYPES, name, str.lower)


def _output_layout_name(value) -> str:
    """ "NCHW", "NHWC" or "sequence" (case-insensitive)."""

    def normalise(v: str) -> str:
        return "sequence" if v.lower() == "sequence" else v.upper()

    return _choice_name(value, _OUTPUT_LAYOUTS, "output_layout", normalise)


def _dtype_list(storage) -> str:
    return " or ".join(str(d) for d in storage)


def _neck_choice(neck, kind):
    """`kind=` is the older name of `neck=`; both given must agree."""
    if kind is None:
        return neck
    if neck != "sam3" and neck != kind:
        raise ValueError(f"neck={neck!r} and kind={kind!r} disagree; pass only neck=")
    return kind


def compile_defaults() -> Dict[str, object]:
    """The options Neck.compile uses for arguments left out: the library's own defaults
    (sam3_neck_compile_default_params and sam3_neck_io_default_params), in compile's terms, e.g.
    {"height": 72, "width": 72, "batch": 1, "layout": "NCHW", "levels": (0, 1, 2, 3), "threads":
    0, "precision": "default", "input_dtype": "float32", "output_dtype": "float32",
    "output_layout": "NCHW"}. Loads the library."""
    lib = _lib.get_lib()
    p, io = lib.sam3_neck_compile_default_params(), lib.sam3_neck_io_default_params()
    return {
        "height": p.height,
        "width": p.width,
        "batch": p.batch,
        "layout": _LAYOUT_NAMES[p.layout],
        "levels": tuple(i for i in range(4) if p.levels_mask >> i & 1),
        "threads": p.threads,
        "precision": _PRECISION_NAMES[p.precision],
        "input_dtype": _DTYPE_NAMES[io.input_dtype],
        "output_dtype": _DTYPE_NAMES[io.output_dtype],
        "output_layout": _OUTPUT_LAYOUT_NAMES[io.output_layout],
    }


class Neck:
    """The SAM 3 neck as loaded by libsam3neck.

        neck = Neck("sam3.pt", neck="sam3", prefix=None)
        neck.compile(height=72, width=72, batch=1, layout="NCHW", levels=(0, 1, 2, 3))
        levels = neck.run(x)            # x: float32 C-contiguous [B,C,H,W] (or [B,H,W,C])
        neck.compile(72, 72, input_dtype="bfloat16", output_dtype="float16",
                     output_layout="sequence")   # other element types and output layouts
        neck.close()

    path    a checkpoint: safetensors, a PyTorch zip (torch.save, e.g. the official sam3.pt), or a
            sharded safetensors index (`*.safetensors.index.json`, or the folder holding one)
    neck    "sam3" (the detection neck: "convs" / Transformers "fpn_layers") or "sam2" (the SAM 2 /
            tracker neck: "sam2_convs" / "tracker_neck.fpn_layers"); `kind=` is an older alias
    prefix  None: any known prefix ("detector.backbone.vision_backbone.", "vision_encoder.neck.",
            ...) or none; else the exact text before the group name ("" allowed).

    Pickling (multiprocessing, Dask, Ray...): a Neck pickles as its checkpoint's absolute path, its
    load options (neck, prefix) and, when compiled, the options it was compiled with; unpickling
    loads the checkpoint again (so the path must exist where it is unpickled, e.g. on shared
    storage) and compiles it the same way. The native handle itself is never copied: the receiver
    gets its own. A Neck loaded with from_bytes (no path) or closed cannot be pickled.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        neck: str = "sam3",
        prefix: Optional[str] = None,
        *,
        kind: Optional[str] = None,
    ):
        self._handle: Optional[int] = None
        self._finalizer = None
        self._plan: Optional[_Plan] = None
        self._lock = threading.RLock()
        self._path: Optional[str] = None
        try:
            fspath = os.fspath(path)
        except TypeError:
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
        neck = _neck_choice(neck, kind)
        k, pre = self._check_load_args(neck, prefix)
        if not os.path.exists(fspath):
            raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", fspath)
        lib = _lib.get_lib()
        params = self._load_params(lib, k, pre)
        handle = ctypes.c_void_p()
        status = lib.sam3_neck_load_file(os.fsencode(fspath), ctypes.byref(params), ctypes.byref(handle))
        _check(status, "sam3_neck_load_file")
        self._adopt(lib, handle)
        self.source = fspath
        self._path = os.path.abspath(fspath)
        self._neck_name = neck.lower()
        self._prefix = prefix

    @classmethod
    def from_bytes(
        cls, data, neck: str = "sam3", prefix: Optional[str] = None, *, kind: Optional[str] = None
    ) -> "Neck":
        """Loads from a checkpoint image in memory (safetensors or PyTorch zip; bytes, bytearray,
        memoryview, uint8 array...). The bytes are not kept, so such a Neck cannot be pickled."""
        self = cls.__new__(cls)
        self._path = None
        self._handle = None
        self._finalizer = None
        self._plan = None
        self._lock = threading.RLock()
        k, pre = cls._check_load_args(_neck_choice(neck, kind), prefix)
        try:
            buf = np.frombuffer(data, dtype=np.uint8)
        except (TypeError, ValueError) as e:
            raise TypeError(f"data must be a contiguous bytes-like object, got {type(data).__name__}: {e}") from None
        lib = _lib.get_lib()
        params = cls._load_params(lib, k, pre)
        handle = ctypes.c_void_p()
        status = lib.sam3_neck_load_memory(
            ctypes.c_void_p(buf.ctypes.data), buf.nbytes, ctypes.byref(params), ctypes.byref(handle)
        )
        _check(status, "sam3_neck_load_memory")
        self._adopt(lib, handle)
        self.source = "<memory>"
        self._neck_name = _neck_choice(neck, kind).lower()
        self._prefix = prefix
        return self

    @staticmethod
    def _check_load_args(kind, prefix) -> Tuple[int, Optional[bytes]]:
        k = _choice(kind, _KINDS, "neck", str.lower)
        if prefix is None:
            return k, None
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str or None, got {type(prefix).__name__}")
        if "\0" in prefix:
            raise ValueError("prefix must not contain NUL characters")
        return k, prefix.encode("utf-8")

    @staticmethod
    def _load_params(lib, kind: int, prefix: Optional[bytes]) -> "_lib.LoadParams":
        params = lib.sam3_neck_load_default_params()
        params.kind = kind
        params.prefix = prefix
        return params

    def _adopt(self, lib, handle: ctypes.c_void_p) -> None:
        if not handle.value:
            raise Sam3NeckError(_lib.ERR_INTERNAL, "load reported success but returned NULL")
        self._handle = handle.value
        self._finalizer = weakref.finalize(self, _free_handle, lib.sam3_neck_free, handle.value)
        cfg = _lib.Config()
        _check(lib.sam3_neck_get_config(self._h(), ctypes.byref(cfg)), "sam3_neck_get_config")
        self._trunk_dim = int(cfg.trunk_dim)
        self._d_model = int(cfg.d_model)
        self._scales = tuple(float(s) for s in cfg.scales)

    # -- handle state ---------------------------------------------------------------------------

    def _h(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise Sam3NeckError(_lib.ERR_INVALID_ARGUMENT, "neck is closed")
        return ctypes.c_void_p(self._handle)

    def _need_plan(self) -> _Plan:
        self._h()
        if self._plan is None:
            raise Sam3NeckError(_lib.ERR_NOT_COMPILED, "neck is not compiled: call neck.compile(...) first")
        return self._plan

    def close(self) -> None:
        """Frees the native handle. Idempotent."""
        with self._lock:
            if self._handle is not None:
                self._keep_positions(self._plan)
            self._plan = None
            self._handle = None
            if self._finalizer is not None:
                self._finalizer()

    def weights(self) -> Dict[str, np.ndarray]:
        """The loaded weights, as the library holds them (experimental C API): float32 arrays in
        PyTorch's layouts, keyed "<level>.<module>.<weight|bias>" ("0.dconv_2x2_0.weight", ...,
        "3.conv_3x3.bias"), whatever the checkpoint's format and naming. These are what the
        reference needs (`reference.forward(neck.weights(), x)`)."""
        lib = _lib.get_lib()
        out: Dict[str, np.ndarray] = {}
        index = 0
        while (name := lib.sam3_neck_experimental_tensor_name(index)) is not None:
            shape, rank = (ctypes.c_int64 * 4)(), ctypes.c_int32()
            status = lib.sam3_neck_experimental_get_tensor(self._h(), name, None, 0, shape, ctypes.byref(rank))
            if status != _lib.ERR_SHAPE:  # capacity 0 asks for the shape
                _check(status, "sam3_neck_experimental_get_tensor")
            a = np.empty(tuple(int(shape[i]) for i in range(rank.value)), dtype=np.float32)
            _check(
                lib.sam3_neck_experimental_get_tensor(
                    self._h(), name, a.ctypes.data_as(_lib.c_float_p), a.size, shape, ctypes.byref(rank)
                ),
                "sam3_neck_experimental_get_tensor",
            )
            out[name.decode()] = a
            index += 1
        return out

    @property
    def closed(self) -> bool:
        """True once close() was called (or the context manager exited)."""
        return self._handle is None

    @property
    def path(self) -> Optional[str]:
        """The checkpoint's absolute path, or None for a Neck loaded with from_bytes."""
        return self._path

    # -- pickling -------------------------------------------------------------------------------

    def __reduce__(self):
        """Pickles as (path, neck, prefix, compile options); see the class docstring."""
        with self._lock:
            if self._handle is None:
                raise pickle.PicklingError(
                    "cannot pickle a closed sam3neck.Neck: pickle it before close() (or load a "
                    "new one in the receiving process)"
                )
            if self._path is None:
                raise pickle.PicklingError(
                    "cannot pickle a sam3neck.Neck loaded with Neck.from_bytes: it has no "
                    "checkpoint path to reload from in the receiving process; save the bytes to "
                    "a file (on storage the receiver can read) and load Neck(path) instead"
                )
            options = None if self._plan is None else dict(self._plan.requested)
            return (_rebuild_neck, (self._path, self._neck_name, self._prefix, options))

    def __enter__(self) -> "Neck":
        """Returns self (Sam3NeckError if closed); the Neck is closed on exit."""
        self._h()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- configuration --------------------------------------------------------------------------

    @property
    def trunk_dim(self) -> int:
        """C, the input channels (1024 for SAM 3)."""
        return self._trunk_dim

    @property
    def d_model(self) -> int:
        """d, the output channels of every level (256 for SAM 3)."""
        return self._d_model

    @property
    def scales(self) -> Tuple[float, ...]:
        """The scale of each level (4.0, 2.0, 1.0, 0.5)."""
        return self._scales

    # -- compile --------------------------------------------------------------------------------

    def compile(
        self,
        height: Optional[int] = None,
        width: Optional[int] = None,
        batch: Optional[int] = None,
        layout: Optional[str] = None,
        levels: Optional[Iterable[int]] = None,
        threads: Optional[int] = None,
        precision: Optional[str] = None,
        input_dtype: Optional[str] = None,
        output_dtype: Optional[str] = None,
        output_layout: Optional[str] = None,
    ) -> "Neck":
        """Plans the neck for one input shape (replaces any previous plan). Returns self.

        An argument left out (or None) takes the library's default (compile_defaults(): one
        72 x 72 image, NCHW, every level, all cores, the default precision, float32 in and out).

        height, width  the input grid H x W (72 x 72 for a 1008 x 1008 image)
        batch          B, the number of images per run
        layout         the input's layout: "NCHW" ([B, C, H, W]) or "NHWC" ([B, H, W, C]).
                       Case-insensitive.
        levels         the levels to compute, a subset of (0, 1, 2, 3) or one int
        threads        worker threads of a run; 0 = all cores
        precision      "default", "strict" or "fast" (case-insensitive); each bounds the
                       normalised max error of every level against the float64 reference by
                       sam3neck.reference.TOLERANCE[precision] (the header's
                       SAM3_NECK_BOUND_*): "default" 1e-4, "strict" 1e-5 (float32 products
                       only), "fast" 1e-2 (since 0.4.0: products of bfloat16 operands with
                       float32 sums on CPUs with native bfloat16 products, AMX-BF16 or
                       AVX512_BF16; elsewhere the default mode's arithmetic). With a float16 /
                       bfloat16 output_dtype: reference.tolerance(precision, output_dtype)
        input_dtype    the element type run() takes: "float32", "float16" or "bfloat16"
        output_dtype   the element type of the features and position encodings: the same three
                       (the neck computes in float32; outputs are rounded to nearest even, and
                       float16 overflows to +-Inf past 65504)
        output_layout  "NCHW" ([B, d, h, w]), "NHWC" ([B, h, w, d]) or "sequence" ([h*w, B, d],
                       the tokens SAM 3's transformer encoder reads). Case-insensitive.
        The dtypes may also be given as NumPy types (np.float16, ml_dtypes.bfloat16).

        What the library accepts (ranges, and which grids a level needs) is in sam3_neck.h,
        sam3_neck_compile_params. Raises TypeError / ValueError for bad arguments: types and level
        names are checked here, the values by the library, whose refusal (INVALID_ARGUMENT or
        SHAPE) comes as InvalidArgumentError, both a ValueError and a Sam3NeckError with the
        library's message; Sam3NeckError for other failures (e.g. SAM3_NECK_ERR_OUT_OF_MEMORY).

        A refused compile changes nothing: whatever refuses it (a check here or the library), the
        Neck keeps the plan it had, with the same options, shapes and outputs (or stays not
        compiled). The checks here all come before the handle is touched; the library drops the
        handle's plan when it refuses (sam3_neck.h), so this compiles the previous options again
        before raising. Only if that fails too, which takes a change besides the arguments (memory
        ran out, or $SAM3NECK_SGEMM_KERNEL was set to a kernel the library refuses), is the Neck
        left not compiled; the error then says so.
        """
        # Arguments left out (None) take the library's defaults.
        defaults = compile_defaults()
        height, width, batch, layout, levels, threads, precision, input_dtype, output_dtype, output_layout = (
            defaults[k] if v is None else v
            for k, v in zip(
                ("height", "width", "batch", "layout", "levels", "threads", "precision")
                + ("input_dtype", "output_dtype", "output_layout"),
                (height, width, batch, layout, levels, threads, precision, input_dtype, output_dtype, output_layout),
            )
        )
        in_dt = _dtype_name(input_dtype, "input_dtype")
        out_dt = _dtype_name(output_dtype, "output_dtype")
        out_lay = _output_layout_name(output_layout)
        height = _as_int(height, "height")
        width = _as_int(width, "width")
        batch = _as_int(batch, "batch")
        threads = _as_int(threads, "threads")
        _choice(layout, _LAYOUTS, "layout", str.upper)
        _choice(precision, _PRECISIONS, "precision", str.lower)
        if isinstance(levels, str):
            raise TypeError(f"levels must be a sequence of level indices 0..3, got {levels!r}")
        lv = parse_levels(levels)
        requested = dict(
            height=height,
            width=width,
            batch=batch,
            threads=threads,
            layout=layout.upper(),
            precision=precision.lower(),
            levels=lv,
            input_dtype=in_dt,
            output_dtype=out_dt,
            output_layout=out_lay,
        )
        lib = _lib.get_lib()
        with self._lock:
            h = self._h()
            previous = self._plan
            # Levels of the previous plan keep their .pos: the handle's plan is replaced even
            # when this compile is refused.
            self._keep_positions(previous)
            self._plan = None
            try:
                self._plan = self._compile_handle(lib, h, requested)
            except BaseException as refusal:
                if previous is not None:
                    self._restore(lib, h, previous, refusal)
                raise
        return self

    def _compile_handle(self, lib, h, o: Dict[str, object]) -> _Plan:
        """Compiles the handle with the checked, normalised options `o` (compile_options' form)
        and returns the plan the library reports."""
        mask = 0
        for i in o["levels"]:
            mask |= 1 << i
        params = lib.sam3_neck_compile_default_params()
        params.batch = o["batch"]
        params.height = o["height"]
        params.width = o["width"]
        params.layout = _LAYOUTS[o["layout"]]
        params.levels_mask = mask
        params.threads = o["threads"]
        params.precision = _PRECISIONS[o["precision"]]
        io = lib.sam3_neck_io_default_params()
        io.input_dtype = _DTYPES[o["input_dtype"]]
        io.output_dtype = _DTYPES[o["output_dtype"]]
        io.output_layout = _OUTPUT_LAYOUTS[o["output_layout"]]
        _check(
            lib.sam3_neck_compile_io(h, ctypes.byref(params), ctypes.byref(io)),
            "sam3_neck_compile_io",
            refused=(_lib.ERR_INVALID_ARGUMENT, _lib.ERR_SHAPE),
        )
        plan = self._read_plan(lib, h)
        plan.requested = dict(o)
        return plan

    def _restore(self, lib, h, previous: _Plan, refusal: BaseException) -> None:
        """After a refused compile: compiles `previous`'s options again (the library dropped the
        handle's plan). If that fails too, the Neck stays not compiled and `refusal`, when it is a
        Sam3NeckError, is given a message that says so."""
        try:
            self._plan = self._compile_handle(lib, h, previous.requested)
        except Sam3NeckError as again:
            note = f"compiling the previous plan again failed too ({again}), so the neck is not compiled"
            if isinstance(refusal, Sam3NeckError):
                Sam3NeckError.__init__(refusal, refusal.status, f"{refusal.message}; {note}", refusal.function)
            elif hasattr(refusal, "add_note"):  # Python 3.11+
                refusal.add_note(note)

    def _read_plan(self, lib, h) -> _Plan:
        got = _lib.CompileParams()
        _check(lib.sam3_neck_get_compile_params(h, ctypes.byref(got)), "sam3_neck_get_compile_params")
        p = _Plan()
        p.batch, p.height, p.width = int(got.batch), int(got.height), int(got.width)
        p.layout = _LAYOUT_NAMES.get(int(got.layout), str(got.layout))
        p.levels = tuple(i for i in range(_lib.NUM_LEVELS) if got.levels_mask & (1 << i))
        p.threads = int(got.threads)
        p.precision = _PRECISION_NAMES.get(int(got.precision), str(got.precision))
        io = _lib.IoParams()
        io.struct_size = ctypes.sizeof(_lib.IoParams)
        _check(lib.sam3_neck_get_io_params(h, ctypes.byref(io)), "sam3_neck_get_io_params")
        p.input_dtype = _DTYPE_NAMES.get(int(io.input_dtype), str(io.input_dtype))
        p.output_dtype = _DTYPE_NAMES.get(int(io.output_dtype), str(io.output_dtype))
        p.output_layout = _OUTPUT_LAYOUT_NAMES.get(int(io.output_layout), str(io.output_layout))
        p.input_storage = _dtypes.storage_dtypes(p.input_dtype)
        p.output_storage = _dtypes.storage_dtypes(p.output_dtype)
        c = self._trunk_dim
        if p.layout == "NHWC":
            p.input_shape = (p.batch, p.height, p.width, c)
        else:
            p.input_shape = (p.batch, c, p.height, p.width)
        count = ctypes.c_size_t()
        _check(lib.sam3_neck_input_count(h, ctypes.byref(count)), "sam3_neck_input_count")
        p.input_count = int(count.value)
        if p.input_count != int(np.prod(p.input_shape)):
            raise Sam3NeckError(
                _lib.ERR_INTERNAL,
                f"library expects {p.input_count} input floats, but the compiled shape "
                f"{p.input_shape} holds {int(np.prod(p.input_shape))}",
            )
        ws = ctypes.c_size_t()
        _check(lib.sam3_neck_workspace_size(h, ctypes.byref(ws)), "sam3_neck_workspace_size")
        p.workspace_bytes = int(ws.value)
        kernel = ctypes.c_char_p()
        _check(lib.sam3_neck_kernel_name(h, ctypes.byref(kernel)), "sam3_neck_kernel_name")
        p.kernel = kernel.value.decode()
        p.level_shapes = {}
        p.pos = {}
        p.handed_out = False
        for i in p.levels:
            shape = (ctypes.c_int64 * 4)()
            rank = ctypes.c_int32()
            _check(lib.sam3_neck_output_shape(h, i, shape, ctypes.byref(rank)), "sam3_neck_output_shape")
            p.level_shapes[i] = tuple(int(s) for s in shape[: rank.value])
        # Position encodings are fetched on first use (_position_encoding): most runs never read
        # them, and at 72 x 72 they are as large as the outputs.
        return p

    def _keep_positions(self, p: Optional["_Plan"]) -> None:
        """Before plan `p` is replaced or freed: Levels it returned keep their .pos, so fetch what
        they have not read yet while the library still holds that plan."""
        if p is not None and p.handed_out:
            for i in p.levels:
                self._position_encoding(p, i)

    def _position_encoding(self, p: "_Plan", level: int) -> np.ndarray:
        """Level `level`'s position encoding of plan `p`, fetched once: the same layout and type
        as the outputs, batch 1 (the layout's batch axis is 1 for sequence, 0 otherwise)."""
        with self._lock:
            if level in p.pos:
                return p.pos[level]
            if p is not self._plan:  # replaced after fetching every level (compile), or closed
                raise Sam3NeckError(_lib.ERR_NOT_COMPILED, "the neck was closed before this level's .pos was read")
            baxis = 1 if p.output_layout == "sequence" else 0
            pos = np.empty(
                tuple(1 if k == baxis else s for k, s in enumerate(p.level_shapes[level])), dtype=p.output_storage[0]
            )
            _check(
                _lib.get_lib().sam3_neck_position_encoding_io(self._h(), level, pos.ctypes.data, pos.size),
                "sam3_neck_position_encoding_io",
            )
            pos.flags.writeable = False
            p.pos[level] = pos
            return pos

    @property
    def compiled(self) -> bool:
        """True when a plan exists (compile() succeeded and the Neck is open)."""
        return self._handle is not None and self._plan is not None

    @property
    def levels(self) -> Tuple[int, ...]:
        """The compiled levels, in increasing order."""
        return self._need_plan().levels

    @property
    def level_shapes(self) -> Dict[int, Tuple[int, ...]]:
        """{level: shape} of the features for the compiled levels, in increasing level order, in
        the compiled output layout: (B, d, h, w) for NCHW (the default), (B, h, w, d) for NHWC,
        (h*w, B, d) for sequence."""
        return dict(self._need_plan().level_shapes)

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        """The shape run() expects: (B, C, H, W) for NCHW, (B, H, W, C) for NHWC."""
        return self._need_plan().input_shape

    @property
    def workspace_bytes(self) -> int:
        """Bytes of scratch memory the compiled plan holds (sam3_neck_workspace_size)."""
        return self._need_plan().workspace_bytes

    @property
    def kernel(self) -> str:
        """The code that runs the compiled plan's widest products (sam3_neck_kernel_name): "avx512",
        "avx2", "generic" (the library's float32 micro-kernels; SAM3NECK_SGEMM_KERNEL may name
        one), "openblas", "amx_bf16x3" (the default precision on AMX-BF16 CPUs) or, for
        precision="fast", "amx_bf16" / "avx512_bf16". Chosen at compile."""
        return self._need_plan().kernel

    @property
    def input_dtype(self) -> str:
        """The compiled input element type: "float32", "float16" or "bfloat16"."""
        return self._need_plan().input_dtype

    @property
    def output_dtype(self) -> str:
        """The compiled output element type: "float32", "float16" or "bfloat16"."""
        return self._need_plan().output_dtype

    @property
    def output_layout(self) -> str:
        """The compiled output layout: "NCHW", "NHWC" or "sequence"."""
        return self._need_plan().output_layout

    @property
    def compile_params(self) -> Dict[str, object]:
        """The compiled parameters, as reported by the library (keys batch, height, width, layout,
        levels, threads, precision, input_dtype, output_dtype, output_layout; threads as passed:
        0 stays 0, meaning all cores)."""
        p = self._need_plan()
        return {
            "batch": p.batch,
            "height": p.height,
            "width": p.width,
            "layout": p.layout,
            "levels": p.levels,
            "threads": p.threads,
            "precision": p.precision,
            "input_dtype": p.input_dtype,
            "output_dtype": p.output_dtype,
            "output_layout": p.output_layout,
        }

    @property
    def compile_options(self) -> Dict[str, object]:
        """The options compile() was last called with, normalised (layout upper-case, precision
        lower-case, levels a sorted tuple, threads as given: 0 = all cores, dtypes by name,
        output_layout "NCHW" / "NHWC" / "sequence"); what a pickled Neck compiles with on
        arrival. `neck.compile(**neck.compile_options)` plans the same again."""
        return dict(self._need_plan().requested)

    def position_encoding(self, level: int) -> np.ndarray:
        """The cached position encoding of a compiled level in the compiled output layout and
        type, as an output of batch 1 ([1, d, h, w] for the default NCHW float32 plan; read-only;
        the same array every run's Level.pos holds). ValueError for a level that is not
        compiled."""
        p = self._need_plan()
        if level not in p.levels:
            raise ValueError(f"level {level!r} is not compiled (compiled levels: {p.levels})")
        return self._position_encoding(p, level)

    # -- run ------------------------------------------------------------------------------------

    def _check_input(self, x, p: _Plan) -> np.ndarray:
        """x as the NumPy array run() passes to the library (x itself, or for a DLPack array a
        NumPy view of its memory), after checking its dtype, shape and layout."""
        want = _dtype_list(p.input_storage)
        dlpack = _is_dlpack(x)
        if dlpack:
            x = _from_dlpack(x, "x")
        elif not isinstance(x, np.ndarray):
            raise TypeError(
                f"x must be a numpy.ndarray of {want} or a CPU array with __dlpack__ (PyTorch, "
                f"JAX...), got {type(x).__module__}.{type(x).__name__}"
            )
        if x.dtype not in p.input_storage:
            if dlpack:
                how = (
                    f"convert it to {p.input_dtype} where it lives (x.to(torch.{p.input_dtype}) in "
                    f"PyTorch, x.astype(jnp.{p.input_dtype}) in JAX)"
                )
            elif p.input_dtype == "float32":
                how = "convert with x.astype(np.float32)"
            elif p.input_dtype == "float16":
                how = "convert with x.astype(np.float16)"
            else:
                how = "uint16 holds bfloat16 bit patterns; convert float values with sam3neck.to_bfloat16(x)"
            raise TypeError(
                f"x must have dtype {want} (native byte order) for this plan, compiled with "
                f"input_dtype={p.input_dtype!r}; got {x.dtype}; {how}"
            )
        names = "[B, H, W, C]" if p.layout == "NHWC" else "[B, C, H, W]"
        if x.shape != p.input_shape:
            hint = ""
            other = (
                (p.batch, p.height, p.width, self._trunk_dim)
                if p.layout == "NCHW"
                else (p.batch, self._trunk_dim, p.height, p.width)
            )
            if x.shape == other:
                alt = "NHWC" if p.layout == "NCHW" else "NCHW"
                hint = f" (that is the {alt} shape: compile with layout={alt!r} or transpose x)"
            raise ValueError(
                f"x has shape {tuple(x.shape)}, expected {p.input_shape} = {names} for the "
                f"compiled {p.layout} plan{hint}"
            )
        if not x.flags.c_contiguous:
            if dlpack:
                raise ValueError(
                    "x must be C-contiguous (row-major); its DLPack strides are "
                    f"{tuple(s // x.itemsize for s in x.strides)} elements: pass x.contiguous() "
                    "(PyTorch) or an equivalent C-contiguous copy"
                )
            raise ValueError("x must be C-contiguous (row-major); pass np.ascontiguousarray(x)")
        if not x.flags.aligned:
            raise ValueError(f"x must be aligned for {x.dtype}; pass x.copy()")
        return x

    def _outputs(self, x: np.ndarray, p: _Plan, out) -> List[np.ndarray]:
        want = _dtype_list(p.output_storage)
        if out is None:
            return [np.empty(p.level_shapes[i], dtype=p.output_storage[0]) for i in p.levels]
        if isinstance(out, np.ndarray) or not isinstance(out, (list, tuple)):
            raise TypeError(f"out must be a list of {len(p.levels)} {want} arrays, one per compiled level {p.levels}")
        if len(out) != len(p.levels):
            raise ValueError(f"out has {len(out)} arrays, expected {len(p.levels)} (one per compiled level {p.levels})")
        arrays = list(out)
        for k, (i, a) in enumerate(zip(p.levels, arrays)):
            what = f"out[{k}] (level {i})"
            dlpack = _is_dlpack(a)
            if dlpack:
                a = arrays[k] = _from_dlpack(a, what)
            elif not isinstance(a, np.ndarray):
                raise TypeError(
                    f"{what} must be a numpy.ndarray or a writable CPU array with __dlpack__, got {type(a).__name__}"
                )
            if a.dtype not in p.output_storage:
                raise TypeError(f"{what} must have dtype {want} (output_dtype={p.output_dtype!r}), got {a.dtype}")
            if a.shape != p.level_shapes[i]:
                raise ValueError(
                    f"{what} has shape {a.shape}, expected {p.level_shapes[i]} = "
                    f"{_OUTPUT_SHAPE_NAMES.get(p.output_layout, '')} "
                    f"(output_layout={p.output_layout!r})"
                )
            if not a.flags.c_contiguous or not a.flags.aligned:
                raise ValueError(f"{what} must be C-contiguous and aligned")
            if not a.flags.writeable:
                if dlpack:
                    raise ValueError(
                        f"{what} is read-only as imported through DLPack: its producer marked it "
                        f"read-only, or speaks only pre-1.0 DLPack, which cannot say it is "
                        f"writable; pass a writable numpy.ndarray or a DLPack 1.0 array"
                    )
                raise ValueError(f"{what} is read-only")
            if np.may_share_memory(a, x):
                raise ValueError(f"{what} overlaps the input x")
            for j in range(k):
                if np.may_share_memory(a, arrays[j]):
                    raise ValueError(f"{what} overlaps out[{j}]")
        return arrays

    def run(self, x, out: Optional[Sequence[object]] = None) -> List[Level]:
        """Runs the compiled plan on x and returns one Level per compiled level, in order.

        x    C-contiguous, shape neck.input_shape ([B,C,H,W] for NCHW, [B,H,W,C] for NHWC), of
             the compiled input_dtype: float32, float16, or for bfloat16 an ml_dtypes.bfloat16
             array or a uint16 array of bfloat16 bits (sam3neck.to_bfloat16 makes either).
             A numpy.ndarray, or any CPU array with __dlpack__ / __dlpack_device__ (PyTorch and
             JAX CPU tensors...), which is read in place through np.from_dlpack, never copied.
        out  optional list of preallocated C-contiguous arrays of the output type, one per
             compiled level with shape neck.level_shapes[level]; they are filled in place and
             returned as the Levels' features (for a DLPack array, a NumPy view of its memory).
             NumPy arrays and writable CPU DLPack arrays may be mixed. By default fresh arrays
             are allocated on every call: float32, float16, or for bfloat16 ml_dtypes.bfloat16
             when ml_dtypes is installed, else uint16.

        DLPack arrays: only DLPack device type kDLCPU (1) is taken; any other device, pinned host
        memory (kDLCUDAHost) included, is a TypeError naming the device ("CPU arrays only": copy
        it to the host first, e.g. x.cpu()). Nothing is converted: a DLPack array of another
        dtype is a TypeError saying which dtype to convert to, a non-contiguous one a ValueError
        (pass x.contiguous()), exactly as for NumPy arrays. A bfloat16 plan takes DLPack bfloat16
        tensors (torch.bfloat16, jnp.bfloat16; read here, as NumPy cannot import that type, and
        seen as ml_dtypes.bfloat16, else uint16 bits) or uint16 bits. An out= array must be
        imported writable: DLPack 1.0
        producers (NumPy >= 2.1, recent PyTorch and JAX) say whether it is; a read-only one, or one
        from a pre-1.0 producer (which NumPy imports read-only), is a ValueError.

        Raises TypeError / ValueError for a wrong input or out (type, device, dtype, shape,
        contiguity, read-only, overlap), Sam3NeckError when the Neck is closed or not compiled or
        the library fails. Safe to call from several threads on one Neck (runs are serialised);
        not concurrently with compile().
        """
        lib = _lib.get_lib()
        with self._lock:
            h = self._h()
            p = self._need_plan()
            x = self._check_input(x, p)
            arrays = self._outputs(x, p, out)
            ptrs = (ctypes.c_void_p * _lib.NUM_LEVELS)()
            counts = (ctypes.c_size_t * _lib.NUM_LEVELS)()
            for i, a in zip(p.levels, arrays):
                ptrs[i] = a.ctypes.data
                counts[i] = a.size
            status = lib.sam3_neck_run_io(h, x.ctypes.data, x.size, ptrs, counts)
            _check(status, "sam3_neck_run_io")
            p.handed_out = True
            return [
                Level(
                    i,
                    self._scales[i],
                    a,
                    functools.partial(self._position_encoding, p, i),
                    p.output_layout,
                    p.output_dtype,
                )
                for i, a in zip(p.levels, arrays)
            ]

    __call__ = run

    def __repr__(self) -> str:
        if self._handle is None:
            return "<sam3neck.Neck closed>"
        state = "not compiled"
        if self._plan is not None:
            pl = self._plan
            state = f"compiled for input {pl.input_shape} {pl.layout}, levels {pl.levels}"
            if (pl.input_dtype, pl.output_dtype, pl.output_layout) != ("float32", "float32", "NCHW"):
                state += f", {pl.input_dtype} in, {pl.output_dtype} {pl.output_layout} out"
        return f"<sam3neck.Neck C={self._trunk_dim} d={self._d_model}, {state}>"
