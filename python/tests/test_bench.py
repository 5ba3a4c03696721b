"""The benchmark (`python -m sam3neck bench`): a smoke run of the command, the direct FLOP count,
and the peers' ONNX graph against the float64 reference (so a peer computes the same neck).

The smoke run needs the native library: like test_neck.py it FAILS when the library is missing,
unless SAM3NECK_ALLOW_MISSING_LIB=1. The ONNX checks run only where onnx and onnxruntime (and
openvino) are importable: the peers are optional extras, never test dependencies.
"""

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
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


@functools.lru_cache(maxsize=None)
def _kernel(precision):
    """The code the library runs a plan's widest products on here, for `precision`: what
    sam3_neck_kernel_name reports for a tiny synthetic neck, all four levels (the choice depends
    on the CPU, the precision and SAM3NECK_SGEMM_KERNEL, not on the shapes)."""
    from sam3neck import Neck

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.safetensors")
        checkpoint.write_synthetic_checkpoint(path, trunk_dim=16, d_model=8, extras=False)
        with Neck(path) as neck:
            return neck.compile(4, 4, precision=precision).kernel


def _amx_default():
    """Whether the default mode runs its Winograd products as bf16x3 on AMX here, as the library
    says (Neck.kernel: where the CPU has AMX-BF16, unless SAM3NECK_SGEMM_KERNEL names a kernel;
    docs/accuracy.md)."""
    return _kernel("default") == "amx_bf16x3"


def _executed_gflop(level, mode, h, w, c=1024, d=256):
    """The products one image of `level` executes, counted here from the algorithms docs/accuracy.md
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
        p = subprocess.run(
            [str(binary), "--cost", str(path), str(h), str(w), "1", "0xF", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
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


def _require_library():
    err = _library_error()
    if err is not None:
        if os.environ.get("SAM3NECK_ALLOW_MISSING_LIB") == "1":
            pytest.skip(f"libsam3neck not available ({err}); SAM3NECK_ALLOW_MISSING_LIB=1")
        pytest.fail(f"libsam3neck is not available: {err}", pytrace=False)


def _bench(tmp_path, *args, timeout=600):
    """Runs `python -m sam3neck bench ARGS --json tmp_path/bench.json`; returns (process, doc)."""
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.run(
        [sys.executable, "-m", "sam3neck", "bench", *args, "--json", str(out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p, json.loads(out.read_text())


def _sections(stdout):
    """The printed table's class sections: {"f32": [lines], "bf16": [lines]} (a section runs from
    its title to the next blank line), and the closing "Within each class" lines."""
    sections, current, summary = {}, None, []
    for line in stdout.splitlines():
        if line.startswith(("f32 class:", "bf16 class:")):
            current = line.split()[0]
            sections[current] = []
        elif current is not None and not line.strip():
            current = None
        elif current is not None:
            sections[current].append(line)
        elif line.startswith("  ") and " class, levels " in line or line.startswith("  ours, "):
            summary.append(line.strip())
    return sections, summary


def _check_errors(r):
    """A row's errors: one per level, over every image of its batch, max_error the worst."""
    assert len(r["errors"]) == len(r["levels"]), r
    assert r["error_images"] == r["batch"]
    assert r["max_error"] == max(r["errors"])
    assert all(0 < e < 1 for e in r["errors"]), r["errors"]


def test_bench_quick_smoke(tmp_path):
    _require_library()
    p, doc = _bench(tmp_path, "--quick", "--no-peers", "--rounds", "2", timeout=600)
    assert "median ms" in p.stdout and "GFLOP/s" in p.stdout and "eff" in p.stdout
    assert doc["schema"] == bench.SCHEMA == "sam3neck-bench/2"
    assert doc["grid"] == [16, 16] and doc["runs"] == 2 and doc["warmup"] == 1 and doc["rounds"] == 2
    assert doc["modes"] == ["default", "strict", "fast"] and doc["peers"] == []
    assert "2 rounds (every row once per round, in turn)" in p.stdout
    assert p.stderr.count("(round 2 of 2)") == len(doc["rows"])
    assert doc["threads"] == os.cpu_count()
    assert (doc["trunk_dim"], doc["d_model"]) == (1024, 256)
    rows = doc["rows"]
    got = [(r["engine"], r["requested_mode"], tuple(r["levels"]), r["batch"], tuple(r["io"])) for r in rows]
    plain = ("float32", "float32", "NCHW")
    cases = (((0, 1, 2, 3), 1), ((0, 1, 2), 1), ((0, 1, 2, 3), 4))
    # fast: the same cases as default and strict
    want = [
        ("sam3neck", mode, levels, batch, plain) for mode in ("default", "strict", "fast") for levels, batch in cases
    ]
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
        assert r["class"] == ("bf16" if r["mode"] == "fast" else "f32")
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
        # every row has its error, level subsets and batch 4 included, within its mode's bound
        _check_errors(r)
        assert r["max_error"] <= reference.tolerance(r["mode"], r["io"][1]), r
    assert doc["skipped"] == []
    # the fast mode computes in bfloat16 where the CPU can: its error is bfloat16's, not float32's
    if _kernel("fast") in ("amx_bf16", "avx512_bf16"):
        assert min(r["max_error"] for r in rows if r["mode"] == "fast") > 1e-4

    # the table: strict and default in the f32 class, fast in the bf16 class, in run order; each
    # row's error (the JSON's) printed next to its time
    sections, summary = _sections(p.stdout)
    assert set(sections) == {"f32", "bf16"}
    for cls, sec in sections.items():
        assert re.search(r"median ms\s+min ms\s+max err\s+ms/image", sec[0]), sec[0]
        mine = [r for r in rows if r["class"] == cls]
        assert _column(sec, "mode") == [r["mode"] for r in mine]
        assert _column(sec, "median ms") == [f"{r['median_ms']:.1f}" for r in mine]
        assert _column(sec, "max err") == [f"{r['max_error']:.1e}" for r in mine]
    assert set(_column(sections["f32"], "mode")) == {"default", "strict"}
    assert _column(sections["bf16"], "mode") == ["fast"] * 3
    # the closing lines: fast against our own default, as in the JSON
    x = next(
        e["x"]
        for e in doc["summary"]
        if e["mode"] == "fast" and e["vs"] == "sam3neck default" and e["levels"] == [0, 1, 2, 3]
    )
    fast, default = (
        next(
            r for r in rows if r["mode"] == m and r["batch"] == 1 and len(r["levels"]) == 4 and tuple(r["io"]) == plain
        )
        for m in ("fast", "default")
    )
    assert x == pytest.approx(default["median_ms"] / fast["median_ms"])
    assert f"ours, levels 0-3, batch 1: fast vs default {x:.2f}x" in summary


def _native_bf16():
    """Whether this CPU has native bfloat16 products, as OpenVINO decides its default precision
    (its rule, so read from /proc/cpuinfo; the library's own choice is _kernel("fast"))."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_bench_classes_with_peers(tmp_path):
    """The peers in both classes: strict against OpenVINO pinned to f32, fast against OpenVINO's
    default configuration (its inference precision read back and shown) and PyTorch bf16 autocast
    (a stated skip where torch is missing); ratios within the class only; every row's error."""
    pytest.importorskip("onnx")
    pytest.importorskip("openvino")
    _require_library()
    p, doc = _bench(
        tmp_path,
        "--quick",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--modes",
        "strict,fast",
        "--peers",
        "openvino,openvino-default,pytorch-bf16",
        timeout=900,
    )
    rows = doc["rows"]
    assert doc["modes"] == ["strict", "fast"]
    assert doc["peers"] == ["openvino", "openvino-default", "pytorch-bf16"]
    ours = {(r["requested_mode"], tuple(r["levels"]), r["batch"]): r for r in rows if r["engine"] == "sam3neck"}
    peers = {(r["peer"], tuple(r["levels"])): r for r in rows if r["engine"] != "sam3neck"}
    assert len(ours) == 6
    assert all(r["class"] == bench_harness.MODE_CLASS[m] for (m, _, _), r in ours.items())
    torch_ok = importlib.util.find_spec("torch") is not None
    want_peers = {"openvino", "openvino-default"} | ({"pytorch-bf16"} if torch_ok else set())
    assert {pid for pid, _ in peers} == want_peers
    for (pid, levels), r in peers.items():
        assert r["engine"] == bench_harness.PEER_CONFIGS[pid][0]
        assert (r["config"], r["class"]) == bench_harness.PEER_CONFIGS[pid][1:]
        assert r["batch"] == 1 and levels in ((0, 1, 2, 3), (0, 1, 2))
        _check_errors(r)
    # OpenVINO pinned: f32, float32's error; OpenVINO default: the precision it reported
    for levels in ((0, 1, 2, 3), (0, 1, 2)):
        pinned, dflt = peers[("openvino", levels)], peers[("openvino-default", levels)]
        assert pinned["mode"] == "f32" and pinned["max_error"] <= 1e-4
        chosen = dflt["properties"]["INFERENCE_PRECISION_HINT"]
        assert dflt["mode"] == bench_harness._ov_type_name(chosen) and dflt["mode"] not in ("", "?")
        if _native_bf16():
            assert dflt["mode"] == "bf16" and 1e-4 < dflt["max_error"] < 5e-2
        assert dflt["properties"]["PERFORMANCE_HINT"] == pinned["properties"]["PERFORMANCE_HINT"]
        assert dflt["properties"]["INFERENCE_NUM_THREADS"] == pinned["properties"]["INFERENCE_NUM_THREADS"]
    # ratios within the class only: strict against OpenVINO f32, fast against the bf16 peers
    for (mode, levels, batch), r in ours.items():
        _check_errors(r)
        assert r["max_error"] <= reference.tolerance(mode)
        if batch != 1:
            assert r["ratios"] == {}
            continue
        cls_peers = [pid for pid in want_peers if bench_harness.PEER_CONFIGS[pid][2] == r["class"]]
        assert sorted(r["ratios"]) == sorted(cls_peers), (mode, r["ratios"])
        for pid, x in r["ratios"].items():
            assert x == pytest.approx(peers[(pid, levels)]["median_ms"] / r["median_ms"])

    sections, summary = _sections(p.stdout)
    f32_lines, bf16_lines = sections["f32"], sections["bf16"]
    assert "x vs OpenVINO f32" in f32_lines[0] and "OpenVINO default" not in f32_lines[0]
    assert "x vs OpenVINO default" in bf16_lines[0] and "OpenVINO f32" not in bf16_lines[0]
    assert [line.split()[:2] for line in f32_lines[2:]] == ([["sam3neck", "strict"]] * 3 + [["OpenVINO", "f32"]] * 2)
    ov_mode = peers[("openvino-default", (0, 1, 2, 3))]["mode"]
    assert [line.split()[:2] for line in bf16_lines[2:] if not line.startswith("PyTorch")] == (
        [["sam3neck", "fast"]] * 3 + [["OpenVINO", "default"]] * 2
    )
    assert all(f"default ({ov_mode})" in line for line in bf16_lines[2:] if line.startswith("OpenVINO"))
    # every row prints its error (the JSON's) next to its time, the column after "min ms"
    for cls, sec in sections.items():
        assert _column(sec, "max err") == [f"{r['max_error']:.1e}" for r in rows if r["class"] == cls]
    x = peers[("openvino-default", (0, 1, 2, 3))]["median_ms"] / ours[("fast", (0, 1, 2, 3), 1)]["median_ms"]
    assert any(
        line.startswith(f"bf16 class, levels 0-3, batch 1: fast vs OpenVINO default ({ov_mode}) {x:.2f}x")
        for line in summary
    ), summary
    x = peers[("openvino", (0, 1, 2))]["median_ms"] / ours[("strict", (0, 1, 2), 1)]["median_ms"]
    assert any(
        line.startswith(f"f32 class, levels 0-2, batch 1: strict vs OpenVINO f32 {x:.2f}x") for line in summary
    ), summary
    assert "INFERENCE_PRECISION_HINT" in p.stdout
    assert f"read back from the compiled model: {ov_mode}" in p.stdout
    if not torch_ok:
        skip = {"engine": "pytorch", "peer": "pytorch-bf16", "reason": "torch not importable"}
        assert skip in doc["skipped"]
        assert (
            'PyTorch eager under torch.autocast("cpu", dtype=torch.bfloat16): skipped, torch not importable'
        ) in p.stdout
        assert any("PyTorch bf16: skipped (torch not importable)" in line for line in summary)


def _cells(line, rule):
    """The cells of a table line, cut at the column boundaries of its dashed rule."""
    cells, pos = [], 0
    for dashes in rule.split("  "):
        cells.append(line[pos : pos + len(dashes)].strip())
        pos += len(dashes) + 2
    return cells


def _column(section, name):
    """The cells of column `name` in a printed section (header, dashed rule, rows); asserts that
    "max err" comes right after "min ms" wherever it is asked for."""
    header = _cells(section[0], section[1])
    k = header.index(name)
    if name == "max err":
        assert header[k - 1] == "min ms", header
    return [_cells(line, section[1])[k] for line in section[2:]]


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
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
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
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
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


# ------------------------------------------------------------------------------------------------
# The table's classes and the error measure, on made-up rows (no engine runs)
# ------------------------------------------------------------------------------------------------


def _fake_row(engine, mode, levels, batch, median, err, peer=None, config=None, actual=None):
    row = {
        "engine": engine,
        "mode": actual or mode,
        "requested_mode": mode,
        "levels": list(levels),
        "batch": batch,
        "median_ms": median,
        "min_ms": median * 0.9,
        "times_ms": [median],
        "ms_per_image": median / batch,
        "gflop": 1.0,
        "gflops_per_s": 1e3 / median,
        "peak_rss_mb": 100.0,
        "ru_maxrss_mb": 100.0,
        "threads": 2,
        "max_error": err,
        "errors": [err] * len(levels),
        "ratios": {},
    }
    if engine == "sam3neck":
        row["io"] = ("float32", "float32", "NCHW")
        row["class"] = bench_harness.MODE_CLASS[mode]
    else:
        row.update(peer=peer, config=config, **{"class": bench_harness.PEER_CONFIGS[peer][2]})
    return row


def _fake_doc():
    all4, img = (0, 1, 2, 3), (0, 1, 2)
    rows = []
    for mode, t in (("default", 400.0), ("strict", 600.0), ("fast", 250.0)):
        rows += [
            _fake_row("sam3neck", mode, all4, 1, t, 1e-5),
            _fake_row("sam3neck", mode, img, 1, t - 10, 1e-5),
            _fake_row("sam3neck", mode, all4, 4, 4 * t, 1e-5),
        ]
    for pid, t, actual in (
        ("onnxruntime", 1200.0, "f32"),
        ("openvino", 1000.0, "f32"),
        ("pytorch", 1500.0, "f32"),
        ("openvino-default", 500.0, "bf16"),
        ("pytorch-bf16", 800.0, "bf16"),
    ):
        engine, config, _ = bench_harness.PEER_CONFIGS[pid]
        for levels in (all4, img):
            rows.append(
                _fake_row(
                    engine,
                    config,
                    levels,
                    1,
                    t,
                    4.8e-3 if actual == "bf16" else 2e-6,
                    peer=pid,
                    config=config,
                    actual=actual,
                )
            )
    return {
        "machine": {"cpu": "test CPU", "cores": 2},
        "versions": {"sam3neck": "0", "numpy": "0", "python": "3"},
        "date": "today",
        "threads": 2,
        "grid": [72, 72],
        "trunk_dim": 1024,
        "d_model": 256,
        "runs": 7,
        "warmup": 2,
        "rounds": 1,
        "weights": "w",
        "gflop_per_image": {"0": 1.0, "1": 1.0, "2": 1.0, "3": 1.0},
        "rows": rows,
        "skipped": [],
    }


def test_ratios_and_table_keep_each_mode_in_its_class():
    doc = _fake_doc()
    bench_harness._ratios(doc)
    by = {(r.get("peer") or r["requested_mode"], len(r["levels"]), r["batch"]): r for r in doc["rows"]}
    # strict and default against the f32 peers only, fast against the bf16 peers only
    assert by[("default", 4, 1)]["ratios"] == pytest.approx({"onnxruntime": 3.0, "openvino": 2.5, "pytorch": 3.75})
    assert by[("strict", 4, 1)]["ratios"] == pytest.approx({"onnxruntime": 2.0, "openvino": 1000 / 600, "pytorch": 2.5})
    assert by[("fast", 4, 1)]["ratios"] == pytest.approx({"openvino-default": 2.0, "pytorch-bf16": 3.2})
    assert by[("fast", 3, 1)]["ratios"] == pytest.approx({"openvino-default": 500 / 240, "pytorch-bf16": 800 / 240})
    assert by[("fast", 4, 4)]["ratios"] == {} and by[("openvino-default", 4, 1)]["ratios"] == {}
    text = bench_harness.format_report(doc)
    sections, summary = _sections(text)
    f32, bf16 = sections["f32"], sections["bf16"]
    assert _column(f32, "engine") == (
        ["sam3neck"] * 6 + ["ONNX Runtime"] * 2 + ["OpenVINO"] * 2 + ["PyTorch eager"] * 2
    )
    assert _column(bf16, "engine") == ["sam3neck"] * 3 + ["OpenVINO"] * 2 + ["PyTorch eager"] * 2
    assert _column(bf16, "mode") == ["fast"] * 3 + ["default (bf16)"] * 2 + ["autocast-bf16 (bf16)"] * 2
    assert _column(bf16, "x vs OpenVINO default") == ["2.00", "2.08", ""] + [""] * 4
    assert _column(bf16, "x vs PyTorch bf16") == ["3.20", "3.33", ""] + [""] * 4
    assert _column(f32, "x vs OpenVINO f32")[:3] == ["2.50", "2.56", ""]
    assert "x vs OpenVINO default" not in f32[0] and "x vs ORT" not in bf16[0]
    assert _column(bf16, "max err") == ["1.0e-05"] * 3 + ["4.8e-03"] * 4
    assert (
        "bf16 class, levels 0-3, batch 1: fast vs OpenVINO default (bf16) 2.00x, vs PyTorch bf16 (bf16) 3.20x"
    ) in summary
    assert (
        "f32 class, levels 0-3, batch 1: default vs ORT 3.00x, vs OpenVINO f32 2.50x, vs PyTorch "
        "f32 3.75x; strict vs ORT 2.00x, vs OpenVINO f32 1.67x, vs PyTorch f32 2.50x"
    ) in summary
    assert "ours, levels 0-3, batch 1: fast vs default 1.60x" in summary
    # a pinned OpenVINO that computed in bf16 is flagged
    next(r for r in doc["rows"] if r.get("peer") == "openvino")["mode"] = "bf16"
    text = bench_harness.format_report(doc)
    assert "WARNING: OpenVINO reports inference precision bf16 (asked f32)." in text


def test_errors_cover_every_image_and_layout(tmp_path):
    """_errors: per level, max|out - ref| / max|ref| over every image of the batch, in the row's
    output layout, on make_input(seed, batch) (image k of a batch is image k of a larger one)."""
    w = _tiny_weights()
    c, h, wd, seed = 16, 5, 4, 9
    assert np.array_equal(bench.make_input(seed, 4, c, h, wd)[:1], bench.make_input(seed, 1, c, h, wd))
    x = bench.make_input(seed, 3, c, h, wd)
    ref = [f for f, _ in reference.forward(w, x)]
    pending, want = [], {}
    for n, (layout, batch, bad_image) in enumerate((("NCHW", 3, 2), ("sequence", 3, 1), ("NHWC", 1, 0))):
        saved = []
        errs = []
        for i in (0, 1, 2, 3):
            out = ref[i][:batch].astype(np.float32).copy()
            scale = np.abs(ref[i][:batch]).max()
            out[bad_image, 1, 0, 0] += (i + 1) * 1e-3 * scale  # in one image only, the last for n = 0
            errs.append((i + 1) * 1e-3)
            path = tmp_path / f"r{n}-level{i}.npy"
            np.save(path, reference.to_layout(out, layout))
            saved.append(str(path))
        row = {
            "engine": "sam3neck",
            "requested_mode": "default",
            "levels": [0, 1, 2, 3],
            "batch": batch,
            "io": ("float32", "float32", layout),
        }
        pending.append((row, saved))
        want[n] = errs
    bench_harness._errors(pending, w, seed, c, h, wd, log=lambda msg: None)
    for n, (row, saved) in enumerate(pending):
        assert row["errors"] == pytest.approx(want[n], rel=1e-3), (n, row["errors"])
        assert row["max_error"] == max(row["errors"]) and row["error_images"] == row["batch"]
        assert not any(os.path.exists(p) for p in saved)  # the outputs are removed


@pytest.mark.parametrize(
    "option,value", [("--modes", "fast,turbo"), ("--peers", "openvino,tensorrt"), ("--modes", ",")]
)
def test_bench_refuses_unknown_modes_and_peers(option, value):
    with pytest.raises(SystemExit, match=f"{option} takes a comma-separated list of"):
        bench_harness.main(["--quick", option, value])


def test_pytorch_workers_f32_and_bf16_autocast(tmp_path):
    """The PyTorch peer's two configurations on a small neck: f32 at float32's error, autocast at
    bfloat16's, reported as such."""
    pytest.importorskip("torch")
    path = tmp_path / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(str(path), 32, 16, seed=2, extras=False)
    w = bench_harness.loaded_weights(str(path))
    h, wd = 6, 5
    ref = [f for f, _ in reference.forward(w, bench.make_input(0, 1, 32, h, wd))]
    for mode, actual, lo, hi in (("f32", "f32", 0.0, 1e-5), ("autocast-bf16", "bf16", 1e-4, 5e-2)):
        spec = {
            "weights": str(path),
            "levels": [0, 1, 2, 3],
            "batch": 1,
            "seed": 0,
            "trunk_dim": 32,
            "height": h,
            "width": wd,
            "threads": 1,
            "runs": 1,
            "warmup": 0,
            "mode": mode,
            "save": str(tmp_path / mode),
        }
        res = bench_harness._work_pytorch(spec)
        assert res["mode_actual"] == actual and len(res["saved"]) == 4
        for i, p in enumerate(res["saved"]):
            err = reference.normalised_error(np.load(p), ref[i])
            assert lo <= err <= hi, (mode, i, err)
