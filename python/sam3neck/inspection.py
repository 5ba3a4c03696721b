"""`python -m sam3neck inspect FILE`: what a safetensors file holds for the neck.

Lists the neck tensors found (for the SAM 3 detection neck, group "convs", and the SAM 2 / tracker
neck, "sam2_convs"), the prefix they sit under, their dtypes and shapes, and flags NaN and ±Inf
values in them (weights are loaded as they are; this is where a user learns about them). Reads
only the header and the neck's tensors.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

import numpy as np

from . import checkpoint, reference

GROUPS = (("sam3", "convs"), ("sam2", "sam2_convs"))


def inspect(path: str, out=print) -> int:
    """Prints the report; returns 0 when a complete neck was found, 1 otherwise."""
    header, start = checkpoint.read_safetensors_file_header(path)
    names = [n for n in header if n != "__metadata__"]
    out(f"{path}: {len(names)} tensors, data from byte {start}"
        + (f", metadata {header['__metadata__']}" if "__metadata__" in header else ""))
    complete = False
    neck_total = set()
    for kind, group in GROUPS:
        found = reference.neck_names(names, group)
        if not found:
            out(f"{kind} neck (group '{group}'): not found")
            continue
        for prefix, canon in found.items():
            missing = [k for k in reference.NECK_TENSORS if k not in canon]
            state = "complete" if not missing else f"incomplete, missing {missing}"
            complete = complete or not missing
            out(f"{kind} neck (group '{group}') under prefix '{prefix}': {len(canon)} of "
                f"{len(reference.NECK_TENSORS)} tensors, {state}")
            values = checkpoint.load_safetensors(path, canon.values())
            for key in reference.NECK_TENSORS:
                if key not in canon:
                    continue
                full = canon[key]
                info = header[full]
                v = values[full]
                nan, inf = int(np.isnan(v).sum()), int(np.isinf(v).sum())
                flag = f"  NON-FINITE: {nan} NaN, {inf} Inf" if nan or inf else ""
                out(f"  {full:<60} {info['dtype']:<5} {str(list(info['shape'])):<18}{flag}")
                neck_total.add(full)
            if not missing:
                c, d = reference.neck_config({k: values[canon[k]] for k in canon})
                out(f"  trunk_dim {c}, d_model {d}")
    out(f"other tensors (not read): {len(names) - len(neck_total)}")
    return 0 if complete else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a safetensors file")
    parser.set_defaults(func=lambda args: inspect(args.file))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam3neck inspect")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)
