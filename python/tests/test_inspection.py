"""`python -m sam3neck inspect`: finds the neck, its prefix, dtypes and shapes; flags NaN/Inf
weights, which still load (weights are not ours to judge)."""

import json
import subprocess
import sys

import numpy as np

from sam3neck import Neck, checkpoint, inspection


def _report(path):
    lines = []
    rc = inspection.inspect(str(path), out=lines.append)
    return rc, "\n".join(lines)


def test_lists_both_necks_with_prefix_dtypes_and_shapes(tmp_path):
    path = tmp_path / "ck.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8, dtype="BF16", prefix="backbone.vision_backbone.")
    rc, text = _report(path)
    assert rc == 0
    assert "sam3 neck (original names) under prefix 'backbone.vision_backbone.': 22 of 22 tensors, complete" in text
    assert "sam2 neck (original names) under prefix 'backbone.vision_backbone.': 22 of 22 tensors, complete" in text
    assert "backbone.vision_backbone.convs.0.dconv_2x2_0.weight" in text and "BF16" in text
    assert "[16, 8, 2, 2]" in text and "trunk_dim 16, d_model 8" in text
    assert "NON-FINITE" not in text


def test_flags_non_finite_weights_that_still_load(tmp_path):
    tensors = checkpoint.synthetic_neck(16, 8)
    tensors["convs.1.conv_3x3.weight"][0, 0, 0, 0] = np.nan
    tensors["convs.2.conv_1x1.bias"][1] = -np.inf
    path = tmp_path / "nan.safetensors"
    checkpoint.save_safetensors(path, tensors)
    rc, text = _report(path)
    assert rc == 0
    assert "convs.1.conv_3x3.weight" in text and "NON-FINITE: 1 NaN, 0 Inf" in text
    assert "NON-FINITE: 0 NaN, 1 Inf" in text
    with Neck(path) as neck:  # loads as it is
        assert neck.d_model == 8


def test_incomplete_or_absent_neck_is_reported(tmp_path):
    tensors = checkpoint.synthetic_neck(16, 8)
    del tensors["convs.3.conv_3x3.bias"]
    path = tmp_path / "part.safetensors"
    checkpoint.save_safetensors(path, tensors)
    rc, text = _report(path)
    assert rc == 1 and "missing ['convs.3.conv_3x3.bias']" in text
    assert "does not load: " in text and "missing tensor 'convs.3.conv_3x3.bias'" in text
    other = tmp_path / "none.safetensors"
    checkpoint.save_safetensors(other, {"x": np.zeros(2, np.float32)})
    rc, text = _report(other)
    assert rc == 1 and "no neck found" in text


def test_unreadable_file_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    p = subprocess.run([sys.executable, "-m", "sam3neck", "inspect", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "bad.safetensors" in p.stderr and "not a recognised checkpoint" in p.stderr


def test_cli(tmp_path):
    path = tmp_path / "ck.safetensors"
    checkpoint.write_synthetic_checkpoint(path, 16, 8)
    p = subprocess.run([sys.executable, "-m", "sam3neck", "inspect", str(path)], capture_output=True, text=True)
    assert p.returncode == 0 and "22 of 22 tensors, complete" in p.stdout
    p = subprocess.run(
        [sys.executable, "-m", "sam3neck", "inspect", "--json", str(path)], capture_output=True, text=True
    )
    assert p.returncode == 0 and json.loads(p.stdout)["necks"][0]["trunk_dim"] == 16
