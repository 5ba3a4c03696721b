"""One rule for a refused Neck.compile: the Neck is left as it was. Every refusal path of compile,
Python's argument checks and the library's, each followed by the same checks of the state: the
same plan (options, parameters, shapes), and a run giving the same output bit for bit. The one
exception the docstring states (the previous plan cannot be compiled again either) is tested too.
Needs the native library (like test_neck.py)."""

import numpy as np
import pytest

from sam3neck import InvalidArgumentError, Neck, Sam3NeckError, _lib, checkpoint

C, D = 16, 8
#: The plan every test starts from: nothing at its default, so a plan that came back with any
#: default in it would show.
PLAN = dict(
    height=6,
    width=5,
    batch=2,
    layout="NHWC",
    levels=(0, 2, 3),
    threads=1,
    precision="strict",
    input_dtype="float16",
    output_dtype="float16",
    output_layout="sequence",
)

#: Arguments Python refuses before anything is touched: (override, exception, message part).
PYTHON_REFUSALS = [
    ({"height": "6"}, TypeError, "height must be an integer"),
    ({"height": 6.0}, TypeError, "height must be an integer"),
    ({"height": True}, TypeError, "height must be an integer"),
    ({"height": 2**31}, ValueError, "height must be in"),
    ({"width": [5]}, TypeError, "width must be an integer"),
    ({"width": -(2**31) - 1}, ValueError, "width must be in"),
    ({"batch": 1.5}, TypeError, "batch must be an integer"),
    ({"batch": 2**40}, ValueError, "batch must be in"),
    ({"threads": "all"}, TypeError, "threads must be an integer"),
    ({"threads": 2**31}, ValueError, "threads must be in"),
    ({"layout": 1}, TypeError, "layout must be one of"),
    ({"layout": "NWHC"}, ValueError, "layout must be one of"),
    ({"levels": "0,1"}, TypeError, "levels must be a sequence"),
    ({"levels": b"\x00"}, TypeError, "levels must be a sequence"),
    ({"levels": 2.5}, TypeError, "levels must be a sequence"),
    ({"levels": ()}, ValueError, "levels is empty"),
    ({"levels": (0, 4)}, ValueError, "level 4 is out of range"),
    ({"levels": (-1,)}, ValueError, "a level index must be in 0.."),
    ({"levels": (1, 1)}, ValueError, "level 1 is named twice"),
    ({"levels": (0.5,)}, TypeError, "a level index must be an integer"),
    ({"levels": (True,)}, TypeError, "a level index must be an integer"),
    ({"precision": 2}, TypeError, "precision must be one of"),
    ({"precision": "turbo"}, ValueError, "precision must be one of"),
    ({"input_dtype": 16}, TypeError, "input_dtype must be one of"),
    ({"input_dtype": "float64"}, ValueError, "input_dtype must be one of"),
    ({"input_dtype": np.float64}, ValueError, "input_dtype must be one of"),
    ({"output_dtype": 1.5}, TypeError, "output_dtype must be one of"),
    ({"output_dtype": "int8"}, ValueError, "output_dtype must be one of"),
    ({"output_layout": 3}, TypeError, "output_layout must be one of"),
    ({"output_layout": "NCWH"}, ValueError, "output_layout must be one of"),
]

#: Values only the library refuses (it drops the handle's plan): (override, status, message part).
LIBRARY_REFUSALS = [
    ({"height": 0}, _lib.ERR_INVALID_ARGUMENT, "height"),
    ({"width": 40000}, _lib.ERR_INVALID_ARGUMENT, "width"),
    ({"batch": 0}, _lib.ERR_INVALID_ARGUMENT, "batch"),
    ({"batch": 1048577}, _lib.ERR_INVALID_ARGUMENT, "batch"),
    ({"threads": -1}, _lib.ERR_INVALID_ARGUMENT, "threads"),
    ({"threads": 1025}, _lib.ERR_INVALID_ARGUMENT, "threads"),
    ({"height": 1}, _lib.ERR_SHAPE, "level 3"),  # the grid too small for a requested level
    # terabytes: refused from the sizes, not attempted
    ({"height": 32768, "width": 32768, "batch": 64}, _lib.ERR_OUT_OF_MEMORY, "would need"),
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("refusal") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(path, C, D, seed=11)
    return path


def _x():
    x = np.random.default_rng(4).standard_normal((2, 6, 5, C), dtype=np.float32)
    return x.astype(np.float16)


def _state(neck):
    """What the plan is: every query, and the bits of a run."""
    out = neck.run(_x())
    return {
        "options": neck.compile_options,
        "params": neck.compile_params,
        "levels": neck.levels,
        "level_shapes": neck.level_shapes,
        "input_shape": neck.input_shape,
        "workspace": neck.workspace_bytes,
        "dtypes": (neck.input_dtype, neck.output_dtype, neck.output_layout),
        "features": [(lv.level, lv.features.dtype, lv.features.tobytes()) for lv in out],
        "pos": [(lv.level, lv.pos.tobytes()) for lv in out],
    }


def _assert_unchanged(neck, before):
    assert neck.compiled
    after = _state(neck)
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] == before[key], key


@pytest.mark.parametrize("override,exc,text", PYTHON_REFUSALS, ids=[repr(o) for o, _, _ in PYTHON_REFUSALS])
def test_python_refusal_keeps_the_plan(weights, override, exc, text):
    with Neck(weights) as neck:
        neck.compile(**PLAN)
        before = _state(neck)
        with pytest.raises(exc, match=text) as e:
            neck.compile(**{**PLAN, **override})
        assert not isinstance(e.value, Sam3NeckError)  # refused here, not by the library
        _assert_unchanged(neck, before)


@pytest.mark.parametrize("override,status,text", LIBRARY_REFUSALS, ids=[repr(o) for o, _, _ in LIBRARY_REFUSALS])
def test_library_refusal_keeps_the_plan(weights, override, status, text):
    with Neck(weights) as neck:
        neck.compile(**PLAN)
        before = _state(neck)
        levels = neck.run(_x())  # Levels of the old plan whose .pos is not read yet
        with pytest.raises(Sam3NeckError, match=text) as e:
            neck.compile(**{**PLAN, **override})
        assert e.value.status == status
        # the values' refusals are ValueErrors too; running out of memory is not
        assert isinstance(e.value, InvalidArgumentError) == (status != _lib.ERR_OUT_OF_MEMORY)
        assert "not compiled" not in str(e.value)
        _assert_unchanged(neck, before)
        assert [lv.pos.tobytes() for lv in levels] == [p for _, p in before["pos"]]


@pytest.mark.parametrize(
    "override",
    [
        PYTHON_REFUSALS[0][0],
        PYTHON_REFUSALS[16][0],
        LIBRARY_REFUSALS[0][0],
        LIBRARY_REFUSALS[6][0],
        LIBRARY_REFUSALS[7][0],
    ],
)
def test_refusal_of_a_first_compile_leaves_it_not_compiled(weights, override):
    with Neck(weights) as neck:
        with pytest.raises((TypeError, ValueError, Sam3NeckError)):
            neck.compile(**{**PLAN, **override})
        assert not neck.compiled
        with pytest.raises(Sam3NeckError, match="not compiled"):
            neck.run(_x())
        neck.compile(**PLAN)  # and it compiles afterwards
        assert neck.compile_options == {**PLAN, "levels": (0, 2, 3)}


def test_refusal_after_a_refusal_keeps_the_first_plan(weights):
    with Neck(weights) as neck:
        neck.compile(**PLAN)
        before = _state(neck)
        for override, _, _ in LIBRARY_REFUSALS[:3] + LIBRARY_REFUSALS[6:]:
            with pytest.raises(Sam3NeckError):
                neck.compile(**{**PLAN, **override})
        with pytest.raises(ValueError):
            neck.compile(**{**PLAN, "levels": ()})
        _assert_unchanged(neck, before)
        neck.compile(**{**PLAN, "levels": (1,)})  # a good compile still replaces it
        assert neck.levels == (1,)


def test_closed_neck_refuses_and_stays_closed(weights):
    neck = Neck(weights)
    neck.compile(**PLAN)
    neck.close()
    with pytest.raises(Sam3NeckError, match="closed"):
        neck.compile(**PLAN)
    assert neck.closed and not neck.compiled


def test_when_the_previous_plan_cannot_be_compiled_again_the_error_says_so(weights, monkeypatch):
    """The narrow exception: something besides the arguments changed since the previous plan was
    compiled (here the kernel variable the library reads at every compile), so the library refuses
    the previous options too; the Neck is then not compiled and the message says so."""
    with Neck(weights) as neck:
        neck.compile(**PLAN)
        monkeypatch.setenv("SAM3NECK_SGEMM_KERNEL", "no-such-kernel")
        with pytest.raises(InvalidArgumentError, match="SAM3NECK_SGEMM_KERNEL") as e:
            neck.compile(**{**PLAN, "height": 7})
        assert e.value.status == _lib.ERR_INVALID_ARGUMENT
        assert "compiling the previous plan again failed too" in e.value.message
        assert str(e.value).endswith("so the neck is not compiled [SAM3_NECK_ERR_INVALID_ARGUMENT]")
        assert not neck.compiled
        monkeypatch.delenv("SAM3NECK_SGEMM_KERNEL")
        neck.compile(**PLAN)
        assert neck.compiled


def test_restored_plan_pickles_with_its_options(weights):
    """What a pickled Neck compiles with on arrival is the plan it keeps, not the refused one."""
    import pickle

    with Neck(weights) as neck:
        neck.compile(**PLAN)
        with pytest.raises(InvalidArgumentError):
            neck.compile(**{**PLAN, "height": 0})
        with pickle.loads(pickle.dumps(neck)) as other:
            assert other.compile_options == neck.compile_options
