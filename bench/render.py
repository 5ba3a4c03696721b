#!/usr/bin/env python3
"""Renders the results in bench/*.json (what `python -m sam3neck bench` writes) as text.

    PYTHONPATH=python python3 bench/render.py [FILE.json ...]   # each run's full report
    PYTHONPATH=python python3 bench/render.py --headline         # one line per CPU class
    PYTHONPATH=python python3 bench/render.py --errors           # measured errors, per level

The full report is the bench's own (`sam3neck.bench.harness.format_report`, the one renderer);
the other two are the Markdown tables docs/performance.md, docs/accuracy.md and README.md show
(python/tests/test_docs_facts.py checks that they show them as rendered here). Without files, the
newest JSON of each CPU class in bench/. Needs NumPy, not the native library.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from sam3neck.bench.harness import format_report  # noqa: E402

# (vendor prefix of /proc/cpuinfo's model name, cpu family, model) -> the class a reader knows.
CPU_CLASSES = {
    ("AMD", "25", "1"): "AMD Zen 3",
    ("AMD", "25", "17"): "AMD Zen 4",
    ("AMD", "26", "2"): "AMD Zen 5",
    ("Intel", "6", "207"): "Intel Xeon with AMX",
}
BASE_IO = ["float32", "float32", "NCHW"]
ALL_LEVELS = [0, 1, 2, 3]


def cpu_class(doc: dict) -> str:
    m = doc["machine"]
    vendor = "Intel" if (m.get("cpu") or "").startswith("Intel") else (m.get("cpu") or "").split(" ")[0]
    return CPU_CLASSES.get((vendor, str(m.get("cpu_family")), str(m.get("cpu_model"))), m.get("cpu") or "unknown CPU")


def cpu_text(doc: dict) -> str:
    m = doc["machine"]
    return f"{cpu_class(doc)} ({m.get('cpu')}, family {m.get('cpu_family')} model {m.get('cpu_model')})"


def newest_per_class(folder: Path = HERE) -> list:
    """The newest result of each CPU class in `folder`, oldest class first."""
    best = {}
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        key = cpu_class(doc)
        if key not in best or doc["date"] > best[key][1]["date"]:
            best[key] = (path, doc)
    return sorted(best.values(), key=lambda pd: pd[1]["date"])


def _row(doc: dict, engine: str, mode=None, peer=None):
    """The row of levels 0-3, batch 1, float32 NCHW: ours in `mode`, or the peer `peer`."""
    for r in doc["rows"]:
        if r["engine"] != engine or r["batch"] != 1 or r["levels"] != ALL_LEVELS or (r.get("io") or BASE_IO) != BASE_IO:
            continue
        if engine == "sam3neck" and r.get("requested_mode", r["mode"]) == mode:
            return r
        if engine != "sam3neck" and (r.get("peer") or engine) == peer:
            return r
    return None


def _ratio(doc: dict, mode: str, vs: str) -> str:
    """The peer's median over ours (> 1: sam3neck is faster), from our row's "ratios"."""
    r = _row(doc, "sam3neck", mode)
    x = (r or {}).get("ratios", {}).get(vs)
    return f"{x:.2f}×" if x is not None else "–"


def headline(results: list) -> str:
    """Levels 0-3, batch 1, float32 NCHW, one line per CPU class: ms per image and the ratios."""
    lines = [
        "| CPU (2 cores) | date | default ms | strict ms | fast ms | default vs ONNX Runtime "
        "| default vs OpenVINO f32 | fast vs OpenVINO default | file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path, doc in results:
        ms = []
        for mode in ("default", "strict", "fast"):
            r = _row(doc, "sam3neck", mode)
            ms.append(f"{r['median_ms']:.1f}" if r else "–")
        lines.append(
            f"| {cpu_class(doc)} | {doc['date'][:10]} | {' | '.join(ms)} | "
            f"{_ratio(doc, 'default', 'onnxruntime')} | {_ratio(doc, 'default', 'openvino')} | "
            f"{_ratio(doc, 'fast', 'openvino-default')} | `bench/{path.name}` |"
        )
    return "\n".join(lines)


def errors(results: list) -> str:
    """Normalised max error per level (float32 NCHW, levels 0-3, batch 1) of every mode and peer."""
    lines = ["| CPU | mode or peer | level 0 | level 1 | level 2 | level 3 | file |", "|---|---|---|---|---|---|---|"]
    for path, doc in results:
        rows = [(f"sam3neck `{m}`", _row(doc, "sam3neck", m)) for m in ("default", "strict", "fast")]
        rows += [
            (name, _row(doc, eng, peer=peer))
            for name, eng, peer in (
                ("ONNX Runtime f32", "onnxruntime", "onnxruntime"),
                ("OpenVINO f32", "openvino", "openvino"),
                ("OpenVINO default (bf16)", "openvino", "openvino-default"),
                ("PyTorch f32", "pytorch", "pytorch"),
            )
        ]
        for name, r in rows:
            if r and r.get("errors"):
                errs = " | ".join(f"{e:.1e}".replace("e-0", "e-") for e in r["errors"])
                lines.append(f"| {cpu_class(doc)} | {name} | {errs} | `bench/{path.name}` |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, help="bench JSON files (default: the newest per CPU class)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--headline", action="store_true", help="the speed table of README.md")
    what.add_argument("--errors", action="store_true", help="the measured errors of docs/accuracy.md")
    args = p.parse_args(argv)
    results = [(f, json.loads(f.read_text())) for f in args.files] if args.files else newest_per_class()
    if args.headline:
        print(headline(results))
    elif args.errors:
        print(errors(results))
    else:
        for k, (path, doc) in enumerate(results):
            if k:
                print()
            print(f"== {path.name}: {cpu_text(doc)}")
            print(format_report(doc))
            if doc.get("profile"):
                print()
                print(doc["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
