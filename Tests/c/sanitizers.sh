#!/usr/bin/env bash
# The C test program under the sanitizers (after Tests/c/run.sh has written the fixtures to
# FIXTURES, default .build/ctest/fixtures):
#   - AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer (gcc), against the release
#     library: leaks of the library's own allocations are caught too (malloc is intercepted);
#   - ThreadSanitizer (the Swift toolchain's clang), against a debug library built with
#     `swift build --sanitize=thread`, so races in the Swift code of concurrent runs are seen.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" sanitizers
FIXTURES="$(abs_path "${1:-.build/ctest/fixtures}")"
OUT=.build/csan
SWIFT_LIBS="$(dirname "$(dirname "$(command -v swift)")")/lib/swift/linux"
require_lib
mkdir -p "$OUT"

echo "== C test under AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer"
cc -std=c99 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
   "${C_WARN[@]}" "${C_TEST_SOURCES[@]}" -o "$OUT/test_api_asan" "${LINK_RELEASE[@]}" -lm -pthread
ASAN_OPTIONS=detect_leaks=1 "$OUT/test_api_asan" "$FIXTURES" > "$OUT/asan.log" 2>&1 || {
  tail -40 "$OUT/asan.log"; fail "ASan/UBSan/LSan run failed"; }
tail -1 "$OUT/asan.log"

echo "== C test under ThreadSanitizer (library built with --sanitize=thread)"
swift build --sanitize=thread --scratch-path .build-tsan --product sam3neck 2>&1 | tail -1
bash Tests/c/soname_link.sh .build-tsan/debug/libsam3neck.so
clang -std=c99 -g -O1 -fsanitize=thread "${C_WARN[@]}" "${C_TEST_SOURCES[@]}" \
   -o "$OUT/test_api_tsan" -L .build-tsan/debug -lsam3neck -L "$SWIFT_LIBS" -ldispatch -lBlocksRuntime \
   -Wl,-rpath,"$ROOT/.build-tsan/debug" -Wl,-rpath,"$SWIFT_LIBS" -lm -pthread
TSAN_OPTIONS=halt_on_error=1 "$OUT/test_api_tsan" "$FIXTURES" > "$OUT/tsan.log" 2>&1 || {
  tail -40 "$OUT/tsan.log"; fail "TSan run failed"; }
if grep -q "WARNING: ThreadSanitizer" "$OUT/tsan.log"; then
  grep -A20 "WARNING: ThreadSanitizer" "$OUT/tsan.log" | head -60; fail "data race reported"
fi
tail -1 "$OUT/tsan.log"
echo "sanitizers: C test clean under ASan, UBSan, LSan and TSan"
