#!/usr/bin/env bash
# A program compiled against the 0.2.0 header (Tests/abi/sam3_neck-0.2.0.h, kept verbatim) runs
# against the current library: additions to the ABI keep old programs working.
#   bash Tests/abi/run.sh FIXTURE_DIR     (fixtures of Tests/c/make_fixtures.py; run from the root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
FIXTURES="${1:-.build/ctest/fixtures}"
OUT=.build/abi-test
mkdir -p "$OUT"
cc -std=c99 -Wall -Wextra -Werror -pedantic -I Tests/abi Tests/abi/old_header_program.c -o "$OUT/old_header_program" \
   -L .build/release -lsam3neck -Wl,-rpath,"$ROOT/.build/release" -lm
"$OUT/old_header_program" "$FIXTURES" > "$OUT/log.txt" || { cat "$OUT/log.txt"; echo "abi: the 0.2.0 program FAILED"; exit 1; }
tail -1 "$OUT/log.txt"
echo "abi: a program built against the 0.2.0 header runs against this library"
