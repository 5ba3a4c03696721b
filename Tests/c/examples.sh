#!/usr/bin/env bash
# Builds and runs the README's examples (examples/example.c and examples/example.py) on a small
# synthetic checkpoint, so the README shows code that is known to work.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${1:-.build/examples}"
mkdir -p "$OUT"
bash Tests/c/soname_link.sh .build/release/libsam3neck.so
python3 -c "from sam3neck import checkpoint; checkpoint.write_synthetic_checkpoint('$OUT/neck.safetensors', 64, 32, seed=1)"
cc -std=c99 -Wall -Wextra -Werror -I include examples/example.c -L .build/release -lsam3neck \
   -Wl,-rpath,"$ROOT/.build/release" -o "$OUT/example"
"$OUT/example" "$OUT/neck.safetensors"
python3 examples/example.py "$OUT/neck.safetensors"
echo "examples: C and Python examples ran"
