"""The benchmark (`python -m sam3neck bench`): a smoke run of the command, the direct FLOP count,
and the peers' ONNX graph against the float64 reference (so a peer computes the same neck).

The smoke run needs the native library: like test_neck.py it FAILS when the library is missing,
unless SAM3NECK_ALLOW_MISSING_LIB=1. The ONNX checks run only where onnx and onnxruntime (and
openvino) are importable: the peers are optional extras, never test dependencies.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam3neck import _lib, bench, checkpoint, reference
from sam3neck.bench import harness as bench_harness

PYTHON_DIR = Path(__file__).resolve().parent.parent


def _library_error():
    try:
        _lib.library_path()
        return None
    except OSError as e:
        return e


def test_direct_flop_count():
    # C=1024, d=256 at 72x72: about 215 GFLOP for all four levels (the spec's figure).
    total = bench.neck_flops((0, 1, 2, 3), 1024, 256, 72, 72)
    assert 214e9 < total < 216e9
    # the 3x3 conv at 288x288 alone is 98 GFLOP
    assert round(2 * 288 * 288 * 256 * 256 * 9 / 1e9) == 98
    assert bench.neck_flops((0, 1, 2, 3), 1024, 256, 72, 72, batch=4) == 4 * total
    # level 3 floors odd sizes, like the max pool
    assert bench.level_flops(3, 16, 8, 7, 5) == bench.level_flops(3, 16, 8, 6, 4)


def _amx_default():
    """Whether the default mode runs its Winograd products as bf16x3 on AMX here (the README: where
    the CPU has AMX-BF16, unless SAM3NECK_SGEMM_KERNEL names a kernel), read from /proc/cpuinfo."""
    if os.environ.get("SAM3NECK_SGEMM_KERNEL") in ("generic", "avx2", "avx512"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return {"amx_tile", "amx_bf16", "avx512f", "avx512bw"} <= set(flags)


def _executed_gflop(level, mode, h, w, c=1024, d=256):
    """The products one image of `level` executes, counted here from the algorithms the README
    describes (F(4x4) Winograd tiles by default; in strict mode, and in the default mode on AMX,
    F(2x2, 3x3) and, for level 0's last layers as four phases of a 2x2 conv over the 2H x 2W grid
    G, F(3x3, 2x2)), independently of the library's count."""
    small = mode == "strict" or _amx_default()
    m = 2 if small else 4

    def winograd(height, width, r, cin, cout, m=m):
        alpha = m + r - 1
        return 2 * (-(-height // m)) * (-(-width // m)) * alpha * alpha * cin * cout

    if level == 0:
        m0 = 3 if small else 4
        flops = 2 * h * w * c * 4 * (c // 2) + 4 * winograd(2 * h, 2 * w, 2, c // 2, d, m=m0)
    elif level == 1:
        flops = 2 * h * w * c * 4 * d + winograd(2 * h, 2 * w, 3, d, d)
    elif level == 2:
        flops = 2 * h * w * c * d + winograd(h, w, 3, d, d)
    else:
        flops = 2 * (h // 2) * (w // 2) * c * d + winograd(h // 2, w // 2, 3, d, d)
    return flops / 1e9


def test_profile_cost_counts_the_executed_products(tmp_path):
    """`sam3neck-profile --cost` (the benchmark's efficiency column) reports the products each level
    executes in both modes as counted independently above, and a positive measured peak."""
    binary = bench_harness.profile_binary()
    if not binary.is_file():
        if os.environ.get("SAM3NECK_ALLOW_MISSING_LIB") == "1":
            pytest.skip(f"{binary} not built; SAM3NECK_ALLOW_MISSING_LIB=1")
        pytest.fail(f"{binary} is not built (swift build -c release)", pytrace=False)
    path = tmp_path / "neck.safetensors"
    checkpoint.write_synthetic_checkpoint(str(path), seed=0, extras=False)
    for h, w in ((16, 16), (18, 10)):
        p = subprocess.run([str(binary), "--cost", str(path), str(h), str(w), "1", "0xF", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        assert p.returncode == 0, p.stdout
        cost = json.loads(p.stdout.strip().splitlines()[-1])
        assert cost["peak_gflops"] > 0 and cost["threads"] == 1
        for mode in ("default", "strict"):
            for level in range(4):
                got = cost["executed_gflop_per_image"][mode][str(level)]
                assert got == pytest.approx(_executed_gflop(level, mode, h, w), rel=1e-12), (mode, level, h, w)


@pytest.mark.parametrize("option", ["--rounds", "--runs"])
def test_bench_refuses_fewer_than_one(option):
    """Zero rounds or runs would give a table of nothing: refused before any row runs."""
    with pytest.raises(SystemExit, match=f"{option} must be at least 1"):
        bench_harness.main(["--quick", "--no-peers", option, "0"])


def test_bench_quick_smoke(tmp_path):
    err = _library_error()
    if err is not None:
        if os.environ.get("SAM3NECK_ALLOW_MISSING_LIB") == "1":
            pytest.skip(f"libsam3neck not available ({err}); SAM3NECK_ALLOW_MISSING_LIB=1")
        pytest.fail(f"libsam3neck is not available: {err}", pytrace=False)
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + (os.pathsep + env["PYTHONPATH"]
                                           if env.get("PYTHONPATH") else "")
    p = subprocess.run(
        [sys.executable, "-m", "sam3neck", "bench", "--quick", "--no-peers", "--rounds", "2",
         "--json", str(out)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "median ms" in p.stdout and "GFLOP/s" in p.stdout and "eff" in p.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == bench.SCHEMA
    assert doc["grid"] == [16, 16] and doc["runs"] == 2 and doc["warmup"] == 1 and doc["rounds"] == 2
    assert "2 rounds (every row once per round, in turn)" in p.stdout
    assert p.stderr.count("(round 2 of 2)") == len(doc["rows"])
    assert doc["threads"] == os.cpu_count()
    assert (doc["trunk_dim"], doc["d_model"]) == (1024, 256)
    rows = doc["rows"]
    got = [(r["engine"], r["requested_mode"], tuple(r["levels"]), r["batch"], tuple(r["io"]))
           for r in rows]
    plain = ("float32", "float32", "NCHW")
    want = [("sam3neck", mode, levels, batch, plain)
            for mode in ("default", "strict")
            for levels, batch in (((0, 1, 2, 3), 1), ((0, 1, 2), 1), ((0, 1, 2, 3), 4))]
    # the other element types and layouts, right after the float32 NCHW row they are compared with
    want[1:1] = [("sam3neck", "default", (0, 1, 2, 3), 1, io) for io in bench_harness.IO_CASES]
    assert got == want
    assert len(bench_harness.IO_CASES) >= 4
    assert {io[2] for io in bench_harness.IO_CASES} == {"NCHW", "NHWC", "sequence"}
    assert {"float16", "bfloat16"} <= {io[0] for io in bench_harness.IO_CASES}
    assert {"float16", "bfloat16"} <= {io[1] for io in bench_harness.IO_CASES}
    assert "x vs f32 NCHW" in p.stdout and "f32>f16 seq" in p.stdout and "compile ms" in p.stdout
    for r in rows:
        assert r["mode"] == r["requested_mode"]
        assert len(r["times_ms"]) == 4  # 2 runs in each of 2 rounds
        assert 0 < r["min_ms"] <= r["median_ms"] < 60_000
        assert r["ms_per_image"] == pytest.approx(r["median_ms"] / r["batch"])
        flops = bench.neck_flops(r["levels"], 1024, 256, 16, 16, r["batch"])
        assert r["gflops_per_s"] == pytest.approx(flops / 1e9 / (r["median_ms"] / 1e3))
        assert 0.1 < r["gflops_per_s"] < 1e5
        assert 10 < r["peak_rss_mb"] < 64_000
        assert r["workspace_bytes"] > 0
        assert 0 < r["compile_ms"] < 60_000
        assert r["ratios"] == {}  # no peers
        if tuple(r["io"]) == plain:
            assert "x_vs_f32_nchw" not in r
        else:
            base = rows[0]
            assert r["x_vs_f32_nchw"] == pytest.approx(base["median_ms"] / r["median_ms"])
        if r["levels"] == [0, 1, 2, 3] and r["batch"] == 1:
            assert len(r["errors"]) == 4
            assert 0 <= r["max_error"] <= reference.tolerance(r["mode"], r["io"][1])
        else:
            assert r["max_error"] is None
    assert doc["skipped"] == []


def _tiny_weights():
    return checkpoint.synthetic_neck(16, 8, seed=3, group=None)


@pytest.mark.parametrize("levels", [(0, 1, 2, 3), (0, 1, 2)])
def test_onnx_graph_matches_reference_under_onnxruntime(levels):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    w = _tiny_weights()
    h, wd = 6, 5
    model = bench.onnx_model(w, batch=2, height=h, width=wd, levels=levels)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so,
                                providers=["CPUExecutionProvider"])
    x = bench.make_input(7, 2, 16, h, wd)
    outs = sess.run(None, {"x": x})
    assert [o.name for o in sess.get_outputs()] == [f"level{i}" for i in levels]
    ref = reference.forward(w, x, levels=levels)
    for i, got, (feat, _) in zip(levels, outs, ref):
        assert got.shape == feat.shape == reference.level_shape(i, 2, 8, h, wd)
        assert reference.normalised_error(got, feat) <= 1e-5, f"level {i}"


def test_onnx_graph_matches_reference_under_openvino(tmp_path):
    pytest.importorskip("onnx")
    ov = pytest.importorskip("openvino")
    w = _tiny_weights()
    h, wd = 6, 5
    model = bench.onnx_model(w, batch=1, height=h, width=wd)
    path = tmp_path / "neck.onnx"
    path.write_bytes(model.SerializeToString())
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    x = bench.make_input(1, 1, 16, h, wd)
    res = compiled({0: x})
    ref = reference.forward(w, x)
    for i, (feat, _) in enumerate(ref):
        got = res[compiled.output(f"level{i}")]
        assert reference.normalised_error(got, feat) <= 1e-5, f"level {i}"


def test_torch_export_matches_reference():
    """The peers' model as PyTorch exports it computes the neck (ONNX Runtime runs it)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    w = checkpoint.synthetic_neck(16, 8, seed=4, group=None)
    x = np.random.default_rng(2).standard_normal((1, 16, 5, 6)).astype(np.float32)
    data, source = bench.peer_model_bytes(w, 1, 5, 6, (0, 1, 2, 3))
    assert source.startswith("torch.onnx.export")
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"x": x})
    for got, (feat, _) in zip(outs, reference.forward(w, x)):
        assert reference.normalised_error(got, feat) <= 1e-5
