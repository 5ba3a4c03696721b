"""Writes the fuzzer's seed corpus (Tests/fuzz/corpus): tiny checkpoints in the real layout.

    python3 Tests/fuzz/make_seeds.py [OUTDIR]

Deterministic; the seeds are committed, this script is how they were made.
"""

import json
import os
import sys

from sam3neck import checkpoint

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
os.makedirs(out, exist_ok=True)
for dtype in ("F32", "F16", "BF16"):
    checkpoint.write_synthetic_checkpoint(
        os.path.join(out, f"neck-c4-d2-{dtype.lower()}.safetensors"),
        trunk_dim=4,
        d_model=2,
        seed=1,
        dtype=dtype,
        extras=False,
    )
checkpoint.write_synthetic_checkpoint(
    os.path.join(out, "neck-c4-d2-extras.safetensors"), trunk_dim=4, d_model=2, seed=2, prefix="vision_backbone."
)
with open(os.path.join(out, "header-only.safetensors"), "wb") as f:
    header = b'{"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    f.write(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")

# PyTorch zip archives (the test suite's writer: protocol-2 pickle, stored entries, a wrapper and a
# complex tensor), and one written by real PyTorch when it is installed.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python", "tests"))
import numpy as np  # noqa: E402
import torchzip  # noqa: E402

neck = {"vision_backbone." + k: v for k, v in checkpoint.synthetic_neck(4, 2, seed=3).items()}
torchzip.write_checkpoint(os.path.join(out, "neck-c4-d2.pt"), neck)
torchzip.write_checkpoint(
    os.path.join(out, "neck-c4-d2-wrapped.pt"), {**neck, "freqs_cis": np.ones(2, np.complex64)}, wrap="model"
)
try:
    import torch
except ImportError:
    torch = None
if torch is not None and not os.path.exists(os.path.join(out, "neck-c4-d2-torch.pt")):
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in neck.items()}
    k = "vision_backbone.convs.1.conv_3x3.weight"
    sd[k] = sd[k].transpose(0, 1).contiguous().transpose(0, 1)  # a strided view
    torch.save({"model": sd}, os.path.join(out, "neck-c4-d2-torch.pt"))

# Structure-aware seeds (see Sources/sam3neck-fuzz/Fuzz.swift): "S3PK" + a pickle that the harness
# wraps into an archive with storages "0".."3" of 64 floats; "S3SH" + index JSON + NUL + one shard.
shapes = checkpoint.neck_tensor_shapes(4, 2)
refs = {
    f"convs.{name}": torchzip.TensorRef(str(k % 4), "FloatStorage", 64, shape, torchzip.contiguous(shape))
    for k, (name, shape) in enumerate(shapes.items())
}


def seed(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


seed("pickle-neck", b"S3PK" + torchzip.state_dict_pickle(refs))
odd = dict(refs)
w = "convs.2.conv_1x1.weight"
odd[w] = torchzip.TensorRef("1", "FloatStorage", 64, shapes["2.conv_1x1.weight"], (4, 1, 2**63 - 1, 0))
seed("pickle-huge-stride", b"S3PK" + torchzip.state_dict_pickle(odd))
odd[w] = torchzip.TensorRef("1", "FloatStorage", 1, (2, 2**40, 1, 1), (0, 0, 0, 0))
seed("pickle-expanded", b"S3PK" + torchzip.state_dict_pickle(odd))
seed("pickle-deep-tuples", b"S3PK\x80\x02N" + b"\x85" * 300 + b".")
seed("pickle-deep-lists", b"S3PK\x80\x02" + b"]" * 300 + b"a" * 299 + b".")
seed("pickle-memo-cycle", b"S3PK\x80\x02]q\x00h\x00a.")
shard = checkpoint.safetensors_bytes(checkpoint.synthetic_neck(4, 2, seed=4))
for target in ("a", "link-in", "link-out", "fifo", "folder"):
    index = json.dumps({"weight_map": {f"convs.{n}": f"{target}.safetensors" for n in shapes}}).encode()
    seed(f"sharded-{target}", b"S3SH" + index + b"\0" + shard)
