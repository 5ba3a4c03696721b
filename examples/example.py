"""The Python example (docs/python.md): load, compile, run, read the pyramid."""

import sys

import numpy as np
import sam3neck

weights = sys.argv[1]  # sam3.pt, a safetensors file (e.g. from `make demo`) or a sharded index
with sam3neck.Neck(weights) as neck:
    print(neck.trunk_dim, neck.d_model, neck.scales)  # 1024 256 (4.0, 2.0, 1.0, 0.5)
    neck.compile(height=72, width=72, batch=1, layout="NCHW", levels=(0, 1, 2))
    x = np.random.default_rng(0).standard_normal((1, neck.trunk_dim, 72, 72), dtype=np.float32)
    for level in neck.run(x):
        print(level.level, level.scale, level.features.shape, level.pos.shape)
