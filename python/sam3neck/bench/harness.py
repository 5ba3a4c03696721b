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
from .._paths import PathError, atomic_writer, check_output
from ..neck import InvalidArgumentError, Neck, Sam3NeckError
from .models import ALL_LEVELS, _version, level_flops, make_input, neck_flops, peer_model_bytes, torch_neck

IMAGE_LEVELS = (0, 1, 2)  # what SAM 3's image model keeps (it drops the 0.5 level)
OUR_CASES = ((ALL_LEVELS, 1), (IMAGE_LEVELS, 1), (ALL_LEVELS, 4))
PEER_CASES = ((ALL_LEVELS, 1), (IMAGE_LEVELS, 1))
OUR_MODES = ("default", "strict", "fast")
#: The class each of our modes is read against: "f32" (peers pinned to float32) or "bf16" (peers
#: in their bfloat16 configuration). Ratios ("x vs PEER") are computed within a class only.
MODE_CLASS = {"default": "f32", "strict": "f32", "fast": "bf16"}
CLASS_ORDER = ("f32", "bf16")
#: The plain I/O: float32 in and out, NCHW outputs (what every row above runs).
BASE_IO = ("float32", "float32", "NCHW")
#: Rows with other element types / output layouts (input dtype, output dtype, output layout), run
#: in the default mode on levels 0-3, batch 1, right after that float32 NCHW row; --all-io runs
#: all 26 combinations instead.
IO_CASES = (
    ("float32", "float16", "sequence"),
    ("float16", "float16", "NCHW"),
    ("bfloat16", "bfloat16", "NHWC"),
    ("bfloat16", "float32", "sequence"),
    ("float32", "bfloat16", "NHWC"),
)
ALL_IO = tuple(
    (i, o, lay)
    for i in dtypes.DTYPES
    for o in dtypes.DTYPES
    for lay in ("NCHW", "NHWC", "sequence")
    if (i, o, lay) != BASE_IO
)
_SHORT_DTYPE = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
_SHORT_LAYOUT = {"NCHW": "NCHW", "NHWC": "NHWC", "sequence": "seq"}
#: The peers' configurations, in the order they run: peer id -> (engine, configuration, class).
#:   f32 class:  pinned to float32 (ONNX Runtime computes in float32 on the CPU anyway; OpenVINO
#:               with INFERENCE_PRECISION_HINT=f32; PyTorch eager in float32)
#:   bf16 class: OpenVINO in its default configuration (no precision hint: on CPUs with native
#:               bfloat16 it picks bf16; the precision it chose is read back from the compiled
#:               model), PyTorch eager under torch.autocast("cpu", dtype=torch.bfloat16)
PEER_CONFIGS = {
    "onnxruntime": ("onnxruntime", "f32", "f32"),
    "openvino": ("openvino", "f32", "f32"),
    "pytorch": ("pytorch", "f32", "f32"),
    "openvino-default": ("openvino", "default", "bf16"),
    "pytorch-bf16": ("pytorch", "autocast-bf16", "bf16"),
}
PEERS = tuple(PEER_CONFIGS)
ENGINES = ("onnxruntime", "openvino", "pytorch")
LABELS = {"sam3neck": "sam3neck", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "pytorch": "PyTorch eager"}
#: How a peer configuration is named in the ratio columns and the summary.
SHORT = {
    "onnxruntime": "ORT",
    "openvino": "OpenVINO f32",
    "pytorch": "PyTorch f32",
    "openvino-default": "OpenVINO default",
    "pytorch-bf16": "PyTorch bf16",
}
PEER_LABELS = {
    "onnxruntime": "ONNX Runtime (f32)",
    "openvino": "OpenVINO pinned to f32",
    "pytorch": "PyTorch eager (f32)",
    "openvino-default": "OpenVINO in its default configuration",
    "pytorch-bf16": 'PyTorch eager under torch.autocast("cpu", dtype=torch.bfloat16)',
}
CLASS_TITLES = {
    "f32": "f32 class: sam3neck strict (bound {strict}) and default ({default}) against peers pinned to float32",
    "bf16": "bf16 class: sam3neck fast (bound {fast}) against peers computing in bfloat16: OpenVINO "
    "in its default configuration (no INFERENCE_PRECISION_HINT; mode = the inference "
    'precision it chose) and PyTorch eager under torch.autocast("cpu", dtype=torch.bfloat16)',
}
PEER_MODULES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "pytorch": ("torch",)}
RESULT_MARK = "SAM3NECK-BENCH-RESULT "
#: /2: peer rows carry "peer", "config" and "class"; every row (peers, levels 0-2 and batch 4
#: included) carries "errors" and "max_error"; ratios are keyed by peer id within the row's class.
SCHEMA = "sam3neck-bench/2"
QUICK = {"height": 16, "width": 16, "runs": 2, "warmup": 1, "rounds": 1}
#: The grid is the library's default (sam3neck.neck.compile_defaults(): SAM 3's 72 x 72).
DEFAULTS = {"runs": 7, "warmup": 2, "rounds": 1}
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
            paths = sorted(
                {line.split()[-1] for line in f if "libopenblas" in line and line.split()[-1].startswith("/")}
            )
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            info = {"path": path}
            for name in ("openblas_get_corename", "openblas_get_config"):
                fn = getattr(lib, name)
                fn.restype = ctypes.c_char_p
                info[name[len("openblas_get_") :]] = (fn() or b"").decode("utf-8", "replace").strip()
            return info
        except (OSError, AttributeError):
            continue
    return None


def _io_label(io: Sequence[str]) -> str:
    """("float32", "float16", "sequence") -> "f32>f16 seq" (input > output type, output layout)."""
    return f"{_SHORT_DTYPE[io[0]]}>{_SHORT_DTYPE[io[1]]} {_SHORT_LAYOUT[io[2]]}"


def _save(outputs, levels: Sequence[int], save: Optional[str]) -> List[str]:
    """Saves the outputs (of the last timed run) widened to float32, in their layout, for the error
    check. `outputs` may be a generator, so that a peer's conversion makes one level at a time."""
    if not save:
        return []
    paths = []
    for i, a in zip(levels, outputs):
        p = f"{save}-level{i}.npy"
        np.save(p, np.ascontiguousarray(dtypes.to_float32(a)))
        paths.append(p)
        del a
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
        neck.compile(
            height=spec["height"],
            width=spec["width"],
            batch=batch,
            layout="NCHW",
            levels=levels,
            threads=spec["threads"],
            precision=spec["mode"],
            input_dtype=in_dt,
            output_dtype=out_dt,
            output_layout=out_lay,
        )
        compile_s = time.perf_counter() - t0
        x = dtypes.to_dtype(make_input(spec["seed"], batch, neck.trunk_dim, spec["height"], spec["width"]), in_dt)
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
            "library": {
                "version": _lib.version_string(),
                "path": str(lib_path),
                "mtime": st.st_mtime,
                "size": st.st_size,
            },
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
    outs = [
        np.empty(reference.level_shape(i, batch, spec["d_model"], spec["height"], spec["width"]), dtype=np.float32)
        for i in levels
    ]
    io = sess.io_binding()
    io.bind_cpu_input("x", x)
    for name, a in zip(names, outs):
        io.bind_output(name, "cpu", 0, np.float32, list(a.shape), a.ctypes.data)

    def run():
        sess.run_with_iobinding(io)

    times = _timed(run, spec["warmup"], spec["runs"])
    return {
        "times_s": times,
        "saved": _save(outs, levels, spec.get("save")),
        "mode_actual": "f32",
        "threads_actual": spec["threads"],
        "providers": sess.get_providers(),
    }


def _work_openvino(spec: dict) -> dict:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    model = core.read_model(spec["model"])
    config = {
        props.inference_num_threads: spec["threads"],
        hints.performance_mode: hints.PerformanceMode.LATENCY,
    }
    if spec["mode"] == "f32":  # pinned; "default": no hint, OpenVINO picks (bf16 where native)
        config[hints.inference_precision] = ov.Type.f32
    elif spec["mode"] != "default":
        raise ValueError(f"unknown OpenVINO configuration {spec['mode']!r}")
    compiled = core.compile_model(model, "CPU", config)
    got = {}
    for key in (
        hints.inference_precision,
        props.inference_num_threads,
        props.num_streams,
        hints.execution_mode,
        hints.performance_mode,
    ):
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
    outs = (req.get_output_tensor(by_name[f"level{i}"]).data for i in levels)  # the last run's
    precision = got.get(str(hints.inference_precision), "?")
    return {
        "times_s": times,
        "saved": _save(outs, levels, spec.get("save")),
        "mode_actual": _ov_type_name(precision),
        "threads_actual": spec["threads"],
        "properties": got,
    }


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
    x = torch.from_numpy(make_input(spec["seed"], batch, spec["trunk_dim"], spec["height"], spec["width"]))
    last = []
    if spec["mode"] == "f32":

        def run():
            with torch.inference_mode():
                last[:] = module(x)
    elif spec["mode"] == "autocast-bf16":

        def run():  # what upstream SAM 3 does for inference (on GPU): convs in bfloat16
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                last[:] = module(x)
    else:
        raise ValueError(f"unknown PyTorch configuration {spec['mode']!r}")

    times = _timed(run, spec["warmup"], spec["runs"])
    dtype = str(last[0].dtype).replace("torch.", "")
    outs = (t.float().numpy() for t in last)  # one level at a time
    return {
        "times_s": times,
        "saved": _save(outs, levels, spec.get("save")),
        "mode_actual": _SHORT_DTYPE.get(dtype, dtype),
        "threads_actual": torch.get_num_threads(),
        "torch": torch.__version__,
    }


WORKERS = {
    "sam3neck": _work_sam3neck,
    "onnxruntime": _work_onnxruntime,
    "openvino": _work_openvino,
    "pytorch": _work_pytorch,
}


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
                result = {"ok": False, "skipped": True, "reason": f"{mod} not importable ({type(e).__name__}: {e})"}
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
            p = subprocess.run(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=WORKER_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "skipped": False, "reason": f"worker timed out after {WORKER_TIMEOUT_S} s"}
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith(RESULT_MARK)]
        if lines:
            result = json.loads(lines[-1][len(RESULT_MARK) :])
            if not result.get("ok") and p.stderr.strip():
                result["stderr_tail"] = p.stderr.strip()[-2000:]
            return result
        # No result: the process died (e.g. a signal while the library was being rebuilt).
        tail = (p.stderr.strip() or p.stdout.strip())[-2000:]
        last = {
            "ok": False,
            "skipped": False,
            "reason": f"worker exited with status {p.returncode} and no result",
            "stderr_tail": tail,
        }
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
        # native bfloat16 products (what the fast mode and OpenVINO's default bf16 use)
        info["avx512_bf16"] = "avx512_bf16" in flags
        info["amx_bf16"] = "amx_bf16" in flags
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


def _library_grid() -> Dict[str, int]:
    """The library's default grid ({"height": .., "width": ..})."""
    from ..neck import compile_defaults

    d = compile_defaults()
    return {"height": d["height"], "width": d["width"]}


def _resolve(args) -> argparse.Namespace:
    base = QUICK if args.quick else dict(DEFAULTS, **_library_grid())
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
    args.modes = _choices(getattr(args, "modes", None), OUR_MODES, "--modes")
    args.peers = () if getattr(args, "no_peers", False) else _choices(getattr(args, "peers", None), PEERS, "--peers")
    return args


def _choices(value, allowed: Sequence[str], option: str) -> tuple:
    """A comma-separated subset of `allowed` (None: all of them), kept in `allowed`'s order."""
    if value is None:
        return tuple(allowed)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in value if v not in allowed]
    if unknown or not value:
        raise SystemExit(
            f"sam3neck bench: {option} takes a comma-separated list of "
            f"{', '.join(allowed)}; got {','.join(value) or 'nothing'}"
        )
    return tuple(v for v in allowed if v in value)


def run_benchmark(args, log=None) -> dict:
    """Runs every row (one subprocess each, one after the other) and returns the JSON document."""
    if log is None:

        def log(msg):
            print(msg, file=sys.stderr, flush=True)

    args = _resolve(args)
    h, wd, threads = args.height, args.width, args.threads
    weights_path = str(args.weights or checkpoint.ensure_default_checkpoint())
    if not os.path.exists(weights_path):
        raise SystemExit(f"sam3neck bench: error: {weights_path}: no such checkpoint file")
    try:
        loaded = Neck(weights_path)
    except (Sam3NeckError, OSError, ValueError, TypeError) as e:
        raise SystemExit(f"sam3neck bench: error: {weights_path}: cannot load the neck: {e}") from None
    with loaded as neck:
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
        "modes": list(args.modes),
        "peers": list(args.peers),
        "layout": "NCHW",
        "weights": weights_path,
        "gflop_per_image": {str(i): level_flops(i, c, d, h, wd) / 1e9 for i in ALL_LEVELS},
        "rows": [],
        "skipped": [],
    }
    tmp = tempfile.mkdtemp(prefix="sam3neck-bench-")
    try:
        specs = []
        common = {
            "height": h,
            "width": wd,
            "threads": threads,
            "runs": args.runs,
            "warmup": args.warmup,
            "seed": args.seed,
            "weights": weights_path,
            "trunk_dim": c,
            "d_model": d,
        }
        io_cases = _io_cases(args)
        for mode in args.modes:
            for levels, batch in OUR_CASES:
                specs.append(
                    dict(common, engine="sam3neck", mode=mode, levels=list(levels), batch=batch, io=list(BASE_IO))
                )
                if mode == "default" and (levels, batch) == OUR_CASES[0]:
                    for io in io_cases:  # next to the float32 NCHW row they are compared with
                        specs.append(
                            dict(common, engine="sam3neck", mode=mode, levels=list(levels), batch=batch, io=list(io))
                        )
        if args.peers:
            specs += _peer_specs(args, weights, common, tmp, doc, log)

        pending = []  # (row, saved output files): every row's outputs of its first round
        dropped = set()  # peer configurations found not importable: their other rows are not tried
        merged = {}  # spec index -> its workers' results, runs of every round together
        rounds = args.rounds
        for rnd in range(rounds):
            # With rounds > 1 every row runs once per round, in the same order: a slow spell of a
            # shared machine then falls on several rows' runs instead of all of one row's.
            for k, spec in enumerate(specs):
                key = spec.get("peer", spec["engine"])
                if key in dropped or (rnd > 0 and k not in merged):
                    continue
                # The first round's outputs (of its last timed run, on the input the timing used)
                # are kept for the error check, which runs after every row.
                save = os.path.join(tmp, f"row{k}") if rnd == 0 else None
                spec = dict(spec, save=save)
                what = f"{_row_name(spec)}, levels {_lv(spec['levels'])}, batch {spec['batch']}"
                if spec.get("io", list(BASE_IO)) != list(BASE_IO):
                    what += f", {_io_label(spec['io'])}"
                step = rnd * len(specs) + k + 1
                log(
                    f"[{step}/{rounds * len(specs)}] {what}"
                    + (f" (round {rnd + 1} of {rounds})" if rounds > 1 else "")
                    + " ..."
                )
                res = _run_worker(spec, log)
                if not res.get("ok"):
                    reason = res.get("reason", "failed")
                    if res.get("skipped"):
                        dropped.add(key)
                    else:
                        reason = f"{what} failed: {reason}"
                        if res.get("stderr_tail"):
                            log(res["stderr_tail"])
                    log(f"  {reason}")
                    doc["skipped"].append(_skip_entry(spec, reason))
                    merged.pop(k, None)  # a row that failed in any round is not reported
                    continue
                log(
                    f"  median {statistics.median(res['times_s']) * 1e3:.1f} ms "
                    f"(min {min(res['times_s']) * 1e3:.1f}), peak RSS {res['peak_rss_kib'] / 1024:.0f} MB"
                )
                if k not in merged:
                    res["compile_ms_rounds"] = [res["compile_ms"]] if "compile_ms" in res else []
                    merged[k] = (spec, res)
                    continue
                m = merged[k][1]
                m["times_s"] = m["times_s"] + res["times_s"]
                for key2 in ("peak_rss_kib", "ru_maxrss_kib"):
                    m[key2] = max(m[key2], res[key2])
                if "compile_ms" in res:
                    m["compile_ms_rounds"].append(res["compile_ms"])
        for k in sorted(merged):
            spec, res = merged[k]
            if res.get("compile_ms_rounds"):
                res["compile_ms"] = statistics.median(res["compile_ms_rounds"])
            row = _row(spec, res, c, d)
            if res.get("saved"):
                pending.append((row, res["saved"]))
            doc["rows"].append(row)
        # The product peak next, on an idle machine: after the float64 reference NumPy's own
        # OpenBLAS threads keep spinning for a while, and the peak measured then came out at half
        # (113 against 214 GFLOP/s, eff 155% on 2026-12-07).
        _efficiency(doc)
        # Errors last, so that nothing runs in this process between two timed workers.
        if pending:
            _errors(pending, weights, args.seed, c, h, wd, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    _ratios(doc)
    _library_summary(doc)
    return doc


def _row_name(spec_or_row: dict) -> str:
    """ "sam3neck fast", "OpenVINO default", "PyTorch eager autocast-bf16", ... (log lines)."""
    engine = spec_or_row["engine"]
    mode = spec_or_row.get("requested_mode", spec_or_row.get("mode"))
    return f"{LABELS[engine]} {mode}"


def _skip_entry(spec: dict, reason: str) -> dict:
    entry = {"engine": spec["engine"], "reason": reason}
    if spec.get("peer"):
        entry["peer"] = spec["peer"]
    return entry


def _errors(pending, weights, seed: int, c: int, h: int, w: int, log) -> None:
    """Adds to each row its error against the float64 reference, per level: max|out - ref| /
    max|ref| over the level's outputs (every image of the batch; the header's measure), computed
    on the outputs of the row's last timed run of its first round, that is on the input its timing
    used (make_input(seed, batch): image k of a batch is image k of the batch-4 input), rounded to
    the row's input type. "max_error" is the worst level's. The reference is computed one image at
    a time (about 35 s an image at 72 x 72 on 2 cores), once for every row that ran that image."""
    by_dtype: Dict[str, list] = {}
    for row, saved in pending:
        by_dtype.setdefault(row.get("io", BASE_IO)[0], []).append((row, saved))
    for in_dt, items in by_dtype.items():
        images = max(row["batch"] for row, _ in items)
        x = make_input(seed, images, c, h, w)
        acc = {id(row): [[0.0, 0.0] for _ in row["levels"]] for row, _ in items}
        for k in range(images):
            log(f"float64 reference (image {k + 1} of {images}, all levels, {in_dt} input) ...")
            t = time.perf_counter()
            ref = [feat for feat, _ in reference.forward(weights, x[k : k + 1], levels=ALL_LEVELS, input_dtype=in_dt)]
            log(f"  reference in {time.perf_counter() - t:.1f} s")
            for row, saved in items:
                if row["batch"] <= k:
                    continue
                layout = row.get("io", BASE_IO)[2]
                for j, (level, path) in enumerate(zip(row["levels"], saved)):
                    out = np.load(path, mmap_mode="r")
                    got = out[:, k : k + 1] if layout == "sequence" else out[k : k + 1]
                    want = reference.to_layout(ref[level], layout)
                    diff = float(np.max(np.abs(got.astype(np.float64) - want)))
                    scale = float(np.max(np.abs(want)))
                    a = acc[id(row)][j]
                    a[0] = float("nan") if math.isnan(diff) or math.isnan(a[0]) else max(a[0], diff)
                    a[1] = max(a[1], scale)
                    del out, got
            del ref
        for row, saved in items:
            errs = []
            for diff, scale in acc[id(row)]:
                errs.append(float("nan") if math.isnan(diff) else diff / scale if scale > 0 else diff)
            for path in saved:
                os.unlink(path)
            row["errors"] = errs
            row["error_images"] = row["batch"]
            row["max_error"] = float("nan") if any(math.isnan(e) for e in errs) else max(errs)
            io = "" if row.get("io", BASE_IO) == BASE_IO else f" {_io_label(row['io'])}"
            log(
                f"  {_row_name(row)}{io}, levels {_lv(row['levels'])}, batch {row['batch']}: max err "
                f"{row['max_error']:.1e} (per level {', '.join(f'{e:.1e}' for e in errs)})"
            )


def _peer_specs(args, weights, common, tmp, doc, log) -> List[dict]:
    """The peers' rows (PEER_CONFIGS, each for PEER_CASES); a configuration whose engine is not
    importable gets one "skipped" entry with the reason instead."""
    specs = []
    wanted = []
    for pid, (engine, config, cls) in PEER_CONFIGS.items():
        if pid not in args.peers:
            continue
        missing = [m for m in PEER_MODULES[engine] if importlib.util.find_spec(m) is None]
        if missing:
            doc["skipped"].append({"engine": engine, "peer": pid, "reason": f"{', '.join(missing)} not importable"})
        else:
            wanted.append(pid)
    models = {}
    if any(PEER_CONFIGS[p][0] in ("onnxruntime", "openvino") for p in wanted):
        try:
            for levels, batch in PEER_CASES:
                t = time.perf_counter()
                data, source = peer_model_bytes(weights, batch, common["height"], common["width"], levels)
                doc["onnx_model_source"] = source
                path = os.path.join(tmp, f"neck-levels{''.join(map(str, levels))}-b{batch}.onnx")
                with open(path, "wb") as f:
                    f.write(data)
                models[(tuple(levels), batch)] = path
                log(f"ONNX model, levels {_lv(levels)}, batch {batch}: {source}, {time.perf_counter() - t:.1f} s")
        except Exception as e:
            reason = (
                f"onnx not importable ({e})"
                if isinstance(e, ImportError)
                else f"cannot build the ONNX model: {type(e).__name__}: {e}"
            )
            for pid in list(wanted):
                engine = PEER_CONFIGS[pid][0]
                if engine in ("onnxruntime", "openvino"):
                    wanted.remove(pid)
                    doc["skipped"].append({"engine": engine, "peer": pid, "reason": reason})
    for pid in wanted:
        engine, config, cls = PEER_CONFIGS[pid]
        for levels, batch in PEER_CASES:
            spec = dict(common, engine=engine, peer=pid, mode=config, cls=cls, levels=list(levels), batch=batch)
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
        row["class"] = MODE_CLASS.get(spec["mode"], "f32")
    else:  # "mode": what it computed in (OpenVINO: read back); "config": what it was asked
        row["peer"] = spec["peer"]
        row["config"] = spec["mode"]
        row["class"] = PEER_CONFIGS[spec["peer"]][2]
    for key in ("workspace_bytes", "compile_ms", "library", "openblas", "properties", "providers", "torch"):
        if key in res:
            row[key] = res[key]
    return row


def _io_cases(args) -> tuple:
    return ALL_IO if getattr(args, "all_io", False) else IO_CASES


def _ratios(doc: dict) -> None:
    """Adds to each sam3neck row, per peer configuration of ITS class (MODE_CLASS: strict and
    default against the f32 peers, fast against the bf16 ones) with the same levels and batch, the
    peer's median / the row's median; and doc["summary"], those ratios of the levels 0-3 and 0-2
    batch-1 rows (what the table's closing lines state), plus fast against our own default."""
    peers = {(r["peer"], tuple(r["levels"]), r["batch"]): r for r in doc["rows"] if r["engine"] != "sam3neck"}
    base = {
        (r["requested_mode"], tuple(r["levels"]), r["batch"]): r
        for r in doc["rows"]
        if r["engine"] == "sam3neck" and tuple(r.get("io", BASE_IO)) == BASE_IO
    }
    summary = []
    for r in doc["rows"]:
        if r["engine"] != "sam3neck":
            continue
        b = base.get((r["requested_mode"], tuple(r["levels"]), r["batch"]))
        if tuple(r.get("io", BASE_IO)) != BASE_IO and b is not None:
            r["x_vs_f32_nchw"] = b["median_ms"] / r["median_ms"]
        if tuple(r.get("io", BASE_IO)) != BASE_IO:
            continue  # the peers run float32 NCHW: compared with that row only
        for pid, (_, _, cls) in PEER_CONFIGS.items():
            p = peers.get((pid, tuple(r["levels"]), r["batch"]))
            if p is not None and cls == r["class"]:
                r["ratios"][pid] = p["median_ms"] / r["median_ms"]
        if r["batch"] == 1 and tuple(r["levels"]) in {tuple(lv) for lv, _ in PEER_CASES}:
            for pid, x in r["ratios"].items():
                summary.append(
                    {
                        "class": r["class"],
                        "mode": r["requested_mode"],
                        "vs": pid,
                        "levels": list(r["levels"]),
                        "batch": 1,
                        "x": x,
                    }
                )
            if r["requested_mode"] == "fast":
                d = base.get(("default", tuple(r["levels"]), 1))
                if d is not None:
                    summary.append(
                        {
                            "class": "ours",
                            "mode": "fast",
                            "vs": "sam3neck default",
                            "levels": list(r["levels"]),
                            "batch": 1,
                            "x": d["median_ms"] / r["median_ms"],
                        }
                    )
    doc["summary"] = summary


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
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=WORKER_TIMEOUT_S)
        cost = json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        doc["efficiency_note"] = f"eff: {' '.join(cmd)} failed: {e}"
        return
    doc["product_peak"] = {
        k: cost[k] for k in ("peak_gflops", "threads", "products", "fast_peak_gflops", "fast_products") if k in cost
    }
    for r in doc["rows"]:
        if r["engine"] != "sam3neck" or r["requested_mode"] not in cost["executed_gflop_per_image"]:
            continue
        # the fast mode's products run on the bfloat16 code, against its own (higher) peak
        peak = cost.get("fast_peak_gflops") if r["requested_mode"] == "fast" else cost["peak_gflops"]
        if not peak:
            continue
        per_level = cost["executed_gflop_per_image"][r["requested_mode"]]
        executed = sum(per_level[str(level)] for level in r["levels"])
        r["executed_gflop_per_image"] = executed
        r["efficiency"] = executed / (r["ms_per_image"] * 1e-3) / peak


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
    if "avx512_bf16" in m:
        mach += f", avx512_bf16 {yn[m.get('avx512_bf16')]}, amx_bf16 {yn[m.get('amx_bf16')]}"
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
        + (
            f"median of {doc['runs']} runs after {doc['warmup']} warm-up"
            if doc.get("rounds", 1) == 1
            else f"{doc['rounds']} rounds (every row once per round, in turn), median of their "
            f"{doc['rounds']} x {doc['runs']} runs, each round's after {doc['warmup']} warm-up"
        )
        + ", seeded float32 NCHW input"
    )
    lines.append(
        "direct cost per image: "
        + ", ".join(f"level {i} {g[str(i)]:.1f}" for i in ALL_LEVELS)
        + f" GFLOP (levels 0-3 {sum(g.values()):.1f}, levels 0-2 {g['0'] + g['1'] + g['2']:.1f})"
    )
    lines.append(f"weights: {doc['weights']}")
    if doc.get("onnx_model_source"):
        lines.append(f"ONNX model (ONNX Runtime, OpenVINO): {doc['onnx_model_source']}")
    lines.append("")

    for cls in CLASS_ORDER:
        rows = [r for r in doc["rows"] if r.get("class", "f32") == cls]
        if not rows:
            continue
        lines.append(CLASS_TITLES[cls].format(**{m: _bound_text(m) for m in OUR_MODES}))
        lines.extend(_table(rows, cls))
        lines.append("")
    lines.extend(_summary_lines(doc))
    lines.append("")

    notes = []
    if any(r["engine"] != "sam3neck" for r in doc["rows"]):
        notes.append(
            "x vs PEER = PEER's median / this row's median (same levels and batch; > 1 "
            "means sam3neck is faster), only against the peers of the row's own class."
        )
    notes.append(
        "max err = max|out - ref| / max|ref| against the float64 reference of the worst "
        "level (over every image of the batch), on the outputs of the row's last timed "
        "run, i.e. of the input its timing used (rounded to the row's input type); the "
        'JSON has each level\'s ("errors").'
    )
    notes.append(
        "GFLOP/s against the direct FLOP count (2 x MACs of the transposed, 1x1 and 3x3 "
        "convs), whatever the engine computes."
    )
    pk = doc.get("product_peak")
    if pk:
        peak = (
            f"eff = the products one image executes (sam3neck's algorithms: Winograd's "
            f"transformed products, not the direct count) / ms per image / the machine's "
            f"measured product peak, {pk['peak_gflops']:.0f} GFLOP/s ({pk['products']}"
        )
        if pk.get("fast_peak_gflops"):
            peak += (
                f"; for fast: its bfloat16 products' peak, {pk['fast_peak_gflops']:.0f} "
                f"GFLOP/s, {pk.get('fast_products')}"
            )
        notes.append(peak + f"; {pk['threads']} workers at once; sam3neck-profile --cost).")
    elif doc.get("efficiency_note"):
        notes.append(doc["efficiency_note"])
    if any(tuple(r.get("io", BASE_IO)) != BASE_IO for r in doc["rows"]):
        notes.append(
            "io = input type > output type, output layout (f32>f32 NCHW: the plain run); "
            "x vs f32 NCHW = the float32 NCHW row's median / this row's median (same "
            "mode, levels, batch; >= 1 means at least as fast)."
        )
    notes.append(
        "peak RSS = peak resident memory of the row's own process (VmHWM), input and "
        "outputs included; workspace = what sam3neck's compile step reports; compile = "
        "that process's first compile (the weights prepared for its precision), load "
        "excluded."
    )
    for r in doc["rows"]:
        if r.get("peer") == "openvino-default":
            props_ = r.get("properties", {})
            mode_ = str(props_.get("EXECUTION_MODE_HINT", "?")).split(".")[-1]
            notes.append(
                f"OpenVINO default = no INFERENCE_PRECISION_HINT given; the inference "
                f"precision it chose, read back from the compiled model: {r['mode']} "
                f"(INFERENCE_PRECISION_HINT {props_.get('INFERENCE_PRECISION_HINT', '?')}"
                f", EXECUTION_MODE_HINT {mode_}); INFERENCE_NUM_THREADS and "
                "PERFORMANCE_HINT=LATENCY as in the f32 row."
            )
            break
    for n in notes:
        lines.append(n)
    for sk in doc["skipped"]:
        label = PEER_LABELS.get(sk.get("peer"), LABELS[sk["engine"]])
        lines.append(f"{label}: skipped, {sk['reason']}")
    if lib and lib.get("builds_seen", 1) > 1:
        lines.append(
            f"WARNING: libsam3neck changed during the run ({lib['builds_seen']} builds "
            "seen); rerun for consistent numbers."
        )
    warned_ov = False
    for r in doc["rows"]:
        if r.get("peer") == "openvino" and r["mode"] != "f32" and not warned_ov:
            lines.append(f"WARNING: OpenVINO reports inference precision {r['mode']} (asked f32).")
            warned_ov = True
        if r["engine"] == "sam3neck" and r.get("max_error") is not None:
            bound = reference.tolerance(
                r["requested_mode"] if r["requested_mode"] in reference.TOLERANCE else "default",
                tuple(r.get("io", BASE_IO))[1],
            )
            if not r["max_error"] <= bound:
                lines.append(
                    f"WARNING: sam3neck {r['mode']} {_io_label(r['io'])} levels "
                    f"{_lv(r['levels'])} batch {r['batch']} error {r['max_error']:.1e} "
                    f"exceeds its bound {bound:g}."
                )
    return "\n".join(lines)


def _bound_text(mode: str) -> str:
    return f"{reference.TOLERANCE[mode]:.0e}".replace("e-0", "e-")


def _mode_cell(r: dict) -> str:
    """Our rows: the precision. Peers: what they computed in; for a configuration other than
    pinned f32, "CONFIG (PRECISION)", e.g. "default (bf16)" for OpenVINO's default configuration."""
    if r["engine"] == "sam3neck" or r.get("config", "f32") == "f32":
        return r["mode"]
    return f"{r['config']} ({r['mode']})"


def _table(rows: List[dict], cls: str) -> List[str]:
    """One class's table: its rows (run order), with the ratio columns of its class's peers."""
    peers = [pid for pid, (_, _, c) in PEER_CONFIGS.items() if c == cls and any(r.get("peer") == pid for r in rows)]
    with_io = any(tuple(r.get("io", BASE_IO)) != BASE_IO for r in rows)
    header = (
        ["engine", "mode"]
        + (["io"] if with_io else [])
        + ["levels", "batch", "median ms", "min ms", "max err", "ms/image", "GFLOP/s", "eff"]
    )
    header += [f"x vs {SHORT[p]}" for p in peers]
    header += ["x vs f32 NCHW"] if with_io else []
    header += ["peak RSS MB", "workspace MB", "compile ms"]
    table = []
    for r in rows:
        cells = [LABELS[r["engine"]], _mode_cell(r)]
        if with_io:
            cells.append(_io_label(r["io"]) if r.get("io") else "")
        cells += [
            _lv(r["levels"]),
            str(r["batch"]),
            _fmt(r["median_ms"], ".1f"),
            _fmt(r["min_ms"], ".1f"),
            _fmt(r.get("max_error"), ".1e", ""),
            _fmt(r["ms_per_image"], ".1f"),
            _fmt(r["gflops_per_s"], ".1f"),
            f"{100 * r['efficiency']:.0f}%" if r.get("efficiency") is not None else "",
        ]
        cells += [_fmt(r["ratios"].get(p), ".2f", "") for p in peers]
        if with_io:
            cells.append(_fmt(r.get("x_vs_f32_nchw"), ".2f", ""))
        ws = r.get("workspace_bytes")
        cells += [
            _fmt(r["peak_rss_mb"], ".0f"),
            _fmt(ws / 2**20 if ws is not None else None, ".1f", ""),
            _fmt(r.get("compile_ms"), ".1f", ""),
        ]
        table.append(cells)
    left = {0, 1, 2} if with_io else {0, 1}
    widths = [
        max(len(header[k]), *(len(row[k]) for row in table)) if table else len(header[k]) for k in range(len(header))
    ]

    def line(cells):
        return "  ".join(c.ljust(widths[k]) if k in left else c.rjust(widths[k]) for k, c in enumerate(cells)).rstrip()

    out = [line(header), "  ".join("-" * wd for wd in widths)]
    out += [line(cells) for cells in table]
    return out


def _summary_lines(doc: dict) -> List[str]:
    """The ratios within each class (doc["summary"]), one line per class and case, e.g.
    "bf16 class, levels 0-3, batch 1: fast vs OpenVINO default (bf16) 2.10x"; a peer of the class
    with no row says why (skipped)."""
    lines = ["Within each class (x = the peer's median / ours; > 1: sam3neck is faster):"]
    skipped = {sk.get("peer"): sk["reason"] for sk in doc["skipped"] if sk.get("peer")}
    modes_of = {"f32": [m for m in OUR_MODES if MODE_CLASS[m] == "f32"], "bf16": ["fast"]}
    peer_rows = {(r["peer"], tuple(r["levels"])): r for r in doc["rows"] if r.get("peer")}
    for levels, _ in PEER_CASES:
        for cls in CLASS_ORDER:
            parts = []
            for mode in modes_of[cls]:
                got = [
                    e
                    for e in doc.get("summary", [])
                    if e["class"] == cls and e["mode"] == mode and tuple(e["levels"]) == tuple(levels)
                ]
                if got:
                    parts.append(
                        f"{mode} vs "
                        + ", vs ".join(
                            f"{_peer_name(e['vs'], peer_rows.get((e['vs'], tuple(levels))))} {e['x']:.2f}x" for e in got
                        )
                    )
            missing = [
                pid for pid, (_, _, c) in PEER_CONFIGS.items() if c == cls and (pid, tuple(levels)) not in peer_rows
            ]
            for pid in missing:
                if pid in skipped:
                    parts.append(f"{SHORT[pid]}: skipped ({skipped[pid]})")
            if parts:
                lines.append(f"  {cls} class, levels {_lv(levels)}, batch 1: " + "; ".join(parts))
        ours = [e for e in doc.get("summary", []) if e["class"] == "ours" and tuple(e["levels"]) == tuple(levels)]
        for e in ours:
            lines.append(f"  ours, levels {_lv(levels)}, batch 1: fast vs default {e['x']:.2f}x")
    if len(lines) == 1:
        lines.append("  (no peers ran)")
    return lines


def _peer_name(pid: str, row: Optional[dict]) -> str:
    """ "OpenVINO default (bf16)": the configuration with the precision it reported."""
    name = SHORT[pid]
    if row is not None and row.get("config", "f32") != "f32":
        name += f" ({row['mode']})"
    return name


def _profile(doc: dict, args) -> str:
    binary = profile_binary()
    if not binary.is_file():
        return (
            f"profile: {binary} not found; build it in {_repo_root()} with\n"
            "  swift build -c release -Xswiftc -static-stdlib\n"
            "then rerun with --profile."
        )
    h, w = doc["grid"]
    cmd = [str(binary), doc["weights"], str(h), str(w), "1", "0xF", str(doc["threads"]), str(doc["runs"])]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=WORKER_TIMEOUT_S)
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
    p.add_argument(
        "--threads", type=int, default=None, help="threads for every engine (default: all cores, os.cpu_count())"
    )
    p.add_argument("--runs", type=int, default=None, help="timed runs per row (default 7)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2)")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="run every row this many times, in turn, and take the median of all their "
        "runs (default 1; more for a shared, noisy machine)",
    )
    p.add_argument("--height", type=int, default=None, help="input grid height (default 72)")
    p.add_argument("--width", type=int, default=None, help="input grid width (default 72)")
    p.add_argument(
        "--weights",
        default=None,
        help="a checkpoint, any format Neck loads (default: the synthetic checkpoint with SAM 3's "
        "real shapes, written to the cache on first use)",
    )
    p.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
    p.add_argument(
        "--quick", action="store_true", help="smoke-test size: 16x16 grid, 2 runs, 1 warm-up (explicit options win)"
    )
    p.add_argument("--no-peers", action="store_true", help="only this library (no ONNX Runtime / OpenVINO / PyTorch)")
    p.add_argument(
        "--modes",
        default=None,
        metavar="LIST",
        help="this library's precisions to run, comma-separated (default: all, "
        f"{','.join(OUR_MODES)}: strict and default read against the peers pinned "
        "to float32, fast against the bfloat16 ones)",
    )
    p.add_argument(
        "--peers",
        default=None,
        metavar="LIST",
        help="the peer configurations to run, comma-separated (default: all, "
        f"{','.join(PEERS)}; openvino-default: OpenVINO without a precision "
        "hint, pytorch-bf16: PyTorch eager under torch.autocast bfloat16)",
    )
    p.add_argument(
        "--all-io",
        action="store_true",
        help="a row for every input type / output type / output layout combination "
        f"(26), not only the {len(IO_CASES)} representative ones",
    )
    p.add_argument(
        "--profile", action="store_true", help="after the table, the per-stage breakdown of sam3neck-profile"
    )
    p.add_argument(
        "--json", default="bench.json", metavar="PATH", help="where to write the results as JSON (default ./bench.json)"
    )
    return p


def run_cli(args) -> int:
    # The JSON's path is checked before the benchmark's minutes, not after them (and again when
    # written): its folder must exist, and an existing file there must be a regular one.
    try:
        check_output(args.json)
    except PathError as e:
        raise SystemExit(f"sam3neck bench: error: {e}") from None
    doc = run_benchmark(args)
    report = format_report(doc)
    if args.profile:
        prof = _profile(doc, args)
        doc["profile"] = prof
    try:
        with atomic_writer(args.json) as f:
            f.write((json.dumps(doc, indent=2) + "\n").encode("utf-8"))
    except PathError as e:
        raise SystemExit(f"sam3neck bench: error: {e}") from None
    except OSError as e:
        raise SystemExit(f"sam3neck bench: error: {args.json}: cannot be written: {e.strerror or e}") from None
    print(report)
    if args.profile:
        print()
        print(doc["profile"])
    print(f"\nJSON: {os.path.abspath(args.json)}")
    ours = [r for r in doc["rows"] if r["engine"] == "sam3neck"]
    ok = len(ours) == (len(args.modes) * len(OUR_CASES) + (len(_io_cases(args)) if "default" in args.modes else 0))
    return 0 if ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        if len(argv) != 2:
            print("usage: python -m sam3neck.bench --worker SPEC_JSON", file=sys.stderr)
            return 2
        return _worker_main(argv[1])
    parser = argparse.ArgumentParser(
        prog="python -m sam3neck bench",
        description="Times sam3neck against ONNX Runtime, OpenVINO and PyTorch eager; prints one table, writes JSON.",
    )
    return run_cli(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
