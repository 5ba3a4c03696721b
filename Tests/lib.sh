# Tests/lib.sh — the prologue the test scripts share. Sourced, never run:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" NAME
#
# NAME starts the script's messages ("NAME: FAIL: ..."). It leaves the script's `set` options alone,
# changes to the repository root (so a relative path given to a test script is the root's), and sets
#   ROOT            the repository root (the folder above Tests/)
#   LIBDIR, LIB     .build/release and the library built there (make lib)
#   PYTHON          ${PYTHON:-python3}
#   C_WARN          the warning flags and the include folder every test program is built with
#   LINK_RELEASE    the flags that link a program against $LIB (with an rpath to it)
#   C_TEST_SOURCES  the files of the C API test program (Tests/c/test_api/*.c, linked into one)
# and these functions:
#   fail MSG...               "NAME: FAIL: MSG" on stderr, exit 1
#   step MSG...               a blank line and "== MSG"
#   abs_path PATH             PATH, absolute (relative: the repository root's)
#   require_lib [LIB]         exit 1 with how to build it unless LIB (default $LIB) exists; then the
#                             soname link next to it (Tests/c/soname_link.sh)
#   py ARGS...                $PYTHON with this checkout's python/ first on PYTHONPATH
#   synthetic_checkpoint PATH SEED   the small checkpoint the examples run on (trunk_dim 64, d_model 32)
#   make_fixtures DIR         the C and C++ tests' fixtures (Tests/c/make_fixtures.py) into a fresh DIR

TEST_NAME="${1:?usage: source Tests/lib.sh NAME}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
LIBDIR="$ROOT/.build/release"
LIB="$LIBDIR/libsam3neck.so"
PYTHON="${PYTHON:-python3}"
C_WARN=(-Wall -Wextra -Werror -pedantic -I "$ROOT/include")
LINK_RELEASE=(-L "$LIBDIR" -lsam3neck -Wl,-rpath,"$LIBDIR")
C_TEST_SOURCES=("$ROOT"/Tests/c/test_api/*.c)

fail() {
  echo "$TEST_NAME: FAIL: $*" >&2
  exit 1
}

step() {
  echo
  echo "== $*"
}

abs_path() {
  case "$1" in
    /*) echo "$1" ;;
    *) echo "$ROOT/$1" ;;
  esac
}

require_lib() {
  local lib="${1:-$LIB}"
  if [ ! -f "$lib" ]; then
    echo "$TEST_NAME: $lib not found; build the library first: make lib" \
      "(or swift build -c release -Xswiftc -static-stdlib)" >&2
    exit 1
  fi
  # the library's soname (libsam3neck.so.<ABI>) must resolve in the build tree too
  bash "$ROOT/Tests/c/soname_link.sh" "$lib" || exit 1
}

py() {
  PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$@"
}

synthetic_checkpoint() {
  py -c "from sam3neck import checkpoint; checkpoint.write_synthetic_checkpoint('$1', 64, 32, seed=$2)"
}

make_fixtures() {
  rm -rf "$1" && py "$ROOT/Tests/c/make_fixtures.py" "$1"
}
