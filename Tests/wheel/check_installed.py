"""Run by Tests/wheel/test_wheel.sh with the venv's Python (`python -I`, outside the repository):
the installed wheel alone must load a checkpoint, compile, run and match the float64 reference."""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import sam3neck
from sam3neck import checkpoint, reference

# As in python/tests/test_neck.py: normalised max error per level (default precision mode) and
# the position encodings' max absolute error.
TOL = 1e-4
POS_TOL = 1e-5


def inside(path, folder) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def main() -> int:
    prefix = sys.prefix
    for name in ("SAM3NECK_LIBRARY", "PYTHONPATH"):
        assert name not in os.environ, f"{name} is set; the installed package must work without it"
    package = Path(sam3neck.__file__).parent
    assert inside(package, prefix), f"sam3neck imported from {package}, not from the venv {prefix}"
    assert (package / "py.typed").is_file(), f"{package} has no py.typed"
    library = sam3neck.library_path()
    assert inside(library, prefix), f"library {library} is not inside the venv {prefix}"

    c, d, batch, h, w = 16, 8, 2, 6, 5
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny.safetensors")
        checkpoint.write_synthetic_checkpoint(path, c, d, seed=3)
        weights = reference.neck_weights(checkpoint.load_safetensors(path), "convs")
        x = np.random.default_rng(5).standard_normal((batch, c, h, w), dtype=np.float32)
        with sam3neck.Neck(path) as neck:
            assert (neck.trunk_dim, neck.d_model) == (c, d), (neck.trunk_dim, neck.d_model)
            neck.compile(height=h, width=w, batch=batch)
            levels = neck.run(x)
    assert sam3neck.library_path() == library, "the loaded library is not the one library_path() named"
    ref = reference.forward(weights, x)
    assert [lv.level for lv in levels] == [0, 1, 2, 3], [lv.level for lv in levels]
    for lv, (feat, pos) in zip(levels, ref):
        assert lv.features.shape == feat.shape, (lv.level, lv.features.shape, feat.shape)
        err = reference.normalised_error(lv.features, feat)
        perr = float(np.max(np.abs(lv.pos.astype(np.float64) - pos)))
        print(f"level {lv.level}: features {lv.features.shape}, normalised error {err:.2e}, "
              f"position encoding error {perr:.2e}")
        assert err <= TOL, f"level {lv.level}: normalised error {err:.3e} > {TOL:g}"
        assert perr <= POS_TOL, f"level {lv.level}: position encoding error {perr:.3e} > {POS_TOL:g}"
    print(f"library used: {library} (version {sam3neck.library_version()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
