"""The benchmark's rows (one subprocess each), its table and its command line. See sam3neck.bench."""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import checkpoint, dtypes, reference
from ..neck import InvalidArgumentError, Neck
from .models import ALL_LEVELS, _version, level_flops, make_input, neck_flops, peer_model_bytes, torch_neck

IMAGE_LEVELS = (0, 1, 2)  # what SAM 3's image model keeps (it drops the 0.5 level)
OUR_CASES = ((ALL_LEVELS, 1), (IMAGE_LEVELS, 1), (ALL_LEVELS, 4))
PEER_CASES = ((ALL_LEVELS, 1), (IMAGE_LEVELS, 1))
OUR_MODES = ("default", "strict")
#: The plain I/O: float32 in and out, NCHW outputs (what every row above runs).
BASE_IO = ("float32", "float32", "NCHW")
#: Rows with other element types / output layouts (input dtype, output dtype, output layout), run
#: in the default mode on levels 0-3, batch 1, right after that float32 NCHW row; --all-io runs
#: all 26 combinations instead.
IO_CASES = (("float32", "float16", "sequence"), ("float16", "float16", "NCHW"),
            ("bfloat16", "bfloat16", "NHWC"), ("bfloat16", "float32", "sequence"),
            ("float32", "bfloat16", "NHWC"))
ALL_IO = tuple((i, o, lay) for i in dtypes.DTYPES for o in dtypes.DTYPES
               for lay in ("NCHW", "NHWC", "sequence") if (i, o, lay) != BASE_IO)
_SHORT_DTYPE = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
_SHORT_LAYOUT = {"NCHW": "NCHW", "NHWC": "NHWC", "sequence": "seq"}
PEERS = ("onnxruntime", "openvino", "pytorch")
LABELS = {"sam3neck": "sam3neck", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO",
          "pytorch": "PyTorch eager"}
SHORT = {"onnxruntime": "ORT", "openvino": "OpenVINO", "pytorch": "PyTorch"}
PEER_MODULES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "pytorch": ("torch",)}
RESULT_MARK = "SAM3NECK-BENCH-RESULT "
SCHEMA = "sam3neck-bench/1"
QUICK = {"height": 16, "width": 16, "runs": 2, "warmup": 1, "rounds": 1}
DEFAULTS = {"height": 72, "width": 72, "runs": 7, "warmup": 2, "rounds": 1}
WORKER_TIMEOUT_S = 3600


# ------------------------------------------------------------------------------------------------
# Workers (one subprocess per row)
# ------------------------------------------------------------------------------------------------

def loaded_weights(path) -> Dict[str, np.ndarray]:
    """The neck's weights of the checkpoint at `path` as the library loads them (canonical names,
    float32): every engine of the benchmark computes with exactly these."""
    with Neck(path) as neck:
        return neck.weights()


def _timed(fn, warmup: int, runs: int) -> List[float]:
    for _ in range(warmup):
        fn()
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    finally:
        gc.enable()
    return times


def _openblas_info() -> Optional[dict]:
    """Core and build of the OpenBLAS this process has loaded (through libsam3neck), if any."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f
                            if "libopenblas" in line and line.split()[-1].startswith("/")})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            info = {"path": path}
            for name in ("openblas_get_corename", "openblas_get_config"):
                fn = getattr(lib, name)
                fn.restype = ctypes.c_char_p
                info[name[len("openblas_get_"):]] = (fn() or b"").decode("utf-8", "replace").strip()
            return info
        except (OSError, AttributeError):
            continue
    return None


def _io_label(io: Sequence[str]) -> str:
    """("float32", "float16", "sequence") -> "f32>f16 seq" (input > output type, output layout)."""
    return f"{_SHORT_DTYPE[io[0]]}>{_SHORT_DTYPE[io[1]]} {_SHORT_LAYOUT[io[2]]}"


def _save(outputs: Sequence[np.ndarray], levels: Sequence[int], save: Optional[str]) -> List[str]:
    """Saves the outputs widened to float32 (in their layout) for the error check."""
    if not save:
        return []
    paths = []
    for i, a in zip(levels, outputs):
        p = f"{save}-level{i}.npy"
        np.save(p, np.ascontiguousarray(dtypes.to_float32(a)))
        paths.append(p)
    return paths


def _work_sam3neck(spec: dict) -> dict:
    from .. import _lib

    neck = None
    for attempt in range(8):  # the library may be being rebuilt right now: retry briefly
        try:
            neck = Neck(spec["weights"])
            break
        except OSError as e:
            if attempt == 7 or isinstance(e, FileNotFoundError) and "checkpoint" in str(e):
                raise
            time.sleep(5)
    levels, batch = spec["levels"], spec["batch"]
    in_dt, out_dt, out_lay = spec.get("io", BASE_IO)
    lib_path = Path(str(_lib.loaded_path()))
    if "bfloat16" in (in_dt, out_dt):
        dtypes.bfloat16_dtype()  # ml_dtypes' import (~0.75 s on this machine kind) is not compile time
    with neck:
        t0 = time.perf_counter()
        neck.compile(height=spec["height"], width=spec["width"], batch=batch, layout="NCHW",
                     levels=levels, threads=spec["threads"], precision=spec["mode"],
                     input_dtype=in_dt, output_dtype=out_dt, output_layout=out_lay)
        compile_s = time.perf_counter() - t0
        x = dtypes.to_dtype(make_input(spec["seed"], batch, neck.trunk_dim, spec["height"],
                                       spec["width"]), in_dt)
        outs = [lv.features for lv in neck.run(x)]

        def run():
            neck.run(x, out=outs)

        times = _timed(run, spec["warmup"], spec["runs"])
        st = lib_path.stat()
        return {
            "times_s": times,
            "saved": _save(outs, neck.levels, spec.get("save")),
            "workspace_bytes": neck.workspace_bytes,
            "compile_ms": compile_s * 1e3,
            "mode_actual": neck.compile_params["precision"],
            "threads_actual": neck.compile_params["threads"],
            "library": {"version": _lib.version_string(), "path": str(lib_path),
                        "mtime": st.st_mtime, "size": st.st_size},
            "openblas": _openblas_info(),
        }


def _work_onnxruntime(spec: dict) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(spec["model"], sess_options=so, providers=["CPUExecutionProvider"])
    levels, batch = spec["levels"], spec["batch"]
    x = make_input(spec["seed"], batch, spec["trunk_dim"], spec["height"], spec["width"])
    names = [o.name for o in sess.get_outputs()]
    outs = [np.empty(reference.level_shape(i, batch, spec["d_model"], spec["height"], spec["width"]),
                     dtype=np.float32) for i in levels]
    io = sess.io_binding()
    io.bind_cpu_input("x", x)
    for name, a in zip(names, outs):
        io.bind_output(name, "cpu", 0, np.float32, list(a.shape), a.ctypes.data)

    def run():
        sess.run_with_iobinding(io)

    times = _timed(run, spec["warmup"], spec["runs"])
    return {"times_s": times, "saved": _save(outs, levels, spec.get("save")), "mode_actual": "f32",
            "threads_actual": spec["threads"], "providers": sess.get_providers()}


def _work_openvino(spec: dict) -> dict:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    model = core.read_model(spec["model"])
    config = {
        props.inference_num_threads: spec["threads"],
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        hints.inference_precision: ov.Type.f32,
    }
    compiled = core.compile_model(model, "CPU", config)
    got = {}
    for key in (hints.inference_precision, props.inference_num_threads, props.num_streams,
                hints.execution_mode, hints.performance_mode):
        try:
            got[str(key)] = str(compiled.get_property(key))
        except Exception as e:  # a property an older release does not report
            got[str(key)] = f"? ({type(e).__name__})"
    levels, batch = spec["levels"], spec["batch"]
    x = make_input(spec["seed"], batch, spec["trunk_dim"], spec["height"], spec["width"])
    req = compiled.create_infer_request()

    def run():
        req.infer({0: x}, share_inputs=True, share_outputs=True)

    times = _timed(run, spec["warmup"], spec["runs"])
    by_name = {}
    for k, port in enumerate(compiled.outputs):
        for name in port.get_names():
            by_name[name] = k
    outs = [np.array(req.get_output_tensor(by_name[f"level{i}"]).data, copy=True) for i in levels]
    precision = got.get(str(hints.inference_precision), "?")
    return {"times_s": times, "saved": _save(outs, levels, spec.get("save")),
            "mode_actual": _ov_type_name(precision), "threads_actual": spec["threads"],
            "properties": got}


def _ov_type_name(text: str) -> str:
    t = text.strip()
    m = re.search(r"'?([a-z]+[0-9]+)'?>?$", t)  # "<Type: 'float32'>" / "f32"
    name = m.group(1) if m else t
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(name, name)


def _work_pytorch(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    levels, batch = spec["levels"], spec["batch"]
    module = torch_neck(loaded_weights(spec["weights"]), levels)
    x = torch.from_numpy(make_input(spec["seed"], batch, spec["trunk_dim"], spec["height"],
                                    spec["width"]))
    last = []

    def run():
        with torch.inference_mode():
            last[:] = module(x)

    times = _timed(run, spec["warmup"], spec["runs"])
    outs = [t.numpy() for t in last]
    return {"times_s": times, "saved": _save(outs, levels, spec.get("save")), "mode_actual": "f32",
            "threads_actual": torch.get_num_threads(), "torch": torch.__version__}


WORKERS = {"sam3neck": _work_sam3neck, "onnxruntime": _work_onnxruntime,
           "openvino": _work_openvino, "pytorch": _work_pytorch}


def _vm_hwm_kib() -> Optional[int]:
    """This process's peak RSS (VmHWM of /proc/self/status, KiB), or None off Linux.

    Preferred to getrusage's ru_maxrss, which Linux carries over fork + exec: a worker started by
    a parent holding the float64 reference would report at least the parent's RSS at the fork.
    VmHWM belongs to the address space execve created, so it is the worker's own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _worker_main(spec_text: str) -> int:
    import resource

    spec = json.loads(spec_text)
    engine = spec["engine"]
    try:
        for mod in PEER_MODULES.get(engine, ()):
            try:
                importlib.import_module(mod)
            except Exception as e:  # ImportError, or a broken install
                result = {"ok": False, "skipped": True,
                          "reason": f"{mod} not importable ({type(e).__name__}: {e})"}
                print(RESULT_MARK + json.dumps(result), flush=True)
                return 0
        result = WORKERS[engine](spec)
        result["ok"] = True
    except Exception as e:
        import traceback

        traceback.print_exc()
        result = {"ok": False, "skipped": False, "reason": f"{type(e).__name__}: {e}"}
    result["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_kib"] = _vm_hwm_kib() or result["ru_maxrss_kib"]
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


def _run_worker(spec: dict, log) -> dict:
    """Runs one row in a fresh interpreter; returns the worker's result dict."""
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "sam3neck.bench", "--worker", json.dumps(spec)]
    last = None
    for attempt in range(3):
        try:
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"ok": False, "skipped": False,
                    "reason": f"worker timed out after {WORKER_TIMEOUT_S} s"}
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith(RESULT_MARK)]
        if lines:
            result = json.loads(lines[-1][len(RESULT_MARK):])
            if not result.get("ok") and p.stderr.strip():
                result["stderr_tail"] = p.stderr.strip()[-2000:]
            return result
        # No result: the process died (e.g. a signal while the library was being rebuilt).
        tail = (p.stderr.strip() or p.stdout.strip())[-2000:]
        last = {"ok": False, "skipped": False,
                "reason": f"worker exited with status {p.returncode} and no result",
                "stderr_tail": tail}
        log(f"  worker died (status {p.returncode}); retrying in 10 s")
        time.sleep(10)
    return last


# ------------------------------------------------------------------------------------------------
# Machine and versions
# ------------------------------------------------------------------------------------------------

def machine_info() -> dict:
    info = {"cpu": None, "cores": os.cpu_count(), "avx2": None, "avx512f": None}
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        fields = {}
        for line in text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields.setdefault(k.strip(), v.strip())
        info["cpu"] = fields.get("model name")
        info["cpu_family"] = fields.get("cpu family")
        info["cpu_model"] = fields.get("model")
        flags = set(fields.get("flags", "").split())
        info["avx2"] = "avx2" in flags
        info["avx512f"] = "avx512f" in flags
    except OSError:
        pass
    import platform

    info["platform"] = platform.platform()
    return info


def _dist_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def versions() -> dict:
    return {
        "sam3neck": _version(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "onnx": _dist_version("onnx"),
        "onnxruntime": _dist_version("onnxruntime"),
        "openvino": _dist_version("openvino"),
        "torch": _dist_version("torch"),
    }


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------

def _lv(levels: Sequence[int]) -> str:
    levels = list(levels)
    if levels == list(range(levels[0], levels[-1] + 1)) and len(levels) > 1:
        return f"{levels[0]}-{levels[-1]}"
    return ",".join(str(i) for i in levels)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def profile_binary() -> Path:
    return _repo_root() / ".build" / "release" / "sam3neck-profile"


def _resolve(args) -> argparse.Namespace:
    base = QUICK if args.quick else DEFAULTS
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads is None:
        args.threads = os.cpu_count() or 1
    for k in ("height", "width", "runs", "rounds", "threads"):
        if getattr(args, k) < 1:
            raise SystemExit(f"sam3neck bench: --{k} must be at least 1")
    if args.warmup < 0:
        raise SystemExit("sam3neck bench: --warmup must be at least 0")
    return args


def run_benchmark(args, log=None) -> dict:
    """Runs every row (one subprocess each, one after the other) and returns the JSON document."""
    if log is None:
        def log(msg):
            print(msg, file=sys.stderr, flush=True)
    args = _resolve(args)
    h, wd, threads = args.height, args.width, args.threads
    weights_path = str(args.weights or checkpoint.ensure_default_checkpoint())
    with Neck(weights_path) as neck:
        weights = neck.weights()
        c, d = neck.trunk_dim, neck.d_model
        try:  # the library says which grids every row (all four levels) can run on
            neck.compile(height=h, width=wd, levels=ALL_LEVELS, threads=1)
        except InvalidArgumentError as e:
            raise SystemExit(f"sam3neck bench: {e.message}") from None

    doc = {
        "schema": SCHEMA,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "threads": threads,
        "grid": [h, wd],
        "trunk_dim": c,
        "d_model": d,
        "runs": args.runs,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "seed": args.seed,
        "layout": "NCHW",
        "weights": weights_path,
        "gflop_per_image": {str(i): level_flops(i, c, d, h, wd) / 1e9 for i in ALL_LEVELS},
        "rows": [],
        "skipped": [],
    }
    tmp = tempfile.mkdtemp(prefix="sam3neck-bench-")
    try:
        specs = []
        common = {"height": h, "width": wd, "threads": threads, "runs": args.runs,
                  "warmup": args.warmup, "seed": args.seed, "weights": weights_path,
                  "trunk_dim": c, "d_model": d}
        io_cases = _io_cases(args)
        for mode in OUR_MODES:
            for levels, batch in OUR_CASES:
                specs.append(dict(common, engine="sam3neck", mode=mode, levels=list(levels),
                                  batch=batch, io=list(BASE_IO)))
                if mode == OUR_MODES[0] and (levels, batch) == OUR_CASES[0]:
                    for io in io_cases:  # next to the float32 NCHW row they are compared with
                        specs.append(dict(common, engine="sam3neck", mode=mode,
                                          levels=list(levels), batch=batch, io=list(io)))
        if not args.no_peers:
            specs += _peer_specs(args, weights, common, tmp, doc, log)

        pending = []  # (row, saved output files) of the batch-1, all-levels runs
        dropped = set()  # engines found not importable: their other rows are not tried
        merged = {}  # spec index -> its workers' results, runs of every round together
        rounds = args.rounds
        for rnd in range(rounds):
            # With rounds > 1 every row runs once per round, in the same order: a slow spell of a
            # shared machine then falls on several rows' runs instead of all of one row's.
            for k, spec in enumerate(specs):
                if spec["engine"] in dropped or (rnd > 0 and k not in merged):
                    continue
                save = rnd == 0 and spec["levels"] == list(ALL_LEVELS) and spec["batch"] == 1
                spec = dict(spec, save=os.path.join(tmp, f"{spec['engine']}-{spec['mode']}") if save else None)
                what = (f"{LABELS[spec['engine']]} {spec['mode']}, levels {_lv(spec['levels'])}, "
                        f"batch {spec['batch']}")
                if spec.get("io", list(BASE_IO)) != list(BASE_IO):
                    what += f", {_io_label(spec['io'])}"
                    spec["save"] = spec["save"] + "-" + "-".join(spec["io"]) if save else None
                step = rnd * len(specs) + k + 1
                log(f"[{step}/{rounds * len(specs)}] {what}"
                    + (f" (round {rnd + 1} of {rounds})" if rounds > 1 else "") + " ...")
                res = _run_worker(spec, log)
                if not res.get("ok"):
                    reason = res.get("reason", "failed")
                    if res.get("skipped"):
                        dropped.add(spec["engine"])
                    else:
                        reason = f"{what} failed: {reason}"
                        if res.get("stderr_tail"):
                            log(res["stderr_tail"])
                    log(f"  {reason}")
                    doc["skipped"].append({"engine": spec["engine"], "reason": reason})
                    merged.pop(k, None)  # a row that failed in any round is not reported
                    continue
                log(f"  median {statistics.median(res['times_s']) * 1e3:.1f} ms "
                    f"(min {min(res['times_s']) * 1e3:.1f}), peak RSS {res['peak_rss_kib'] / 1024:.0f} MB")
                if k not in merged:
                    res["compile_ms_rounds"] = [res["compile_ms"]] if "compile_ms" in res else []
                    merged[k] = (spec, res)
                    continue
                m = merged[k][1]
                m["times_s"] = m["times_s"] + res["times_s"]
                for key in ("peak_rss_kib", "ru_maxrss_kib"):
                    m[key] = max(m[key], res[key])
                if "compile_ms" in res:
                    m["compile_ms_rounds"].append(res["compile_ms"])
        for k in sorted(merged):
            spec, res = merged[k]
            if res.get("compile_ms_rounds"):
                res["compile_ms"] = statistics.median(res["compile_ms_rounds"])
            row = _row(spec, res, c, d)
            if spec.get("save") and res.get("saved"):
                pending.append((row, res["saved"]))
            doc["rows"].append(row)
        # Errors last, so that nothing runs in this process between two timed workers.
        if pending:
            refs = {}  # input dtype -> float64 NCHW features of levels 0-3 on the rounded input
            for row, saved in pending:
                in_dt, _, out_lay = row.get("io", BASE_IO)
                if in_dt not in refs:
                    log(f"float64 reference (batch 1, all levels, {in_dt} input) ...")
                    t = time.perf_counter()
                    x1 = make_input(args.seed, 1, c, h, wd)
                    refs[in_dt] = [feat for feat, _ in reference.forward(
                        weights, x1, levels=ALL_LEVELS, input_dtype=in_dt)]
                    del x1
                    log(f"  reference in {time.perf_counter() - t:.1f} s")
                errs = []
                for i, path in zip(row["levels"], saved):
                    errs.append(reference.normalised_error(
                        np.load(path), reference.to_layout(refs[in_dt][i], out_lay)))
                    os.unlink(path)
                row["errors"] = errs
                row["max_error"] = (float("nan") if any(math.isnan(e) for e in errs)
                                    else max(errs))
                io = "" if row.get("io", BASE_IO) == BASE_IO else f" {_io_label(row['io'])}"
                log(f"  {LABELS[row['engine']]} {row['mode']}{io}: max err {row['max_error']:.1e} "
                    f"(per level {', '.join(f'{e:.1e}' for e in errs)})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    _ratios(doc)
    _efficiency(doc)
    _library_summary(doc)
    return doc


def _peer_specs(args, weights, common, tmp, doc, log) -> List[dict]:
    specs = []
    wanted = []
    for engine in PEERS:
        missing = [m for m in PEER_MODULES[engine] if importlib.util.find_spec(m) is None]
        if missing:
            doc["skipped"].append({"engine": engine,
                                   "reason": f"{', '.join(missing)} not importable"})
        else:
            wanted.append(engine)
    models = {}
    if any(e in wanted for e in ("onnxruntime", "openvino")):
        try:
            for levels, batch in PEER_CASES:
                t = time.perf_counter()
                data, source = peer_model_bytes(weights, batch, common["height"], common["width"],
                                                levels)
                doc["onnx_model_source"] = source
                path = os.path.join(tmp, f"neck-levels{''.join(map(str, levels))}-b{batch}.onnx")
                with open(path, "wb") as f:
                    f.write(data)
                models[(tuple(levels), batch)] = path
                log(f"ONNX model, levels {_lv(levels)}, batch {batch}: {source}, "
                    f"{time.perf_counter() - t:.1f} s")
        except Exception as e:
            reason = (f"onnx not importable ({e})" if isinstance(e, ImportError)
                      else f"cannot build the ONNX model: {type(e).__name__}: {e}")
            for engine in ("onnxruntime", "openvino"):
                if engine in wanted:
                    wanted.remove(engine)
                    doc["skipped"].append({"engine": engine, "reason": reason})
    for engine in wanted:
        for levels, batch in PEER_CASES:
            spec = dict(common, engine=engine, mode="f32", levels=list(levels), batch=batch)
            if engine in ("onnxruntime", "openvino"):
                spec["model"] = models[(tuple(levels), batch)]
            specs.append(spec)
    return specs


def _row(spec: dict, res: dict, c: int, d: int) -> dict:
    times = res["times_s"]
    med = statistics.median(times)
    batch = spec["batch"]
    flops = neck_flops(spec["levels"], c, d, spec["height"], spec["width"], batch)
    row = {
        "engine": spec["engine"],
        "mode": res.get("mode_actual") or spec["mode"],
        "requested_mode": spec["mode"],
        "levels": spec["levels"],
        "batch": batch,
        "median_ms": med * 1e3,
        "min_ms": min(times) * 1e3,
        "times_ms": [t * 1e3 for t in times],
        "ms_per_image": med * 1e3 / batch,
        "gflop": flops / 1e9,
        "gflops_per_s": flops / med / 1e9,
        "peak_rss_mb": res["peak_rss_kib"] / 1024.0,
        "ru_maxrss_mb": res["ru_maxrss_kib"] / 1024.0,
        "threads": res.get("threads_actual", spec["threads"]),
        "max_error": None,
        "ratios": {},
    }
    if spec["engine"] == "sam3neck":
        row["io"] = tuple(spec.get("io", BASE_IO))
    for key in ("workspace_bytes", "compile_ms", "library", "openblas", "properties", "providers", "torch"):
        if key in res:
            row[key] = res[key]
    return row


def _io_cases(args) -> tuple:
    return ALL_IO if getattr(args, "all_io", False) else IO_CASES


def _ratios(doc: dict) -> None:
    """Adds to each sam3neck row peer median / row median, per peer with the same levels, batch."""
    peers = {(r["engine"], tuple(r["levels"]), r["batch"]): r for r in doc["rows"]
             if r["engine"] != "sam3neck"}
    base = {(r["mode"], tuple(r["levels"]), r["batch"]): r for r in doc["rows"]
            if r["engine"] == "sam3neck" and tuple(r.get("io", BASE_IO)) == BASE_IO}
    for r in doc["rows"]:
        if r["engine"] != "sam3neck":
            continue
        b = base.get((r["mode"], tuple(r["levels"]), r["batch"]))
        if tuple(r.get("io", BASE_IO)) != BASE_IO and b is not None:
            r["x_vs_f32_nchw"] = b["median_ms"] / r["median_ms"]
        if tuple(r.get("io", BASE_IO)) != BASE_IO:
            continue  # the peers run float32 NCHW: compared with that row only
        for engine in PEERS:
            p = peers.get((engine, tuple(r["levels"]), r["batch"]))
            if p is not None:
                r["ratios"][engine] = p["median_ms"] / r["median_ms"]


def _efficiency(doc: dict) -> None:
    """Adds to each sam3neck row its products' efficiency: the GFLOP one image executes (as the
    plan's algorithms run them, from `sam3neck-profile --cost`, which also measures the machine's
    product peak with the plan's own kernels on the same threads) / seconds per image / peak.
    Needs the profile tool of a checkout (`.build/release`); without it the column stays empty."""
    binary = profile_binary()
    if not binary.is_file() or not any(r["engine"] == "sam3neck" for r in doc["rows"]):
        doc["efficiency_note"] = f"eff: {binary} not built (swift build -c release -Xswiftc -static-stdlib)"
        return
    h, w = doc["grid"]
    cmd = [str(binary), "--cost", doc["weights"], str(h), str(w), "1", "0xF", str(doc["threads"])]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=WORKER_TIMEOUT_S)
        cost = json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        doc["efficiency_note"] = f"eff: {' '.join(cmd)} failed: {e}"
        return
    doc["product_peak"] = {k: cost[k] for k in ("peak_gflops", "threads", "products")}
    for r in doc["rows"]:
        if r["engine"] != "sam3neck" or r["mode"] not in cost["executed_gflop_per_image"]:
            continue
        per_level = cost["executed_gflop_per_image"][r["mode"]]
        executed = sum(per_level[str(level)] for level in r["levels"])
        r["executed_gflop_per_image"] = executed
        r["efficiency"] = executed / (r["ms_per_image"] * 1e-3) / cost["peak_gflops"]


def _library_summary(doc: dict) -> None:
    libs = [r["library"] for r in doc["rows"] if r.get("library")]
    if libs:
        doc["library"] = {"version": libs[0]["version"], "path": libs[0]["path"]}
        builds = {(lib["mtime"], lib["size"]) for lib in libs}
        doc["library"]["builds_seen"] = len(builds)
    blas = next((r["openblas"] for r in doc["rows"] if r.get("openblas")), None)
    if blas:
        doc["openblas"] = blas


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------

def _fmt(v, spec: str, empty: str = "-") -> str:
    if v is None:
        return empty
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return format(v, spec)


def format_report(doc: dict) -> str:
    m, v = doc["machine"], doc["versions"]
    lines = []
    lines.append(f"sam3neck benchmark  {doc['date']}")
    cpu = m.get("cpu") or "unknown CPU"
    if m.get("cpu_family"):
        cpu += f" (family {m['cpu_family']}, model {m.get('cpu_model')})"
    yn = {True: "yes", False: "no", None: "?"}
    cores = f"{m.get('cores')} cores"
    if m.get("usable_cores") not in (None, m.get("cores")):
        cores += f" ({m['usable_cores']} usable)"
    mach = f"machine: {cpu}, {cores}, avx2 {yn[m.get('avx2')]}, avx512f {yn[m.get('avx512f')]}"
    blas = doc.get("openblas")
    if blas:
        mach += f"; {blas.get('config') or 'OpenBLAS'} (core {blas.get('corename') or '?'})"
    lines.append(mach)
    lib = doc.get("library")
    libtext = f" (library {lib['version']})" if lib else ""
    vers = [f"sam3neck {v['sam3neck']}{libtext}", f"numpy {v['numpy']}"]
    for name in ("onnxruntime", "openvino", "onnx", "torch"):
        vers.append(f"{name} {v.get(name) or 'not installed'}")
    lines.append("versions: " + ", ".join(vers) + f", python {v['python']}")
    h, w = doc["grid"]
    g = doc["gflop_per_image"]
    lines.append(
        f"threads {doc['threads']}, grid {h}x{w} (C={doc['trunk_dim']}, d={doc['d_model']}), "
        + (f"median of {doc['runs']} runs after {doc['warmup']} warm-up" if doc.get("rounds", 1) == 1 else
           f"{doc['rounds']} rounds (every row once per round, in turn), median of their "
           f"{doc['rounds']} x {doc['runs']} runs, each round's after {doc['warmup']} warm-up")
        + ", seeded float32 NCHW input")
    lines.append(
        "direct cost per image: " + ", ".join(f"level {i} {g[str(i)]:.1f}" for i in ALL_LEVELS)
        + f" GFLOP (levels 0-3 {sum(g.values()):.1f}, levels 0-2 {g['0'] + g['1'] + g['2']:.1f})")
    lines.append(f"weights: {doc['weights']}")
    if doc.get("onnx_model_source"):
        lines.append(f"ONNX model (ONNX Runtime, OpenVINO): {doc['onnx_model_source']}")
    lines.append("")

    peers = [e for e in PEERS if any(r["engine"] == e for r in doc["rows"])]
    with_io = any(tuple(r.get("io", BASE_IO)) != BASE_IO for r in doc["rows"])
    header = ["engine", "mode"] + (["io"] if with_io else []) + [
        "levels", "batch", "median ms", "min ms", "ms/image", "GFLOP/s", "eff"]
    header += [f"x vs {SHORT[e]}" for e in peers]
    header += ["x vs f32 NCHW"] if with_io else []
    header += ["peak RSS MB", "workspace MB", "compile ms", "max err"]
    table = []
    for r in doc["rows"]:
        cells = [LABELS[r["engine"]], r["mode"]]
        if with_io:
            cells.append(_io_label(r["io"]) if r.get("io") else "")
        cells += [_lv(r["levels"]), str(r["batch"]),
                  _fmt(r["median_ms"], ".1f"), _fmt(r["min_ms"], ".1f"),
                  _fmt(r["ms_per_image"], ".1f"), _fmt(r["gflops_per_s"], ".1f"),
                  f"{100 * r['efficiency']:.0f}%" if r.get("efficiency") is not None else ""]
        cells += [_fmt(r["ratios"].get(e), ".2f", "") for e in peers]
        if with_io:
            cells.append(_fmt(r.get("x_vs_f32_nchw"), ".2f", ""))
        ws = r.get("workspace_bytes")
        cells += [_fmt(r["peak_rss_mb"], ".0f"), _fmt(ws / 2**20 if ws is not None else None, ".1f", ""),
                  _fmt(r.get("compile_ms"), ".1f", ""), _fmt(r.get("max_error"), ".1e", "")]
        table.append(cells)
    left = {0, 1, 2} if with_io else {0, 1}
    widths = [max(len(header[k]), *(len(row[k]) for row in table)) if table else len(header[k])
              for k in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(widths[k]) if k in left else c.rjust(widths[k])
                         for k, c in enumerate(cells)).rstrip()

    lines.append(line(header))
    lines.append("  ".join("-" * wd for wd in widths))
    for cells in table:
        lines.append(line(cells))
    lines.append("")
    notes = []
    if peers:
        notes.append("x vs PEER = PEER's median / this row's median (same levels and batch; > 1 "
                     "means sam3neck is faster).")
    notes.append("GFLOP/s against the direct FLOP count (2 x MACs of the transposed, 1x1 and 3x3 "
                 "convs), whatever the engine computes.")
    pk = doc.get("product_peak")
    if pk:
        notes.append(f"eff = the products one image executes (sam3neck's algorithms: Winograd's "
                     f"transformed products, not the direct count) / ms per image / the machine's "
                     f"measured product peak, {pk['peak_gflops']:.0f} GFLOP/s ({pk['products']}, "
                     f"{pk['threads']} workers at once; sam3neck-profile --cost).")
    elif doc.get("efficiency_note"):
        notes.append(doc["efficiency_note"])
    notes.append("max err = worst level's max|out - ref| / max|ref| against the float64 reference "
                 "(batch 1, levels 0-3 runs; computed on the input rounded to the row's input type).")
    if with_io:
        notes.append("io = input type > output type, output layout (f32>f32 NCHW: the plain run); "
                     "x vs f32 NCHW = the float32 NCHW row's median / this row's median (same "
                     "mode, levels, batch; >= 1 means at least as fast).")
    notes.append("peak RSS = peak resident memory of the row's own process (VmHWM), input and "
                 "outputs included; workspace = what sam3neck's compile step reports; compile = "
                 "that process's first compile (the weights prepared for its precision), load "
                 "excluded.")
    for n in notes:
        lines.append(n)
    for s in doc["skipped"]:
        lines.append(f"{LABELS[s['engine']]}: skipped, {s['reason']}")
    if lib and lib.get("builds_seen", 1) > 1:
        lines.append(f"WARNING: libsam3neck changed during the run ({lib['builds_seen']} builds "
                     "seen); rerun for consistent numbers.")
    for r in doc["rows"]:
        if r["engine"] == "openvino" and r["mode"] != "f32":
            lines.append(f"WARNING: OpenVINO reports inference precision {r['mode']} (asked f32).")
            break
        if r["engine"] == "sam3neck" and r.get("max_error") is not None:
            bound = reference.tolerance(
                r["requested_mode"] if r["requested_mode"] in reference.TOLERANCE else "default",
                tuple(r.get("io", BASE_IO))[1])
            if not r["max_error"] <= bound:
                lines.append(f"WARNING: sam3neck {r['mode']} {_io_label(r['io'])} error "
                             f"{r['max_error']:.1e} exceeds its bound {bound:g}.")
    return "\n".join(lines)


def _profile(doc: dict, args) -> str:
    binary = profile_binary()
    if not binary.is_file():
        return (f"profile: {binary} not found; build it in {_repo_root()} with\n"
                "  swift build -c release -Xswiftc -static-stdlib\n"
                "then rerun with --profile.")
    h, w = doc["grid"]
    cmd = [str(binary), doc["weights"], str(h), str(w), "1", "0xF", str(doc["threads"]),
           str(doc["runs"])]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=WORKER_TIMEOUT_S)
        out = p.stdout.rstrip()
        if p.returncode != 0:
            out += f"\n(sam3neck-profile exited with status {p.returncode})"
    except (OSError, subprocess.TimeoutExpired) as e:
        out = f"cannot run {binary}: {e}"
    return "profile: " + " ".join(cmd) + "\n" + out


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every engine (default: all cores, os.cpu_count())")
    p.add_argument("--runs", type=int, default=None, help="timed runs per row (default 7)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="run every row this many times, in turn, and take the median of all their "
                        "runs (default 1; more for a shared, noisy machine)")
    p.add_argument("--height", type=int, default=None, help="input grid height (default 72)")
    p.add_argument("--width", type=int, default=None, help="input grid width (default 72)")
    p.add_argument("--weights", default=None,
                   help="a checkpoint, any format Neck loads (default: the synthetic checkpoint with SAM 3's "
                        "real shapes, written to the cache on first use)")
    p.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test size: 16x16 grid, 2 runs, 1 warm-up (explicit options win)")
    p.add_argument("--no-peers", action="store_true",
                   help="only this library (no ONNX Runtime / OpenVINO / PyTorch)")
    p.add_argument("--all-io", action="store_true",
                   help="a row for every input type / output type / output layout combination "
                        f"(26), not only the {len(IO_CASES)} representative ones")
    p.add_argument("--profile", action="store_true",
                   help="after the table, the per-stage breakdown of sam3neck-profile")
    p.add_argument("--json", default="bench.json", metavar="PATH",
                   help="where to write the results as JSON (default ./bench.json)")
    return p


def run_cli(args) -> int:
    doc = run_benchmark(args)
    report = format_report(doc)
    if args.profile:
        prof = _profile(doc, args)
        doc["profile"] = prof
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(report)
    if args.profile:
        print()
        print(doc["profile"])
    print(f"\nJSON: {os.path.abspath(args.json)}")
    ours = [r for r in doc["rows"] if r["engine"] == "sam3neck"]
    ok = len(ours) == len(OUR_MODES) * len(OUR_CASES) + len(_io_cases(args))
    return 0 if ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        if len(argv) != 2:
            print("usage: python -m sam3neck.bench --worker SPEC_JSON", file=sys.stderr)
            return 2
        return _worker_main(argv[1])
    parser = argparse.ArgumentParser(prog="python -m sam3neck bench",
                                     description="Times sam3neck against ONNX Runtime, OpenVINO "
                                                 "and PyTorch eager; prints one table, writes JSON.")
    return run_cli(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
