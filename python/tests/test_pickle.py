"""Pickling a Neck: it travels as (path, load options, compile options) and is rebuilt on arrival.

Needs the native library (like test_neck.py).
"""

import copy
import multiprocessing
import pickle

import numpy as np
import pytest

from sam3neck import Neck, Sam3NeckError, checkpoint, reference

TOL = reference.TOLERANCE["default"]


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, seed=3, prefix="vision_backbone.")
    return path


def _same_outputs(a, b):
    assert [lv.level for lv in a] == [lv.level for lv in b]
    for la, lb in zip(a, b):
        np.testing.assert_array_equal(la.features, lb.features)
        np.testing.assert_array_equal(la.pos, lb.pos)


@pytest.mark.parametrize("precision", ["strict", "fast"])
def test_round_trip_compiled_is_bitwise_equal(ck, precision):
    with Neck(ck) as neck:
        neck.compile(5, 7, batch=2, layout="nhwc", levels=(3, 0), threads=1, precision=precision)
        data = pickle.dumps(neck)
        assert len(data) < 2000  # a path and options, not the weights
        x = _x((2, 5, 7, 16), 1)
        with pickle.loads(data) as other:
            assert other is not neck and other.path == neck.path
            assert other.compile_params == neck.compile_params
            assert other.levels == (0, 3) and other.input_shape == (2, 5, 7, 16)
            _same_outputs(neck.run(x), other.run(x))
            other.compile(4, 4)  # independent handles: recompiling one leaves the other alone
            assert neck.input_shape == (2, 5, 7, 16)
        assert not neck.closed


def test_round_trip_uncompiled_keeps_load_options(ck):
    with Neck(ck, neck="sam2", prefix="vision_backbone.") as neck:
        with pickle.loads(pickle.dumps(neck)) as other:
            assert not other.compiled
            other.compile(4, 5)
            neck.compile(4, 5)
            x = _x((1, 16, 4, 5), 2)
            got = other.run(x)
            _same_outputs(neck.run(x), got)
            # it is the tracker neck (sam2_convs) that came back, not the detection neck
            w2 = checkpoint.canonical(checkpoint.load_safetensors(ck), "sam2_convs", "vision_backbone.")
            for lv, (feat, _) in zip(got, reference.forward(w2, x)):
                assert reference.normalised_error(lv.features, feat) <= TOL
        with Neck(ck) as sam3:
            sam3.compile(4, 5)
            assert not np.allclose(sam3.run(x)[2].features, got[2].features)


def test_relative_path_pickles_as_absolute(ck, monkeypatch):
    monkeypatch.chdir(ck.parent)
    with Neck(ck.name) as neck:
        assert neck.path == str(ck)
        monkeypatch.chdir("/")
        with pickle.loads(pickle.dumps(neck)) as other:
            assert other.trunk_dim == 16


def test_copy_gives_an_independent_handle(ck):
    with Neck(ck) as neck:
        neck.compile(3, 3, levels=(2,))
        other = copy.copy(neck)
        neck.close()
        assert other.compiled and other.levels == (2,)
        other.close()


def test_from_bytes_refuses_with_reason(ck):
    with Neck.from_bytes(ck.read_bytes()) as neck:
        assert neck.path is None
        with pytest.raises(pickle.PicklingError, match="from_bytes.*no checkpoint path"):
            pickle.dumps(neck)


def test_closed_refuses(ck):
    neck = Neck(ck)
    neck.close()
    with pytest.raises(pickle.PicklingError, match="closed"):
        pickle.dumps(neck)


def test_missing_file_on_arrival_is_clear(tmp_path):
    path = tmp_path / "gone.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, extras=False)
    with Neck(path) as neck:
        data = pickle.dumps(neck)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        pickle.loads(data)


def _run_in_child(args):
    neck, x = args
    return [(lv.level, lv.features) for lv in neck.run(x)], neck.compile_params["layout"]


def test_spawn_pool(ck):
    xs = [_x((1, 16, 6, 5), s) for s in (4, 5, 6)]
    with Neck(ck) as neck:
        neck.compile(6, 5, levels=(0, 1, 2, 3), threads=1)
        expected = [neck.run(x) for x in xs]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            results = pool.map(_run_in_child, [(neck, x) for x in xs])
    w = checkpoint.canonical(checkpoint.load_safetensors(ck), prefix="vision_backbone.")
    for x, want, (got, layout) in zip(xs, expected, results):
        assert layout == "NCHW"
        assert [lv for lv, _ in got] == [0, 1, 2, 3]
        for lv, (_, feat) in zip(want, got):
            np.testing.assert_array_equal(feat, lv.features)
        for (_, feat), (ref, _) in zip(got, reference.forward(w, x)):
            assert reference.normalised_error(feat, ref) <= TOL


def test_closed_neck_still_errors_on_use(ck):
    neck = Neck(ck)
    other = pickle.loads(pickle.dumps(neck))
    neck.close()
    with pytest.raises(Sam3NeckError, match="closed"):
        neck.compile(3, 3)
    other.compile(3, 3)  # the copy does not share the closed handle
    other.close()


def _fail_in_child(neck):
    neck.run(np.zeros((1, 16, 3, 3), np.float32))  # not compiled


def test_error_pickles_and_reaches_the_parent(ck):
    e = Sam3NeckError(7, "the message", "sam3_neck_run")
    back = pickle.loads(pickle.dumps(e))
    assert (back.status, back.message, back.function, str(back)) == (7, "the message", "sam3_neck_run", str(e))
    with Neck(ck) as neck:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            with pytest.raises(Sam3NeckError, match="not compiled"):
                pool.apply(_fail_in_child, (neck,))


def test_compile_options_are_the_requested_ones(ck):
    with Neck(ck) as neck:
        with pytest.raises(Sam3NeckError, match="not compiled"):
            neck.compile_options
        neck.compile(4, 6, batch=2, layout="nhwc", levels=[3, 1], precision="STRICT")
        opts = neck.compile_options
        assert opts == {
            "height": 4,
            "width": 6,
            "batch": 2,
            "layout": "NHWC",
            "levels": (1, 3),
            "threads": 0,
            "precision": "strict",
            "input_dtype": "float32",
            "output_dtype": "float32",
            "output_layout": "NCHW",
        }
        opts["height"] = 99  # a copy
        assert neck.compile_options["height"] == 4
        with Neck(ck) as other:
            other.compile(**neck.compile_options)
            assert other.compile_params == neck.compile_params
