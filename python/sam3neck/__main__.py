"""Command line: sam3neck run [...], sam3neck demo [...], sam3neck bench [...],
sam3neck inspect FILE and sam3neck version (python -m sam3neck ... is the same)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import List, Optional

import numpy as np

from . import checkpoint, reference
from .neck import Neck, Sam3NeckError
from .runner import PRECISION_HELP, levels_arg

EXIT_STATUS = """exit status:
  0  success
  1  something failed (run: some file, the checkpoint or the picture; demo: the checkpoint,
     the library, a grid it cannot compile or an error over its bound; bench: the checkpoint
     or the JSON file; inspect: an unreadable file; version: no library); a path that fails
     is reported in one line on stderr
  2  usage error (unknown command or option, missing argument)"""


class _VersionAction(argparse.Action):
    """`--version`: asks for the version only when the option is given (it may load the library)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from . import __version__

        print(f"sam3neck {__version__}")
        parser.exit()


def cmd_version(args) -> int:
    from . import __version__

    print(f"sam3neck (python) {__version__}")
    try:
        from . import _lib

        path = _lib.library_path()
        lib = _lib.get_lib()
        print(f"libsam3neck {_lib.version_string()} (ABI {int(lib.sam3_neck_abi_version())}) at {path}")
    except OSError as e:
        print(f"libsam3neck: not available: {e}")
        return 1
    return 0


class _DemoError(Exception):
    """A failure of `demo` to report in one line (exit status 1)."""


def cmd_demo(args) -> int:
    """The demo; a checkpoint or library that fails is one line on stderr and exit status 1."""
    try:
        return _demo(args)
    except _DemoError as e:
        print(f"sam3neck demo: error: {e}", file=sys.stderr)
        return 1


def _demo(args) -> int:
    from . import _lib

    t_start = time.perf_counter()
    weights = args.weights or os.environ.get("WEIGHTS")
    if not weights:
        t = time.perf_counter()
        try:
            weights = str(checkpoint.ensure_default_checkpoint())
        except OSError as e:
            raise _DemoError(f"cannot write the synthetic checkpoint: {e}") from None
        print(f"weights: {weights} (synthetic; ready in {time.perf_counter() - t:.2f} s)")
    else:
        if not os.path.exists(weights):
            raise _DemoError(f"{weights}: no such checkpoint file")
        print(f"weights: {weights}")
    try:
        print(f"library: {_lib.library_path()}  version {_lib.version_string()}")
    except OSError as e:
        raise _DemoError(f"the library: {e}") from None

    t = time.perf_counter()
    try:
        neck = Neck(weights, neck=args.neck, prefix=args.prefix)
    except (Sam3NeckError, OSError, ValueError, TypeError) as e:
        raise _DemoError(f"{weights}: cannot load the neck: {e}") from None
    load_s = time.perf_counter() - t
    with neck:
        print(f"loaded in {load_s * 1e3:.1f} ms: trunk_dim C={neck.trunk_dim}, d_model={neck.d_model}")
        t = time.perf_counter()
        try:
            neck.compile(
                height=args.height,
                width=args.width,
                batch=args.batch,
                layout=args.layout,
                levels=args.levels,
                threads=args.threads,
                precision=args.precision,
            )
        except (Sam3NeckError, ValueError) as e:
            raise _DemoError(f"cannot compile: {e}") from None
        compile_s = time.perf_counter() - t
        o = neck.compile_options  # what the arguments and the library's defaults made
        print(
            f"compiled in {compile_s * 1e3:.1f} ms: input {neck.input_shape} {o['layout']}, "
            f"threads {o['threads']} (0 = all cores), precision {o['precision']}, "
            f"workspace {neck.workspace_bytes / 2**20:.1f} MB"
        )

        rng = np.random.default_rng(args.seed)
        x = rng.standard_normal((o["batch"], neck.trunk_dim, o["height"], o["width"]), dtype=np.float32)
        xin = x if o["layout"] == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))

        out = neck.run(xin)  # warm-up (first-touch of the workspace and outputs)
        times = []
        for _ in range(max(1, args.runs)):
            t = time.perf_counter()
            out = neck.run(xin, out=[lv.features for lv in out])
            times.append(time.perf_counter() - t)
        print(
            f"run: median {statistics.median(times) * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms "
            f"over {len(times)} timed runs after 1 warm-up run"
        )
        # The reference computes from the weights the library loaded (whatever the file's format),
        # so what this checks is the computation, not a second reading of the checkpoint.
        w = neck.weights()

    t = time.perf_counter()
    ref = reference.forward(w, x, layout="NCHW", levels=[lv.level for lv in out])
    ref_s = time.perf_counter() - t
    total_s = time.perf_counter() - t_start
    share = ref_s / total_s if total_s > 0 else 0.0
    print(f"float64 reference in {ref_s:.2f} s ({share:.0%} of this demo's {total_s:.2f} s)")
    print(
        f"note: the check against the float64 NumPy reference takes "
        f"{'most' if share > 0.5 else f'{share:.0%}'} of the demo's seconds; the neck's own "
        "time is the run line above"
    )

    print()
    print(f"{'level':>5} {'scale':>5}  {'shape':<22} {'norm. max err':>13} {'pos max abs err':>15}")
    worst = 0.0
    for lv, (feat, pos) in zip(out, ref):
        err = reference.normalised_error(lv.features, feat)
        perr = float(np.max(np.abs(lv.pos.astype(np.float64) - pos)))
        worst = max(worst, err if np.isfinite(err) else np.inf, perr)
        print(f"{lv.level:>5} {lv.scale:>5} {str(tuple(lv.features.shape)):<22} {err:>13.3e} {perr:>15.3e}")
    bound = reference.TOLERANCE[o["precision"]]
    ok = worst <= bound
    print()
    print(("OK" if ok else "FAIL") + f": worst error {worst:.3e} (bound {bound:g}, precision {o['precision']})")
    return 0 if ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    """The `sam3neck` command (also `python -m sam3neck`); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="sam3neck", description=__doc__, epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    sub.add_parser("version", help="print the package and library versions")

    demo = sub.add_parser("demo", help="load, compile, run, time and check against the reference")
    demo.add_argument(
        "--weights",
        help="a checkpoint: sam3.pt, safetensors, or a sharded index / "
        "its folder (default: $WEIGHTS, else a synthetic checkpoint written to the "
        "cache on first use)",
    )
    demo.add_argument(
        "--neck",
        "--kind",
        dest="neck",
        default="sam3",
        choices=["sam3", "sam2"],
        help="which neck: the detection neck (sam3) or the SAM 2 / tracker neck (sam2)",
    )
    demo.add_argument("--prefix", default=None, help="exact tensor-name prefix (default: any known)")
    # Compile options left out take the library's defaults (sam3neck.neck.compile_defaults():
    # 72 x 72, batch 1, NCHW, every level, all cores, the default precision).
    demo.add_argument("--height", type=int, default=None, help="input grid height (default 72)")
    demo.add_argument("--width", type=int, default=None, help="input grid width (default 72)")
    demo.add_argument("--batch", type=int, default=None, help="images per run (default 1)")
    demo.add_argument("--threads", type=int, default=None, help="worker threads (default 0: all cores)")
    demo.add_argument("--layout", default=None, choices=["NCHW", "NHWC", "nchw", "nhwc"], help="default NCHW")
    demo.add_argument("--levels", type=levels_arg, default=None, help="default 0,1,2,3")
    demo.add_argument("--precision", default=None, choices=["default", "strict", "fast"], help=PRECISION_HELP)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--runs",
        type=int,
        default=7,
        help="timed runs after one warm-up run; the median and the minimum are printed (default 7)",
    )

    # `bench` is handed to the benchmark's own parser before this one runs (see below); it is
    # listed here for the help text only, so that no other command imports sam3neck.bench.
    sub.add_parser(
        "bench",
        help="time this library against ONNX Runtime, OpenVINO and PyTorch "
        "eager (one table, JSON); sam3neck bench --help for options",
    )

    from . import inspection

    inspection.add_arguments(
        sub.add_parser(
            "inspect",
            help="list the necks a checkpoint holds (naming scheme, prefix, tensor names, "
            "dtypes, shapes) and flag NaN/Inf weights",
        )
    )

    from . import runner

    runner.add_arguments(
        sub.add_parser(
            "run",
            help="run the neck on a .npy feature file or a folder of them, writing .npz (and optionally a PNG picture)",
            description=runner.__doc__.split("\n\n")[0],
        )
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "run":
        return args.func(args)
    if args.command == "inspect":
        try:
            return args.func(args)
        except (Sam3NeckError, OSError) as e:
            print(f"sam3neck inspect: {e}", file=sys.stderr)
            return 1
    if args.command == "version":
        return cmd_version(args)
    if args.command == "demo":
        return cmd_demo(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
