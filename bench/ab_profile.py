"""Interleaved A/B of two or more builds' stage times, for a shared, noisy machine: runs each
build's `sam3neck-profile --cpu-time` in turn, ROUNDS times, and prints per build and stage the
median and the minimum of the per-invocation medians. CPU time per thread leaves out time other
processes take from the cores; taking turns spreads the machine's slow minutes over every build.

    python3 bench/ab_profile.py [--rounds 6] [--runs 5] [--mask 0xF] [--precision default]
        [--weights W] BUILD_DIR [BUILD_DIR ...]

A BUILD_DIR is a checkout whose `.build/release/sam3neck-profile` is built (`swift build -c
release -Xswiftc -static-stdlib --product sam3neck-profile`), e.g. a `git worktree` of the commit
to compare against. Without --weights: the synthetic checkpoint with SAM 3's shapes in the cache
(`python3 -m sam3neck demo` writes it).
"""

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

STAGE = re.compile(r"^(L\d .+?|total \(median\))\s{2,}([0-9.]+) ms")


def stage_times(binary, weights, mask, runs, precision):
    """{stage: ms} from one invocation of sam3neck-profile (72 x 72, batch 1, 2 threads)."""
    cmd = [str(binary), "--cpu-time", str(weights), "72", "72", "1", mask, "2", str(runs)]
    if precision != "default":
        cmd.append(precision)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {m.group(1).strip(): float(m.group(2)) for m in map(STAGE.match, out.splitlines()) if m}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("builds", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--mask", default="0xF")
    p.add_argument("--precision", default="default", choices=["default", "strict", "fast"])
    p.add_argument(
        "--weights",
        type=Path,
        default=Path.home() / ".cache/sam3neck/synthetic-sam3-neck-c1024-d256-seed0.safetensors",
    )
    a = p.parse_args(argv)
    binaries = [b / ".build/release/sam3neck-profile" for b in a.builds]
    for b in binaries:
        if not b.is_file():
            p.error(f"{b}: not built")
    times = [{} for _ in binaries]  # per build: stage -> [ms per invocation]
    for r in range(a.rounds):
        for i, b in enumerate(binaries):
            for stage, ms in stage_times(b, a.weights, a.mask, a.runs, a.precision).items():
                times[i].setdefault(stage, []).append(ms)
        print(f"round {r + 1} of {a.rounds} done", file=sys.stderr)
    stages = list(times[0])
    width = max(len(s) for s in stages)
    print(f"{'':{width}}  " + "  ".join(f"{str(b)[-30:]:>30}" for b in a.builds))
    print(f"{'stage (ms)':{width}}  " + "  ".join(f"{'median /   min':>30}" for _ in a.builds))
    for s in stages:
        cells = []
        for t in times:
            xs = t.get(s, [])
            cells.append(f"{statistics.median(xs):.1f} / {min(xs):5.1f}" if xs else "–")
        print(f"{s:{width}}  " + "  ".join(f"{c:>30}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
