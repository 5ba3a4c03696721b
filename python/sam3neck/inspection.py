"""`python -m sam3neck inspect FILE`: what a checkpoint holds for the neck.

The library does the reading (sam3_neck_inspect_file, the same parsers as loading: safetensors,
PyTorch zip, sharded safetensors); this module asks it for its JSON report and prints it for
people: every neck found (the detection neck and the SAM 2 / tracker neck, in the original or the
Transformers naming, under which prefix), the tensors' dtypes and shapes, what is missing, the
configuration or the error loading would give, and NaN / ±Inf counts (such weights still load;
this is where a user learns about them). Only the neck's tensors are read.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
from typing import Any, Callable, Dict, List, Optional

from . import _lib
from .neck import _check

__all__ = ["report", "inspect", "main"]


def report(path: "str | os.PathLike[str]") -> Dict[str, Any]:
    """The library's report on the checkpoint at `path`, as a dict (see include/sam3_neck.h).
    Raises Sam3NeckError when the file cannot be read as a checkpoint."""
    lib = _lib.get_lib()
    encoded = os.fsencode(os.fspath(path))
    needed = ctypes.c_size_t(0)
    status = lib.sam3_neck_inspect_file(encoded, None, 0, ctypes.byref(needed))
    if status != _lib.OK and needed.value == 0:
        _check(status, "sam3_neck_inspect_file")  # the file itself failed
    buf = ctypes.create_string_buffer(needed.value)
    _check(lib.sam3_neck_inspect_file(encoded, buf, needed.value, ctypes.byref(needed)), "sam3_neck_inspect_file")
    return json.loads(buf.value.decode("utf-8"))


def inspect(path: str, out: Callable[[str], Any] = print) -> int:
    """Prints the report; returns 0 when at least one complete, loadable neck was found, else 1."""
    r = report(path)
    out(f"{path}: {r['format']}, {r['tensor_count']} tensors")
    if not r["necks"]:
        out(
            "no neck found (looked for the detection neck 'convs' / 'fpn_layers' and the tracker "
            "neck 'sam2_convs' / 'tracker_neck.fpn_layers' under the known prefixes)"
        )
    ok = False
    neck_tensors = 0
    kinds = [n["neck"] for n in r["necks"]]
    for n in r["necks"]:
        total = len(n["tensors"]) + len(n["missing"])
        state = "complete" if n["complete"] else f"incomplete, missing {n['missing']}"
        out(
            f"{n['neck']} neck ({n['scheme']} names) under prefix '{n['prefix']}': "
            f"{len(n['tensors'])} of {total} tensors, {state}"
        )
        for t in n["tensors"]:
            flag = ""
            if "error" in t:
                flag = f"  UNREADABLE: {t['error']}"
            elif t.get("nan") or t.get("inf"):
                flag = f"  NON-FINITE: {t['nan']} NaN, {t['inf']} Inf"
            elif "nan" not in t:
                flag = "  (dtype not readable by the neck)"
            out(f"  {t['name']:<60} {t['dtype']:<5} {str(t['shape']):<18}{flag}")
        neck_tensors += len(n["tensors"])
        if "error" in n:
            out(f"  does not load: {n['error']}")
        else:
            ok = True
            out(
                f"  trunk_dim {n['trunk_dim']}, d_model {n['d_model']}; load with "
                f"neck={n['neck']!r}" + (f", prefix={n['prefix']!r}" if kinds.count(n["neck"]) > 1 else "")
            )
    out(f"other tensors (not read): {r['tensor_count'] - neck_tensors}")
    return 0 if ok else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", help="a checkpoint: safetensors, PyTorch zip (.pt), or a sharded safetensors index / its folder"
    )
    parser.add_argument("--json", action="store_true", help="print the library's JSON report")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    if args.json:
        print(json.dumps(report(args.file), indent=2))
        return 0
    return inspect(args.file)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam3neck inspect")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)
