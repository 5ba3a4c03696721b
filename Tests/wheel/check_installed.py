"""Run by Tests/wheel/test_wheel.sh with the venv's Python (`python -I`, outside the repository):
the installed wheel alone must load a checkpoint, compile, run and match the float64 reference.

--no-system-openblas: also prove that the OpenBLAS the library runs with is the wheel's own: the
system's libopenblas.so.0 must fail to load (test_wheel.sh hides it in a mount namespace), and
every OpenBLAS mapped into this process (/proc/self/maps) must lie inside the venv, one of them in
the wheel's sam3neck.libs/. --wheel-openblas: only the second half (where no namespace can be made).
--script PATH: also run the installed `sam3neck` console script (--version, run with --png)."""

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import sam3neck
from sam3neck import checkpoint, reference

# The package's bounds: normalised max error per level (default precision mode) and the position
# encodings' max absolute error.
TOL = reference.TOLERANCE["default"]
POS_TOL = reference.POSITION_TOLERANCE


def inside(path, folder) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def mapped_openblas():
    """The files mapped into this process whose name mentions OpenBLAS."""
    with open("/proc/self/maps") as f:
        paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    return sorted(p for p in paths if "openblas" in os.path.basename(p).lower())


def check_no_system_openblas() -> None:
    try:
        ctypes.CDLL("libopenblas.so.0")
    except OSError as e:
        print(f"the system's libopenblas.so.0 does not load here: {e}")
    else:
        raise AssertionError("the system's libopenblas.so.0 loads: it is not hidden")


def check_wheel_openblas(prefix: str) -> None:
    mapped = mapped_openblas()
    print("OpenBLAS mapped into this process:", *mapped, sep="\n  ")
    outside = [p for p in mapped if not inside(p, prefix)]
    assert not outside, f"OpenBLAS mapped from outside the venv {prefix}: {outside}"
    ours = [p for p in mapped if os.sep + "sam3neck.libs" + os.sep in p]
    assert ours, f"no OpenBLAS of the wheel's sam3neck.libs/ is mapped: {mapped}"


def check_script(script: str, path: str, weights) -> None:
    """The console script: --version, then `run` with positional input/output and --png."""
    r = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == f"sam3neck {sam3neck.__version__}\n", (r.returncode, r.stdout, r.stderr)
    folder = os.path.dirname(path)
    x = np.random.default_rng(9).standard_normal((16, 7, 6), dtype=np.float32)
    np.save(os.path.join(folder, "in.npy"), x)
    out, png = os.path.join(folder, "out.npz"), os.path.join(folder, "out.png")
    r = subprocess.run(
        [script, "run", "--weights", path, os.path.join(folder, "in.npy"), out, "--png", png, "--levels", "0,3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    ref = reference.forward(weights, x[None], levels=[0, 3])
    with np.load(out) as z:
        assert sorted(z.files) == ["level0", "level3"], z.files
        for i, (feat, _) in zip((0, 3), ref):
            err = reference.normalised_error(z[f"level{i}"], feat[0])
            assert err <= TOL, f"sam3neck run: level {i}: normalised error {err:.3e}"
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "not a PNG"
    print(f"console script {script}: --version, run (levels 0 and 3 match the reference), --png: ok")
    r = subprocess.run([script, "run"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--weights" in r.stderr, (r.returncode, r.stderr)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-system-openblas", action="store_true")
    parser.add_argument("--wheel-openblas", action="store_true")
    parser.add_argument("--script")
    args = parser.parse_args()
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
        weights = checkpoint.canonical(checkpoint.write_synthetic_checkpoint(path, c, d, seed=3))
        x = np.random.default_rng(5).standard_normal((batch, c, h, w), dtype=np.float32)
        with sam3neck.Neck(path) as neck:
            assert (neck.trunk_dim, neck.d_model) == (c, d), (neck.trunk_dim, neck.d_model)
            neck.compile(height=h, width=w, batch=batch)
            levels = neck.run(x)
        if args.no_system_openblas:
            check_no_system_openblas()
        if args.no_system_openblas or args.wheel_openblas:
            check_wheel_openblas(prefix)
        if args.script:
            check_script(args.script, path, weights)
    assert sam3neck.library_path() == library, "the loaded library is not the one library_path() named"
    ref = reference.forward(weights, x)
    assert [lv.level for lv in levels] == [0, 1, 2, 3], [lv.level for lv in levels]
    for lv, (feat, pos) in zip(levels, ref):
        assert lv.features.shape == feat.shape, (lv.level, lv.features.shape, feat.shape)
        err = reference.normalised_error(lv.features, feat)
        perr = float(np.max(np.abs(lv.pos.astype(np.float64) - pos)))
        print(
            f"level {lv.level}: features {lv.features.shape}, normalised error {err:.2e}, "
            f"position encoding error {perr:.2e}"
        )
        assert err <= TOL, f"level {lv.level}: normalised error {err:.3e} > {TOL:g}"
        assert perr <= POS_TOL, f"level {lv.level}: position encoding error {perr:.3e} > {POS_TOL:g}"
    print(f"library used: {library} (version {sam3neck.library_version()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
