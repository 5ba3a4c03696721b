#!/usr/bin/env bash
# A program compiled against each kept release header (Tests/abi/sam3_neck-0.2.0.h, -0.3.0.h, -0.4.0.h,
# verbatim) runs against the current library: additions to the ABI keep old programs working. Then a
# program whose sam3_neck_io_params has grown (a later header's) meets the header's "Structs" rule.
#   bash Tests/abi/run.sh FIXTURE_DIR     (fixtures of Tests/c/make_fixtures.py; run from the root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
FIXTURES="${1:-.build/ctest/fixtures}"
OUT=.build/abi-test
mkdir -p "$OUT"
for version in 0.2.0 0.3.0 0.4.0; do
  cc -std=c99 -Wall -Wextra -Werror -pedantic -I Tests/abi -DOLD_HEADER="\"sam3_neck-$version.h\"" \
     Tests/abi/old_header_program.c -o "$OUT/old_header_program-$version" \
     -L .build/release -lsam3neck -Wl,-rpath,"$ROOT/.build/release" -lm
  "$OUT/old_header_program-$version" "$FIXTURES" > "$OUT/log-$version.txt" \
    || { cat "$OUT/log-$version.txt"; echo "abi: the $version program FAILED"; exit 1; }
  tail -1 "$OUT/log-$version.txt"
  echo "abi: a program built against the $version header runs against this library"
done
# The layout asserts (SwiftPM compiles them with clang at every build; here with cc too).
cc -std=c11 -Wall -Wextra -Werror -pedantic -c include/abi_layout_check.c -o "$OUT/abi_layout_check.o"
echo "abi: include/abi_layout_check.c's size and offset asserts hold under $(cc --version | head -1)"
cc -std=c99 -Wall -Wextra -Werror -pedantic -I include Tests/abi/grown_struct_program.c -o "$OUT/grown_struct_program" \
   -L .build/release -lsam3neck -Wl,-rpath,"$ROOT/.build/release" -lm
"$OUT/grown_struct_program" "$FIXTURES" > "$OUT/log-grown.txt" \
  || { cat "$OUT/log-grown.txt"; echo "abi: the grown-struct program FAILED"; exit 1; }
tail -1 "$OUT/log-grown.txt"
echo "abi: a grown sam3_neck_io_params is accepted with its new fields zero, refused with one set"
