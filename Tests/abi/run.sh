#!/usr/bin/env bash
# A program compiled against each kept release header (Tests/abi/sam3_neck-0.2.0.h, -0.3.0.h, verbatim) runs
# against the current library: additions to the ABI keep old programs working.
#   bash Tests/abi/run.sh FIXTURE_DIR     (fixtures of Tests/c/make_fixtures.py; run from the root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
FIXTURES="${1:-.build/ctest/fixtures}"
OUT=.build/abi-test
mkdir -p "$OUT"
for version in 0.2.0 0.3.0; do
  cc -std=c99 -Wall -Wextra -Werror -pedantic -I Tests/abi -DOLD_HEADER="\"sam3_neck-$version.h\"" \
     Tests/abi/old_header_program.c -o "$OUT/old_header_program-$version" \
     -L .build/release -lsam3neck -Wl,-rpath,"$ROOT/.build/release" -lm
  "$OUT/old_header_program-$version" "$FIXTURES" > "$OUT/log-$version.txt" \
    || { cat "$OUT/log-$version.txt"; echo "abi: the $version program FAILED"; exit 1; }
  tail -1 "$OUT/log-$version.txt"
  echo "abi: a program built against the $version header runs against this library"
done
