"""The one environment variable the library reads (sam3_neck.h, "Environment"): SAM3NECK_SGEMM_KERNEL.
Each case runs in a fresh interpreter, since the variable is read by the library at compile and a
test must not change the environment of the others."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys, numpy as np, sam3neck
from sam3neck import checkpoint, reference
w = checkpoint.write_synthetic_checkpoint(sys.argv[1], trunk_dim=16, d_model=8, extras=False)
neck = sam3neck.Neck(sys.argv[1])
try:
    neck.compile(height=5, width=6)
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "value_error": isinstance(e, ValueError), "message": str(e)}))
    sys.exit(0)
x = np.random.default_rng(0).standard_normal((1, 16, 5, 6), dtype=np.float32)
out = neck.run(x)
ref = reference.forward(checkpoint.canonical(w), x)
print(json.dumps({"error": None, "kernel": neck.kernel,
                  "worst": max(reference.normalised_error(l.features, r[0]) for l, r in zip(out, ref))}))
"""


def run_with(tmp_path, value):
    env = dict(os.environ)
    if value is None:
        env.pop("SAM3NECK_SGEMM_KERNEL", None)
    else:
        env["SAM3NECK_SGEMM_KERNEL"] = value
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "w.safetensors")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("value", ["bogus", "AVX2", "avx-512", ""])
def test_unknown_kernel_name_is_refused_naming_the_variable(tmp_path, value):
    got = run_with(tmp_path, value)
    assert got["error"] == "InvalidArgumentError" and got["value_error"], got
    assert "SAM3NECK_SGEMM_KERNEL" in got["message"] and "generic, avx2 or avx512" in got["message"], got


@pytest.mark.parametrize("value", [None, "generic"])
def test_documented_values_compile_within_the_bound(tmp_path, value):
    got = run_with(tmp_path, value)
    assert got["error"] is None, got
    assert got["worst"] <= 1e-4, got


def test_named_kernel_is_the_plans_kernel(tmp_path):
    """Neck.kernel (sam3_neck_kernel_name) reports the kernel SAM3NECK_SGEMM_KERNEL names, and a
    documented name when it is unset."""
    assert run_with(tmp_path, "generic")["kernel"] == "generic"
    assert run_with(tmp_path, None)["kernel"] in ("avx512", "avx2", "generic", "openblas", "amx_bf16x3")
