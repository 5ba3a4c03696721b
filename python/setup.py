"""Build hooks for the wheel: the package's metadata is in pyproject.toml.

A wheel (`pip wheel ./python`, `pip install ./python`) carries its own copy of the native library,
`sam3neck/libsam3neck.so`, so the installed package needs nothing from this checkout:

* by default the library is built here, from the repository that holds this `python/` folder,
  with `swift build -c release -Xswiftc -static-stdlib` (the Swift runtime linked in, so the copy
  depends only on OpenBLAS and the C/C++ runtime);
* with `SAM3NECK_LIBRARY_PREBUILT=/path/to/libsam3neck.so` that file is copied instead (CI reuses
  the build it already has; no Swift toolchain is needed then).

An editable install (`pip install -e python`) builds nothing: the package then finds the library
through `$SAM3NECK_LIBRARY` or the repository's `.build/release/`, as `sam3neck/_lib.py` says.

The wheel's tag is `py3-none-<platform>`: the library is loaded with ctypes, so any Python 3 of
the platform can use it, but it is machine code of one platform, so the wheel is not `any`.
setuptools' build folder goes to the repository's `.build/python/` (ignored by git) rather than
`python/build/`, so a build leaves nothing behind in the source tree.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIBRARY = "libsam3neck.so"
SWIFT_BUILD = ["build", "-c", "release", "-Xswiftc", "-static-stdlib"]


def _built_library() -> Path:
    """The library to bundle: $SAM3NECK_LIBRARY_PREBUILT, or a fresh release build of ROOT."""
    prebuilt = os.environ.get("SAM3NECK_LIBRARY_PREBUILT")
    if prebuilt:
        path = Path(prebuilt).expanduser()
        if not path.is_file():
            raise SystemExit(f"SAM3NECK_LIBRARY_PREBUILT is set to {prebuilt!r}, but no such file exists")
        print(f"sam3neck: bundling the prebuilt library {path}", flush=True)
        return path
    if not (ROOT / "Package.swift").is_file():
        raise SystemExit(
            f"sam3neck: cannot build the native library: {ROOT / 'Package.swift'} does not exist.\n"
            "The wheel is built from a checkout of the repository (pip wheel ./python), not from an\n"
            "sdist; or set SAM3NECK_LIBRARY_PREBUILT to an already built libsam3neck.so."
        )
    swift = shutil.which(os.environ.get("SWIFT", "swift"))
    if swift is None:
        raise SystemExit(
            "sam3neck: building the wheel needs the Swift toolchain (`swift` on PATH) to build "
            "libsam3neck.so; or set SAM3NECK_LIBRARY_PREBUILT to an already built libsam3neck.so."
        )
    command = [swift, *SWIFT_BUILD]
    print(f"sam3neck: building the native library in {ROOT}: {' '.join(command)}", flush=True)
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"sam3neck: `{' '.join(command)}` failed with exit status {result.returncode}")
    bin_dir = subprocess.run(
        [swift, *SWIFT_BUILD, "--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    path = Path(bin_dir) / LIBRARY
    if not path.is_file():
        raise SystemExit(f"sam3neck: the Swift build succeeded but {path} does not exist")
    return path


class BuildPyWithLibrary(build_py):
    """build_py that also puts the native library into the built package (not for editable installs)."""

    def run(self):
        if self.editable_mode:
            # The editable package is the source folder itself; the library stays where it is built.
            super().run()
            return
        # A build folder kept from an earlier build must not leak old files into this wheel.
        shutil.rmtree(Path(self.build_lib) / "sam3neck", ignore_errors=True)
        super().run()
        source = _built_library()
        target = Path(self.build_lib) / "sam3neck" / LIBRARY
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        os.chmod(target, 0o755)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not self.editable_mode:
            library = os.path.join(self.build_lib, "sam3neck", LIBRARY)
            if library not in outputs:
                outputs.append(library)
        return outputs


class BinaryDistribution(Distribution):
    """Marks the distribution as holding machine code, so that setuptools builds into its
    platform-specific folder and the wheel is not tagged `any` (its files go to platlib)."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """Tags the wheel py3-none-<platform>: binary content, but no dependence on Python's ABI."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


# In a checkout, setuptools' build folder goes next to SwiftPM's (ignored by git), not python/build/.
OPTIONS = {"build": {"build_base": str(ROOT / ".build" / "python")}} if (ROOT / "Package.swift").is_file() else {}

setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel}, options=OPTIONS)
