"""Compile defaults have one home, the library (sam3_neck_compile_default_params and
sam3_neck_io_default_params): Neck.compile, `sam3neck demo` and the benchmark ask it."""

import argparse

import pytest

from sam3neck import _lib, checkpoint
from sam3neck.bench import harness
from sam3neck.neck import Neck, compile_defaults


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("defaults") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, seed=3)
    return path


def test_compile_defaults_read_the_library():
    lib = _lib.get_lib()
    p, io = lib.sam3_neck_compile_default_params(), lib.sam3_neck_io_default_params()
    d = compile_defaults()
    assert (d["height"], d["width"], d["batch"], d["threads"]) == (p.height, p.width, p.batch, p.threads)
    assert d["levels"] == tuple(i for i in range(4) if p.levels_mask >> i & 1)
    assert d["layout"] == "NCHW" and d["precision"] == "default"  # the header's documented defaults
    assert (d["input_dtype"], d["output_dtype"], d["output_layout"]) == ("float32", "float32", "NCHW")
    assert io.input_dtype == _lib.DTYPE_FLOAT32


def test_compile_without_arguments_plans_the_library_defaults(tiny_weights):
    with Neck(tiny_weights) as neck:
        neck.compile()
        assert neck.compile_options == compile_defaults()
        neck.compile(height=8, width=8)  # the others still from the library
        o = neck.compile_options
        assert (o["height"], o["width"]) == (8, 8)
        assert {k: v for k, v in o.items() if k not in ("height", "width")} == {
            k: v for k, v in compile_defaults().items() if k not in ("height", "width")
        }


def test_bench_and_demo_take_the_grid_from_the_library(monkeypatch, tiny_weights, capsys):
    fake = dict(compile_defaults(), height=12, width=10)
    monkeypatch.setattr("sam3neck.neck.compile_defaults", lambda: fake)
    args = argparse.Namespace(
        quick=False,
        height=None,
        width=None,
        runs=None,
        warmup=None,
        rounds=None,
        threads=1,
        modes=None,
        peers=None,
        no_peers=True,
    )
    try:
        resolved = harness._resolve(args)
    except SystemExit:  # a later check of this namespace; the grid is resolved first
        resolved = args
    assert (resolved.height, resolved.width) == (12, 10)

    from sam3neck.__main__ import main

    assert main(["demo", "--weights", str(tiny_weights), "--runs", "1"]) == 0
    assert "input (1, 16, 12, 10) NCHW" in capsys.readouterr().out
