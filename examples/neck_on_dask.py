"""Runs the SAM 3 neck over a folder of feature files (.npy) on a Dask cluster, one .npz per input.

    python examples/neck_on_dask.py WEIGHTS FEATURES_DIR OUT_DIR                # a LocalCluster here
    python examples/neck_on_dask.py WEIGHTS FEATURES_DIR OUT_DIR --scheduler tcp://scheduler:8786

Each worker process holds one Neck: the client scatters a Neck to every worker, and a Neck pickles
as its checkpoint path and options, so each worker loads the checkpoint itself (once) — the path
and the feature files must be readable by the workers under the same names (shared storage). The
files are split into chunks; a task runs its chunk with sam3neck.runner.run_file (the code behind
`sam3neck run`), which compiles the neck once per distinct input shape and writes each .npz
atomically. Workers run one task at a time (`dask worker --nthreads 1`; the tasks of a worker
share its Neck), and a run spreads over `threads` cores by itself.

(The file is not called distributed.py: run as a script, that name would shadow the `distributed`
package that dask.distributed imports.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import sam3neck
from sam3neck.runner import InputError, probe_features, run_file


def process_paths(
    paths: Sequence[str], neck: sam3neck.Neck, out_dir: str, levels: Sequence[int] = (0, 1, 2, 3), threads: int = 0
) -> Dict[str, object]:
    """Worker side: runs `neck` over the feature files `paths`, writing out_dir/<stem>.npz.

    Files are taken in order of their shape (read from the .npy header), so the neck is compiled
    once per distinct shape. A file that fails is reported in the summary; the others still run.
    Returns {"worker", "written", "failed" [(path, reason)], "compiles", "seconds"}.
    """
    from dask.distributed import get_worker

    if get_worker().state.nthreads > 1:
        # the tasks of one worker share its Neck; two at once would recompile it under each other
        raise RuntimeError(
            "run the workers with one thread each (dask worker --nthreads 1); a "
            "run spreads over `threads` cores by itself"
        )
    t0 = time.perf_counter()
    written: List[str] = []
    failed: List[List[str]] = []
    keyed = []
    for p in paths:
        try:
            keyed.append((probe_features(p, neck.trunk_dim)[0], p))
        except InputError as e:
            failed.append([p, str(e)])
    keyed.sort(key=lambda item: item[0])
    compiles = 0
    for _, p in keyed:
        out = os.path.join(out_dir, Path(p).stem + ".npz")
        try:
            r = run_file(neck, p, out, levels=levels, threads=threads)
        except (InputError, sam3neck.Sam3NeckError, OSError) as e:
            failed.append([p, str(e)])
        else:
            written.append(r.out)
            compiles += r.compiled
    return {
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "written": written,
        "failed": failed,
        "compiles": compiles,
        "seconds": time.perf_counter() - t0,
    }


@contextlib.contextmanager
def connect(scheduler: Optional[str] = None, workers: int = 2) -> Iterator["object"]:
    """A dask.distributed Client: to a running cluster at `scheduler` (e.g.
    "tcp://scheduler:8786"), else to a LocalCluster of `workers` processes x 1 thread here."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
    else:
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            yield client


def run_on_cluster(
    client,
    weights: str,
    paths: Sequence[str],
    out_dir: str,
    levels: Sequence[int] = (0, 1, 2, 3),
    threads: int = 0,
    neck: str = "sam3",
    prefix: Optional[str] = None,
    chunks_per_worker: int = 2,
) -> Dict[str, object]:
    """Runs the neck over `paths` on the cluster behind `client`; returns a summary:
    {"files", "written", "failed" [(path, reason)], "workers" {worker: files written},
    "compiles", "seconds"}."""
    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    # Loaded here once, which checks the checkpoint before any work is sent; what travels to the
    # workers is its path and options (see sam3neck.Neck, "Pickling").
    with sam3neck.Neck(weights, neck=neck, prefix=prefix) as local:
        [neck_on_workers] = client.scatter([local], broadcast=True, hash=False)
    n_workers = max(1, len(client.scheduler_info()["workers"]))
    n_chunks = min(len(paths), n_workers * chunks_per_worker) or 1
    chunks = [list(paths[i::n_chunks]) for i in range(n_chunks)]
    futures = client.map(
        process_paths, chunks, neck=neck_on_workers, out_dir=out_dir, levels=tuple(levels), threads=threads, pure=False
    )
    parts = client.gather(futures)
    workers: Dict[str, int] = {}
    for part in parts:
        workers[part["worker"]] = workers.get(part["worker"], 0) + len(part["written"])
    return {
        "files": len(paths),
        "written": sorted(w for part in parts for w in part["written"]),
        "failed": sorted(tuple(f) for part in parts for f in part["failed"]),
        "workers": workers,
        "compiles": sum(part["compiles"] for part in parts),
        "seconds": time.perf_counter() - t0,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights")
    parser.add_argument("features", help="a folder of .npy feature files")
    parser.add_argument("out", help="the output folder (<stem>.npz per input)")
    parser.add_argument(
        "--scheduler", help="a running cluster, e.g. tcp://scheduler:8786 (default: a LocalCluster on this machine)"
    )
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per run (default: cores / workers here, all cores on a cluster's workers)",
    )
    args = parser.parse_args(argv)
    paths = sorted(str(p) for p in Path(args.features).glob("*.npy"))
    if not paths:
        print(f"no .npy files in {args.features}", file=sys.stderr)
        return 1
    threads = args.threads
    if threads is None:
        threads = 0 if args.scheduler else max(1, (os.cpu_count() or 1) // args.workers)
    with connect(args.scheduler, args.workers) as client:
        summary = run_on_cluster(client, args.weights, paths, args.out, threads=threads)
    for path, reason in summary["failed"]:
        print(f"failed: {reason}", file=sys.stderr)
    print(
        f"{len(summary['written'])} of {summary['files']} files written to {args.out} by "
        f"{len(summary['workers'])} workers ({summary['compiles']} compiles) in "
        f"{summary['seconds']:.1f} s"
    )
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
