"""Neck.run with DLPack arrays (x and out=): NumPy's own __dlpack__ behind a minimal wrapper, a
producer with only __dlpack__ / __dlpack_device__, zero-copy in both directions, bit-for-bit the
same result as the NumPy array itself, non-CPU devices, wrong dtypes, non-contiguous and read-only
arrays, and PyTorch / JAX where installed (skipped otherwise: neither is installed by make test).

Needs the native library (like test_neck.py).
"""

import ctypes

import numpy as np
import pytest

from sam3neck import Neck, checkpoint, dtypes


class Producer:
    """The minimal DLPack producer: only __dlpack__ and __dlpack_device__, delegating to a NumPy
    array (which speaks DLPack 1.0, so it says whether the memory is read-only)."""

    def __init__(self, a, device=None):
        self.a = a
        self.device = device

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.device if self.device is not None else self.a.__dlpack_device__()


class LegacyProducer(Producer):
    """A pre-1.0 producer: __dlpack__ takes only stream= and returns an unversioned capsule."""

    def __dlpack__(self, stream=None):
        return self.a.__dlpack__(stream=stream)


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.itemsize == 4 else np.uint16)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(p, 16, 8, seed=21)
    return p


@pytest.fixture()
def neck(path):
    with Neck(path) as n:
        n.compile(height=6, width=6, batch=2, levels=(0, 1, 2, 3))
        yield n


@pytest.mark.parametrize("wrap", [Producer, LegacyProducer])
@pytest.mark.parametrize("input_dtype", ["float32", "float16", "bfloat16"])
def test_input_matches_numpy_bit_for_bit(path, wrap, input_dtype):
    with Neck(path) as neck:
        neck.compile(height=7, width=5, batch=2, input_dtype=input_dtype, output_dtype="float16")
        x = dtypes.to_dtype(_x(neck.input_shape), input_dtype)
        if input_dtype == "bfloat16":
            x = dtypes.to_bfloat16_bits(dtypes.to_float32(x))  # uint16 bits: DLPack can carry them
        want = [lv.features.copy() for lv in neck.run(x)]
        got = neck.run(wrap(x))
        assert [lv.level for lv in got] == list(neck.levels)
        for g, w in zip(got, want):
            assert g.features.dtype == w.dtype and g.features.shape == w.shape
            np.testing.assert_array_equal(_bits(g.features), _bits(w))


def test_input_is_not_copied(neck, monkeypatch):
    """The pointer the library is given is the producer's own memory."""
    x = _x(neck.input_shape)
    from sam3neck import _lib

    lib = _lib.get_lib()
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(lib, name)

        def sam3_neck_run_io(self, h, xp, n, ptrs, counts):
            seen.append(xp)
            return lib.sam3_neck_run_io(h, xp, n, ptrs, counts)

    monkeypatch.setattr(_lib, "get_lib", lambda: Spy())
    neck.run(Producer(x))
    assert seen == [x.ctypes.data]
    assert np.from_dlpack(Producer(x)).ctypes.data == x.__array_interface__["data"][0]


def test_out_is_written_in_place(neck):
    x = _x(neck.input_shape)
    want = [lv.features.copy() for lv in neck.run(x)]
    backing = [np.full(s, np.nan, np.float32) for s in neck.level_shapes.values()]
    levels = neck.run(Producer(x), out=[Producer(b) for b in backing])
    for lv, b, w in zip(levels, backing, want):
        np.testing.assert_array_equal(_bits(b), _bits(w))  # the producer's memory holds the result
        assert lv.features.ctypes.data == b.ctypes.data  # and the Level views that memory
    # out= mixes NumPy arrays and DLPack arrays; a NumPy x with DLPack outputs
    backing2 = [np.zeros(s, np.float32) for s in neck.level_shapes.values()]
    out = [backing2[0]] + [Producer(b) for b in backing2[1:]]
    neck.run(x, out=out)
    for b, w in zip(backing2, want):
        np.testing.assert_array_equal(_bits(b), _bits(w))


def test_non_cpu_device_refused(neck):
    x = _x(neck.input_shape)
    with pytest.raises(TypeError, match=r"device CUDA:1 \(DLPack device type 2\).*CPU arrays only"):
        neck.run(Producer(x, device=(2, 1)))
    with pytest.raises(TypeError, match=r"device CUDAHost:0 .*CPU arrays only"):
        neck.run(Producer(x, device=(3, 0)))
    out = [Producer(np.zeros(s, np.float32), device=(10, 0)) for s in neck.level_shapes.values()]
    with pytest.raises(TypeError, match=r"out\[0\] \(level 0\) is on device ROCM:0.*CPU arrays only"):
        neck.run(x, out=out)


def test_wrong_dtype_says_what_to_pass(neck):
    x = _x(neck.input_shape).astype(np.float64)
    with pytest.raises(
        TypeError,
        match=r"dtype float32 .*got float64; convert it to float32 where "
        r"it lives \(x.to\(torch.float32\)",
    ):
        neck.run(Producer(x))
    # NumPy arrays keep their message
    with pytest.raises(TypeError, match=r"got float64; convert with x.astype\(np.float32\)"):
        neck.run(x)


def test_non_contiguous_refused(neck):
    b, c, h, w = neck.input_shape
    x = _x((b, h, w, c)).transpose(0, 3, 1, 2)  # the right shape, NHWC memory
    with pytest.raises(
        ValueError,
        match=r"C-contiguous .*strides are \(576, 1, 96, 16\) elements: "
        r"pass x.contiguous\(\)",
    ):
        neck.run(Producer(x))
    with pytest.raises(ValueError, match=r"pass np.ascontiguousarray\(x\)"):
        neck.run(x)
    out = [np.zeros(s[::-1], np.float32).T for s in neck.level_shapes.values()]
    with pytest.raises(ValueError, match=r"out\[0\] \(level 0\) must be C-contiguous"):
        neck.run(np.ascontiguousarray(x), out=[Producer(o) for o in out])


def test_read_only_out_refused(neck):
    x = _x(neck.input_shape)
    backing = [np.zeros(s, np.float32) for s in neck.level_shapes.values()]
    with pytest.raises(
        ValueError,
        match=r"out\[0\] \(level 0\) is read-only as imported through "
        r"DLPack.*pre-1.0 DLPack",
    ):
        neck.run(x, out=[LegacyProducer(b) for b in backing])
    ro = backing[0].copy()
    ro.flags.writeable = False
    # DLPack 1.0 carries the read-only flag (NumPy sets it for a read-only array)
    with pytest.raises(
        ValueError,
        match=r"out\[0\] \(level 0\) is read-only as imported through "
        r"DLPack: its producer marked it read-only",
    ):
        neck.run(x, out=[Producer(ro)] + backing[1:])
    assert not backing[1].any()  # nothing was written


def test_overlap_and_types(neck):
    x = _x(neck.input_shape)
    backing = [np.zeros(s, np.float32) for s in neck.level_shapes.values()]
    with pytest.raises(ValueError, match=r"out\[1\] \(level 1\) overlaps out\[0\]"):
        neck.run(
            x,
            out=[Producer(backing[0]), Producer(backing[0].reshape(-1)[: backing[1].size].reshape(backing[1].shape))]
            + backing[2:],
        )
    with pytest.raises(TypeError, match=r"numpy.ndarray of float32 or a CPU array with __dlpack__"):
        neck.run(x.tolist())

    class NoDevice:
        def __dlpack__(self, **kw):
            return x.__dlpack__(**kw)

    with pytest.raises(TypeError, match=r"no __dlpack_device__.*CPU arrays only"):
        neck.run(NoDevice())


def test_bfloat16_ml_dtypes_arrays_still_run(path):
    """ml_dtypes.bfloat16 arrays are ndarrays (NumPy cannot export them through DLPack): they take
    the NumPy path, unchanged."""
    bf = dtypes.bfloat16_dtype()
    assert bf is not None  # ml_dtypes is installed by make python-deps
    with Neck(path) as neck:
        neck.compile(height=6, width=6, input_dtype="bfloat16", output_dtype="bfloat16")
        x = dtypes.to_bfloat16(_x(neck.input_shape))
        want = [lv.features.copy() for lv in neck.run(x.view(np.uint16))]
        got = neck.run(x)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(_bits(g.features), _bits(w))


def test_torch_cpu_tensors(path):
    torch = pytest.importorskip("torch")
    with Neck(path) as neck:
        neck.compile(height=6, width=6, batch=2)
        x = _x(neck.input_shape)
        want = [lv.features.copy() for lv in neck.run(x)]
        t = torch.from_numpy(x.copy())
        outs = [torch.full(s, float("nan")) for s in neck.level_shapes.values()]
        got = neck.run(t, out=outs)
        for g, o, w in zip(got, outs, want):
            np.testing.assert_array_equal(_bits(o.numpy()), _bits(w))
            assert g.features.ctypes.data == o.data_ptr()
        with pytest.raises(TypeError, match="convert it to float32"):
            neck.run(t.double())
        with pytest.raises(ValueError, match="C-contiguous"):
            neck.run(t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2))
        neck.compile(height=6, width=6, batch=2, input_dtype="bfloat16", output_dtype="bfloat16")
        xb = dtypes.to_bfloat16_bits(x)
        want = [lv.features.copy() for lv in neck.run(xb)]
        tb = torch.from_numpy(xb.view(np.int16).copy()).view(torch.bfloat16)
        outs = [torch.zeros(s, dtype=torch.bfloat16) for s in neck.level_shapes.values()]
        neck.run(tb, out=outs)
        for o, w in zip(outs, want):
            np.testing.assert_array_equal(o.view(torch.int16).numpy().view(np.uint16), _bits(w))


def test_jax_cpu_arrays(path):
    jax = pytest.importorskip("jax")
    with Neck(path) as neck:
        neck.compile(height=6, width=6, batch=2)
        x = _x(neck.input_shape)
        want = [lv.features.copy() for lv in neck.run(x)]
        got = neck.run(jax.device_put(x, jax.devices("cpu")[0]))
        for g, w in zip(got, want):
            np.testing.assert_array_equal(_bits(g.features), _bits(w))
        neck.compile(height=6, width=6, batch=2, input_dtype="bfloat16")
        xb = dtypes.to_bfloat16(x)
        want = [lv.features.copy() for lv in neck.run(xb)]
        got = neck.run(jax.device_put(jax.numpy.asarray(xb), jax.devices("cpu")[0]))
        for g, w in zip(got, want):
            np.testing.assert_array_equal(_bits(g.features), _bits(w))


class Bfloat16Producer:
    """A DLPack producer of a bfloat16 tensor (kDLBfloat, what torch.bfloat16 exports), which
    np.from_dlpack cannot import: a DLManagedTensorVersioned built with ctypes over a uint16
    array of bfloat16 bits. Records deleter calls."""

    def __init__(self, bits, read_only=False, device=(1, 0)):
        from sam3neck import neck as m

        self.bits, self.read_only, self.device = bits, read_only, device
        self.deleted = 0
        self._keep = []

        def deleter(_address):
            self.deleted += 1

        self._deleter = m._DL_DELETER(deleter)
        self._m = m

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, max_version=None, **kwargs):
        m = self._m
        shape = (ctypes.c_int64 * self.bits.ndim)(*self.bits.shape)
        managed = m._DLManagedTensorVersioned()
        managed.major, managed.minor = 1, 0
        managed.deleter = ctypes.cast(self._deleter, ctypes.c_void_p)
        managed.flags = m._DL_FLAG_READ_ONLY if self.read_only else 0
        t = managed.dl_tensor
        t.data = self.bits.ctypes.data
        t.device.device_type, t.device.device_id = self.device
        t.ndim = self.bits.ndim
        t.dtype.code, t.dtype.bits, t.dtype.lanes = m._DL_BFLOAT, 16, 1
        t.shape = shape
        self._keep.append((shape, managed))
        new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
            ("PyCapsule_New", ctypes.pythonapi)
        )
        return new(ctypes.addressof(managed), b"dltensor_versioned", None)


def test_dlpack_bfloat16_tensor(path):
    """A DLPack bfloat16 tensor runs a bfloat16 plan in place, as x and as out=, bit for bit as the
    NumPy bits; its deleter is called once the views are gone."""
    import gc

    with Neck(path) as neck:
        neck.compile(height=6, width=6, batch=2, input_dtype="bfloat16", output_dtype="bfloat16")
        x = dtypes.to_bfloat16_bits(_x(neck.input_shape))
        want = [lv.features.copy() for lv in neck.run(x)]
        px = Bfloat16Producer(x)
        backing = [np.zeros(s, np.uint16) for s in neck.level_shapes.values()]
        outs = [Bfloat16Producer(b) for b in backing]
        got = neck.run(px, out=outs)
        for g, b, w in zip(got, backing, want):
            assert g.features.dtype == dtypes.bfloat16_dtype()
            assert g.features.ctypes.data == b.ctypes.data
            np.testing.assert_array_equal(b, _bits(w))
        assert px.deleted == 1  # x's view was dropped by run()
        del g, got
        gc.collect()
        assert [o.deleted for o in outs] == [1] * len(outs)
        with pytest.raises(ValueError, match=r"out\[0\] \(level 0\) is read-only as imported"):
            neck.run(x, out=[Bfloat16Producer(b, read_only=True) for b in backing])
        with pytest.raises(TypeError, match=r"device CUDA:0 .*CPU arrays only"):
            neck.run(Bfloat16Producer(x, device=(2, 0)))
        neck.compile(height=6, width=6, batch=2)
        with pytest.raises(TypeError, match=r"dtype float32 .*got bfloat16; convert it to float32"):
            neck.run(px)
