"""Peak resident memory of ordinary use in a fresh Python process (issue 12's measure): load,
compile (batch 1, 72x72, all levels, PRECISION: default unless given), three runs into fresh
outputs (one set alive at a time), then the smallest level's position encoding read once. Prints
VmHWM / VmRSS after each step.

    PYTHONPATH=python SAM3NECK_LIBRARY=.build/release/libsam3neck.so python3 bench/ordinary_use_rss.py WEIGHTS [PRECISION]
"""

import sys
import numpy as np
import sam3neck
import time

w = sys.argv[1]
precision = sys.argv[2] if len(sys.argv) > 2 else "default"


def hwm():
    for l in open("/proc/self/status"):
        if l.startswith(("VmHWM", "VmRSS")):
            print(" ", l.strip(), end="")
    print()


x = np.random.default_rng(0).standard_normal((1, 1024, 72, 72), dtype=np.float32)
print("start", end="")
hwm()
neck = sam3neck.Neck(w)
print("load", end="")
hwm()
t = time.perf_counter()
neck.compile(height=72, width=72, batch=1, precision=precision)
print(f"compile {1e3 * (time.perf_counter() - t):.0f} ms", end="")
hwm()
for i in range(3):
    levels = neck.run(x)
    del levels
levels = neck.run(x)
p = levels[-1].pos
print("runs", end="")
hwm()
