#!/usr/bin/env bash
# Builds and runs the C++ wrapper test (Tests/cpp/test_wrapper.cpp, testing include/sam3_neck.hpp):
# with $CXX (default c++) and, when installed, clang++, both with -std=c++17 -Wall -Wextra -Werror
# -pedantic; then once more under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer
# (g++), so a double free or a leaked handle in the wrapper fails the run.
#
#   Tests/cpp/run.sh [BUILD_DIR]        (run from anywhere; default .build/cpptest, relative: the root's)
#
# Needs the library built at .build/release/libsam3neck.so and python3 with NumPy (the fixtures come
# from Tests/c/make_fixtures.py). Exits nonzero on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" Tests/cpp/run.sh
BUILD="$(abs_path "${1:-.build/cpptest}")"
CXX="${CXX:-c++}"
FLAGS=(-std=c++17 "${C_WARN[@]}")

require_lib
mkdir -p "$BUILD"

echo "== fixtures -> $BUILD/fixtures"
make_fixtures "$BUILD/fixtures"

# run NAME BINARY [ENV...]: runs the test, keeps its log, prints the summary line or the failures.
run() {
  local name="$1" bin="$2"
  shift 2
  if ! env "$@" "$bin" "$BUILD/fixtures" > "$BUILD/$name.log" 2>&1; then
    grep -v '^PASS ' "$BUILD/$name.log" | tail -40
    fail "$name (log: $BUILD/$name.log)"
  fi
  echo "$name: $(tail -n 1 "$BUILD/$name.log")"
}

echo "== $CXX -std=c++17"
"$CXX" "${FLAGS[@]}" -O2 Tests/cpp/test_wrapper.cpp -o "$BUILD/test_wrapper" "${LINK_RELEASE[@]}"
run test_wrapper "$BUILD/test_wrapper"

if command -v clang++ > /dev/null 2>&1; then
  echo "== clang++ -std=c++17"
  clang++ "${FLAGS[@]}" -O2 Tests/cpp/test_wrapper.cpp -o "$BUILD/test_wrapper_clang" "${LINK_RELEASE[@]}"
  run test_wrapper_clang "$BUILD/test_wrapper_clang"
else
  echo "== clang++ not installed: skipped"
fi

echo "== g++ -std=c++17 -fsanitize=address,undefined (LeakSanitizer on)"
g++ "${FLAGS[@]}" -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer Tests/cpp/test_wrapper.cpp -o "$BUILD/test_wrapper_asan" "${LINK_RELEASE[@]}"
run test_wrapper_asan "$BUILD/test_wrapper_asan" ASAN_OPTIONS=detect_leaks=1
echo "Tests/cpp/run.sh: the C++ wrapper tests passed (g++, clang++, ASan/UBSan/LSan)"
