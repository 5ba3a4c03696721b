#!/usr/bin/env bash
# Builds and runs the C and Python examples (examples/example.c and examples/example.py) on a small
# synthetic checkpoint, so the docs show code that is known to work.
#   Tests/c/examples.sh [OUT]          (default .build/examples)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" examples
OUT="$(abs_path "${1:-.build/examples}")"
require_lib
mkdir -p "$OUT"
synthetic_checkpoint "$OUT/neck.safetensors" 1
cc -std=c99 "${C_WARN[@]}" examples/example.c "${LINK_RELEASE[@]}" -o "$OUT/example"
"$OUT/example" "$OUT/neck.safetensors"
py examples/example.py "$OUT/neck.safetensors"
echo "examples: C and Python examples ran"
