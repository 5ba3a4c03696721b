"""The hand-off of docs/python.md: the ViT trunk's output, computed by whatever runs the trunk, into the neck.

    python examples/trunk_handoff.py CHECKPOINT TRUNK_OUTPUT.npy

CHECKPOINT: sam3.pt, the Transformers model.safetensors, a sharded index (or the synthetic one make
demo writes); TRUNK_OUTPUT.npy: the trunk's last feature map, [B, 1024, 72, 72] for 1008 x 1008
images, saved with np.save. python/tests/test_readme_snippets.py runs this file and checks that
docs/python.md shows its block verbatim.
"""

import sys

import numpy as np
import sam3neck

checkpoint, trunk_output = sys.argv[1], sys.argv[2]
# The trunk's output as a NumPy array [B, 1024, 72, 72], e.g. from
#   PyTorch (upstream sam3): model.backbone.vision_backbone.trunk(images)[-1].float().cpu().numpy()
#   ONNX Runtime (a trunk exported to ONNX): session.run(None, {"images": images})[0]
feats = np.ascontiguousarray(np.load(trunk_output), dtype=np.float32)
batch, channels, height, width = feats.shape
with sam3neck.Neck(checkpoint) as neck:
    neck.compile(height=height, width=width, batch=batch)
    for level in neck.run(feats):  # scales 4, 2, 1, 0.5: [B, 256, 288, 288] ... [B, 256, 36, 36]
        print(level.level, level.scale, level.features.shape, level.pos.shape)
