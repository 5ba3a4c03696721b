"""Writes the fuzzer's seed corpus (Tests/fuzz/corpus): tiny checkpoints in the real layout.

    python3 Tests/fuzz/make_seeds.py [OUTDIR]

Deterministic; the seeds are committed, this script is how they were made.
"""
import os
import sys

from sam3neck import checkpoint

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
os.makedirs(out, exist_ok=True)
for dtype in ("F32", "F16", "BF16"):
    checkpoint.write_synthetic_checkpoint(os.path.join(out, f"neck-c4-d2-{dtype.lower()}.safetensors"),
                                          trunk_dim=4, d_model=2, seed=1, dtype=dtype, extras=False)
checkpoint.write_synthetic_checkpoint(os.path.join(out, "neck-c4-d2-extras.safetensors"),
                                      trunk_dim=4, d_model=2, seed=2, prefix="vision_backbone.")
with open(os.path.join(out, "header-only.safetensors"), "wb") as f:
    header = b'{"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    f.write(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
