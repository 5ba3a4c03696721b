#!/usr/bin/env bash
# The Python wheel, end to end: build it (bundling an already built libsam3neck.so, as CI would),
# check its tag and contents, install it into a fresh venv outside the repository (numpy from
# PyPI), check that the bundled library needs no Swift runtime, and run a checkpoint through it from
# outside the repository with SAM3NECK_LIBRARY and PYTHONPATH unset.
#   bash Tests/wheel/test_wheel.sh [LIBRARY]     (default .build/release/libsam3neck.so)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIBRARY="$(realpath "${1:-$ROOT/.build/release/libsam3neck.so}")"
PYTHON="${PYTHON:-python3}"
[ -f "$LIBRARY" ] || { echo "test_wheel: no library at $LIBRARY (run: make lib)" >&2; exit 1; }
# `make test` exports these for the other tests; the installed wheel must do without them.
unset SAM3NECK_LIBRARY PYTHONPATH

WORK="$(mktemp -d /tmp/sam3neck-wheel.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "test_wheel: FAIL: $*" >&2; exit 1; }

# What a build must not leave in the source tree (unless it was there before: it is ignored by git).
STALE=()
for p in "$ROOT/python/build" "$ROOT/python/sam3neck/libsam3neck.so"; do [ -e "$p" ] || STALE+=("$p"); done

echo "test_wheel: building the wheel (SAM3NECK_LIBRARY_PREBUILT=$LIBRARY)"
SAM3NECK_LIBRARY_PREBUILT="$LIBRARY" "$PYTHON" -m pip wheel "$ROOT/python" -w "$WORK/dist" --no-deps -q
shopt -s nullglob
wheels=("$WORK"/dist/sam3neck-*.whl)
[ "${#wheels[@]}" = 1 ] || fail "expected one sam3neck wheel in $WORK/dist, found ${#wheels[@]}"
WHEEL="${wheels[0]}"
name="$(basename "$WHEEL")"
echo "test_wheel: built $name"
case "$name" in
  *-none-any.whl) fail "$name is tagged none-any, but it holds a native library" ;;
  *-linux_x86_64.whl|*-linux_aarch64.whl|*manylinux*.whl) ;;
  *) fail "$name does not carry a Linux platform tag" ;;
esac
"$PYTHON" - "$WHEEL" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
missing = [n for n in ("sam3neck/libsam3neck.so", "sam3neck/py.typed", "sam3neck/__init__.py") if n not in names]
if missing:
    sys.exit(f"test_wheel: FAIL: the wheel lacks {missing}")
print(f"test_wheel: the wheel holds sam3neck/libsam3neck.so and sam3neck/py.typed ({len(names)} files)")
PY
for stale in "${STALE[@]}"; do
  [ ! -e "$stale" ] || fail "building the wheel left $stale in the source tree"
done

echo "test_wheel: installing it into a fresh venv ($WORK/venv; numpy from the package index)"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "$WHEEL"
SITE="$("$WORK/venv/bin/python" -I -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
BUNDLED="$SITE/sam3neck/libsam3neck.so"
[ -f "$BUNDLED" ] || fail "the installed package has no $BUNDLED"
echo "test_wheel: ldd $BUNDLED"
ldd "$BUNDLED" | sed 's/^/  /'
if ldd "$BUNDLED" | grep -E 'not found|libswift|libFoundation|libdispatch|libBlocksRuntime'; then
  fail "the bundled library needs a Swift runtime library or something missing (above)"
fi

mkdir -p "$WORK/run"
cp "$ROOT/Tests/wheel/check_installed.py" "$WORK/run/"
cd "$WORK/run"
"$WORK/venv/bin/python" -I check_installed.py
echo "test_wheel: the installed wheel works on its own"
