"""Writes the API fuzzer's seed corpus (Tests/fuzz/api-corpus): programs of C ABI calls in the
encoding of Sources/sam3neck-api-fuzz/ApiFuzz.swift (one byte per operation, low 4 bits the verb,
bit 7 the handle slot, then the operation's argument bytes).

    python3 Tests/fuzz/make_api_seeds.py [OUTDIR]

Deterministic; the seeds are committed, this script is how they were made.
"""

import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "api-corpus")
os.makedirs(out, exist_ok=True)

SLOT1 = 0x80


def load(variant, kind=1, prefix=0, slot=0):
    """variant: C/d by variant % 4, dtype by variant // 4 % 3, prefix by // 12, tracker neck by // 24.
    kind 0: NULL params; 1, 4: the checkpoint's neck; 2: the other; 3: a bad kind. prefix 0: NULL,
    1: the right one, 2: a wrong one."""
    return bytes([0 | slot, variant, kind, prefix])


def load_mutated(variant, edits, truncate=None, slot=0):
    b = bytes([2 | slot, variant, 1, 0, len(edits) - 1])
    for offset, value in edits:
        b += bytes([offset & 0xFF, offset >> 8, value])
    return b + (bytes([0]) if truncate is None else bytes([200, truncate & 0xFF, truncate >> 8]))


def params(h=8, w=8, batch=1, layout=0, mask=15, threads=2, precision=0, null=False):
    """Valid values, encoded as the decoder picks them (bytes < 224 index the valid list)."""
    if null:
        return bytes([0])
    return bytes([1, batch - 1, h - 1, w - 1, layout, mask - 1, [0, 1, 2, 3, 4, 7].index(threads), precision])


def compile_(slot=0, **kw):
    return bytes([4 | slot]) + params(**kw)


def compile_io(in_dtype=0, out_dtype=0, out_layout=0, size_choice=0, tail=0, slot=0, **kw):
    """size_choice: 0-4 struct_size 16, 5: 12, 6: 0, 7: 20 (zero tail), 8: 24 (a non-zero byte
    at 16 + tail % 8), 9: 4097."""
    return bytes([5 | slot]) + params(**kw) + bytes([1, in_dtype, out_dtype, out_layout, size_choice, tail])


def run(io=False, input_choice=0, seed=7, levels=(0, 0, 0, 0), arrays=0, slot=0):
    """input_choice: 0-10 exact, 11 one more, 12 one less, 13 none, 14 SIZE_MAX, 15 NULL. Per level:
    0-9 its need, 10 more, 11 one less, 12 NULL, 13 another level's buffer, 14 misaligned, 15 the
    input. arrays 250: outputs NULL, 251: counts NULL."""
    return bytes([(7 if io else 6) | slot, input_choice, seed, *levels, arrays])


def shapes(level, null=0, slot=0):
    return bytes([8 | slot, level + 1, null])


def counts(nulls=0, slot=0):
    return bytes([9 | slot, nulls])


def pos(level, choice=0, io=False, slot=0):
    return bytes([(11 if io else 10) | slot, level + 1, choice])


def get_params(choice=0, slot=0):
    return bytes([12 | slot, choice])


def tensor(index, choice=0, slot=0):
    return bytes([13 | slot, index + 1, choice])


def env(value):  # 0 unset, 1 generic, 2 bogus
    return bytes([14, value])


def misc(choice, extra=None):
    """0: free(NULL); 1: load_memory(NULL data); 2: load_memory(out NULL); 3: a size too small for
    a header (extra % 8); 4: versions and status_string(extra * 99); 5-7: compile(NULL)."""
    return bytes([15, choice] + ([] if extra is None else [extra]))


FREE = bytes([3])

seeds = {
    "basic": load(0)
    + compile_(precision=1)
    + run()
    + run(io=True)
    + b"".join(shapes(l) for l in range(-1, 5))
    + counts()
    + pos(0)
    + pos(3, 5)
    + get_params()
    + tensor(0)
    + tensor(21, 3)
    + FREE,
    "io-types": load(5 + 4)
    + compile_io(in_dtype=1, out_dtype=2, out_layout=1, h=5, w=6, mask=13)
    + run(io=True)
    + run()
    + pos(1, io=True)
    + get_params(2)
    + shapes(1)
    + compile_io(in_dtype=2, out_dtype=1, out_layout=2, size_choice=7, layout=1, batch=2, h=3, w=4)
    + run(io=True, levels=(10, 0, 0, 10))
    + shapes(0)
    + pos(2, 5, io=True),
    "refusals": load(1)
    + counts()
    + run()
    + shapes(0)
    + compile_(h=1, w=1)
    + compile_io(size_choice=8, tail=3)
    + counts()
    + compile_io(size_choice=5)
    + compile_io(size_choice=9)
    + env(2)
    + compile_(precision=2)
    + env(1)
    + compile_(precision=2)
    + counts()
    + env(0)
    + compile_(mask=3)
    + run(input_choice=11)
    + run(input_choice=14)
    + run(levels=(11, 0, 0, 0))
    + run(levels=(0, 13, 0, 0))
    + run(levels=(0, 0, 14, 0))
    + run(levels=(15, 0, 0, 0))
    + run(input_choice=15)
    + run(arrays=250)
    + run(arrays=251)
    + pos(0, 6)
    + pos(0, 7)
    + tensor(-1)
    + tensor(4, 4)
    + tensor(5, 5)
    + misc(1)
    + misc(2)
    + misc(3, 5)
    + misc(4, 3)
    + misc(0),
    "mutated": load_mutated(2, [(3, 0x7B), (200, 0x31)])
    + compile_(h=4, w=4)
    + run()
    + load_mutated(12 + 3, [(900, 0xFF), (901, 0x7F)], slot=SLOT1)
    + compile_(slot=SLOT1)
    + run(slot=SLOT1)
    + load_mutated(1, [(0, 0)], truncate=300)
    + tensor(2),
    "two-slots": load(3)
    + load(3 + 24, kind=1, prefix=1, slot=SLOT1)
    + compile_(slot=SLOT1, threads=1, batch=2)
    + run()
    + run(slot=SLOT1)
    + FREE
    + run(slot=SLOT1, io=True)
    + shapes(2, slot=SLOT1)
    + get_params(1, slot=SLOT1)
    + load(3 + 24, kind=0)
    + load(3 + 24, kind=2)
    + load(3 + 24, kind=3)
    + load(3 + 12, prefix=2)
    + load(3 + 12, prefix=1)
    + compile_(null=True)
    + counts()
    + FREE,
    # level 0 not compiled: its 8-element buffer is ignored, so level 1 "aliasing the previous
    # buffer" must alias no ignored one (the harness once did, and the library rightly wrote past it)
    "ignored-level": load(0)
    + compile_(h=7, w=7, mask=14, threads=4, precision=1)
    + run(levels=(0, 13, 6, 6))
    + run(levels=(12, 0, 13, 13)),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
