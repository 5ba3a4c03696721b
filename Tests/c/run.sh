#!/usr/bin/env bash
# Builds and runs the C API test (Tests/c/test_api/*.c, one program) as C99 and as C++17.
#
#   Tests/c/run.sh [BUILD_DIR]          (default /tmp/sam3neck-ctest; relative: the repository root's)
#
# Needs the library already built at .build/release/libsam3neck.so, a C and a C++ compiler, and
# python3 with NumPy (the fixtures come from Tests/c/make_fixtures.py and the package in python/).
# With SAM3NECK_VALGRIND=1 and valgrind installed, the C binary also runs under
#   valgrind --error-exitcode=1 --leak-check=full --suppressions=Tests/c/valgrind.supp
# Exits nonzero on any failure.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" run.sh
BUILD="$(abs_path "${1:-/tmp/sam3neck-ctest}")"
CC="${CC:-cc}"
CXX="${CXX:-c++}"

require_lib
mkdir -p "$BUILD" || exit 1
failed=0

step "compile as C99 -> $BUILD/test_api_c"
"$CC" -std=c99 "${C_WARN[@]}" "${C_TEST_SOURCES[@]}" -o "$BUILD/test_api_c" "${LINK_RELEASE[@]}" \
  -lm -pthread || fail "C compile failed"

step "compile as C++17 -> $BUILD/test_api_cpp"
"$CXX" -std=c++17 "${C_WARN[@]}" -x c++ "${C_TEST_SOURCES[@]}" -x none -o "$BUILD/test_api_cpp" \
  "${LINK_RELEASE[@]}" -lm -pthread || fail "C++ compile failed"

step "fixtures -> $BUILD/fixtures"
make_fixtures "$BUILD/fixtures" || fail "making fixtures failed"

step "run the C binary"
if ! "$BUILD/test_api_c" "$BUILD/fixtures"; then
  echo "run.sh: C test FAILED" >&2
  failed=1
fi

step "run the C++ binary"
if ! "$BUILD/test_api_cpp" "$BUILD/fixtures" > "$BUILD/test_api_cpp.log" 2>&1; then
  cat "$BUILD/test_api_cpp.log"
  echo "run.sh: C++ test FAILED" >&2
  failed=1
else
  tail -n 1 "$BUILD/test_api_cpp.log"
fi

if [ "${SAM3NECK_VALGRIND:-0}" = "1" ]; then
  if command -v valgrind > /dev/null 2>&1; then
    step "run the C binary under valgrind"
    # Tests/c/valgrind.supp: only "possibly lost" process-lifetime blocks of the Swift runtime
    # and of libdispatch's worker threads (see the file).
    if ! SAM3NECK_UNDER_VALGRIND=1 valgrind --error-exitcode=1 --leak-check=full --suppressions=Tests/c/valgrind.supp \
        "$BUILD/test_api_c" "$BUILD/fixtures" > "$BUILD/valgrind.log" 2>&1; then
      grep -v '^PASS ' "$BUILD/valgrind.log"
      echo "run.sh: valgrind run FAILED (full log: $BUILD/valgrind.log)" >&2
      failed=1
    else
      grep -E 'passed, .* failed|ERROR SUMMARY|definitely lost|indirectly lost|possibly lost' \
        "$BUILD/valgrind.log"
    fi
  else
    echo "run.sh: SAM3NECK_VALGRIND=1 but valgrind is not installed; skipped" >&2
  fi
fi

echo
if [ "$failed" -ne 0 ]; then
  echo "run.sh: FAILED"
  exit 1
fi
echo "run.sh: all C API tests passed"
exit 0
