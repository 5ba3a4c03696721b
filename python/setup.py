"""Build hooks for the wheel and the sdist: the package's metadata is in pyproject.toml, except
its version, which is the library's: the SAM3_NECK_VERSION_MAJOR/_MINOR/_PATCH macros of
include/sam3_neck.h (of the checkout, or of the sdist's native/ copy), read here at build time.

A wheel (`pip wheel ./python`, `pip install ./python`) carries its own copy of the native library,
`sam3neck/libsam3neck.so`, stripped of debug information, so the installed package needs nothing
from this checkout:

* by default the library is built here, from the Swift package of the repository that holds this
  `python/` folder (or, in an sdist, from the copy of it in `native/`), with `swift build -c
  release -Xswiftc -static-stdlib --product sam3neck` (the Swift runtime linked in, so the copy
  depends only on OpenBLAS and the C/C++ runtime);
* with `SAM3NECK_LIBRARY_PREBUILT=/path/to/libsam3neck.so` that file is copied instead (CI reuses
  the build it already has; no Swift toolchain is needed then).

Such a wheel links the system's OpenBLAS (tag `linux_x86_64`). The wheel for PyPI is that wheel
after `auditwheel repair`, which copies OpenBLAS and its own dependencies into it and tags it
`manylinux_2_X` (docs/python.md, "The wheel"; Tests/wheel/test_wheel.sh).

The sdist (`python -m build --sdist python`) holds the Python package plus `native/`: the Swift
package's manifest, sources and headers (Package.swift, Sources/, include/, and
Tests/Sam3NeckTests/, which the manifest names), so `pip install sam3neck-X.tar.gz` builds the
library on a machine with the Swift toolchain and OpenBLAS (libopenblas-dev).

An editable install (`pip install -e python`) builds nothing: the package then finds the library
through `$SAM3NECK_LIBRARY` or the repository's `.build/release/`, as `sam3neck/_lib.py` says.

The wheel's tag is `py3-none-<platform>`: the library is loaded with ctypes, so any Python 3 of
the platform can use it, but it is machine code of one platform, so the wheel is not `any`.
setuptools' build folder goes to the repository's `.build/python/` (ignored by git) rather than
`python/build/`, so a build leaves nothing behind in the source tree.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIBRARY = "libsam3neck.so"
SWIFT_BUILD = ["build", "-c", "release", "-Xswiftc", "-static-stdlib", "--product", "sam3neck"]
#: What of the repository the sdist carries (under native/) to build the library.
NATIVE = ["Package.swift", "Sources", "include", "Tests/Sam3NeckTests"]


def _swift_root() -> Path:
    """The Swift package to build: the checkout around python/, or an sdist's native/."""
    for root in (ROOT, HERE / "native"):
        if (root / "Package.swift").is_file():
            return root
    raise SystemExit(
        f"sam3neck: cannot build the native library: neither {ROOT / 'Package.swift'} nor "
        f"{HERE / 'native' / 'Package.swift'} exists.\nBuild from a checkout of the repository "
        "(pip wheel ./python) or from the sdist; or set SAM3NECK_LIBRARY_PREBUILT to an already "
        "built libsam3neck.so."
    )


def _version() -> str:
    """MAJOR.MINOR.PATCH from the header's version macros, the one place the version is written."""
    header = _swift_root() / "include" / "sam3_neck.h"
    text = header.read_text(encoding="utf-8")
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"^#define SAM3_NECK_VERSION_{part}[ \t]+(\d+)[ \t]*$", text, re.MULTILINE)
        if m is None:
            raise SystemExit(f"sam3neck: {header} does not define SAM3_NECK_VERSION_{part}")
        parts.append(m.group(1))
    return ".".join(parts)


def _built_library() -> Path:
    """The library to bundle: $SAM3NECK_LIBRARY_PREBUILT, or a fresh release build of ROOT."""
    prebuilt = os.environ.get("SAM3NECK_LIBRARY_PREBUILT")
    if prebuilt:
        path = Path(prebuilt).expanduser()
        if not path.is_file():
            raise SystemExit(f"SAM3NECK_LIBRARY_PREBUILT is set to {prebuilt!r}, but no such file exists")
        print(f"sam3neck: bundling the prebuilt library {path}", flush=True)
        return path
    root = _swift_root()
    swift = shutil.which(os.environ.get("SWIFT", "swift"))
    if swift is None:
        raise SystemExit(
            "sam3neck: building the wheel needs the Swift toolchain (`swift` on PATH) to build "
            "libsam3neck.so; or set SAM3NECK_LIBRARY_PREBUILT to an already built libsam3neck.so."
        )
    command = [swift, *SWIFT_BUILD]
    print(f"sam3neck: building the native library in {root}: {' '.join(command)}", flush=True)
    result = subprocess.run(command, cwd=root)
    if result.returncode != 0:
        raise SystemExit(f"sam3neck: `{' '.join(command)}` failed with exit status {result.returncode}")
    bin_dir = subprocess.run(
        [swift, *SWIFT_BUILD, "--show-bin-path"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()
    path = Path(bin_dir) / LIBRARY
    if not path.is_file():
        raise SystemExit(f"sam3neck: the Swift build succeeded but {path} does not exist")
    return path


def _strip(path: Path) -> None:
    """Removes debug information and local symbols from the bundled copy (the exported functions
    stay in the dynamic symbol table). Needs binutils' `strip`."""
    strip = shutil.which(os.environ.get("STRIP", "strip"))
    if strip is None:
        raise SystemExit(
            "sam3neck: `strip` (binutils) is needed to strip the bundled library; install binutils or set STRIP"
        )
    subprocess.run([strip, "--strip-unneeded", str(path)], check=True)


class SdistWithNative(sdist):
    """sdist that also carries the Swift package (under native/), so the sdist can build the library."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if not (ROOT / "Package.swift").is_file():
            raise SystemExit(f"sam3neck: an sdist is made from a checkout (the Swift package is not at {ROOT})")
        native = Path(base_dir) / "native"
        for name in NATIVE:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, native / name, ignore=shutil.ignore_patterns(".build*", "*.o", "__pycache__"))
            else:
                (native / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, native / name)


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
        _strip(target)

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

setup(
    version=_version(),
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel, "sdist": SdistWithNative},
    options=OPTIONS,
)
