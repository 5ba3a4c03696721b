"""Peak resident memory of ordinary use in a fresh Python process (issue 12's measure): load,
compile (batch 1, 72x72, all levels, default precision), three runs into fresh outputs (one set
alive at a time), then the smallest level's position encoding read once. Prints VmHWM / VmRSS
after each step.

    PYTHONPATH=python SAM3NECK_LIBRARY=.build/release/libsam3neck.so python3 bench/ordinary_use_rss.py WEIGHTS
"""
import sys, numpy as np, sam3neck, time
w = sys.argv[1]
def hwm():
    for l in open("/proc/self/status"):
        if l.startswith(("VmHWM", "VmRSS")): print(" ", l.strip(), end="")
    print()
x = np.random.default_rng(0).standard_normal((1, 1024, 72, 72), dtype=np.float32)
print("start", end=""); hwm()
neck = sam3neck.Neck(w); print("load", end=""); hwm()
t = time.perf_counter(); neck.compile(height=72, width=72, batch=1); print(f"compile {1e3*(time.perf_counter()-t):.0f} ms", end=""); hwm()
for i in range(3):
    levels = neck.run(x); del levels
levels = neck.run(x)
p = levels[-1].pos
print("runs", end=""); hwm()
