#!/usr/bin/env bash
# Builds the Swift example (examples/swift: a separate package that depends on this repository's
# `Sam3Neck` product by path) and runs it on a small synthetic checkpoint, checking what it prints.
#   bash Tests/swift-example/run.sh [OUT]        (default .build/swift-example)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${1:-.build/swift-example}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
# The checkpoint comes from this checkout's Python package (no native library needed for it).
PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -c \
  "from sam3neck import checkpoint; checkpoint.write_synthetic_checkpoint('$OUT/neck.safetensors', 64, 32, seed=2)"
swift build --package-path examples/swift
BIN="$(swift build --package-path examples/swift --show-bin-path)/neck-example"
"$BIN" "$OUT/neck.safetensors" | tee "$OUT/output.txt"

expected='trunk_dim 64, d_model 32
level 0 (scale 4.0): features [1, 32, 64, 64], position encoding [1, 32, 64, 64]
level 1 (scale 2.0): features [1, 32, 32, 32], position encoding [1, 32, 32, 32]
level 2 (scale 1.0): features [1, 32, 16, 16], position encoding [1, 32, 16, 16]'
if [ "$(head -n 4 "$OUT/output.txt")" != "$expected" ]; then
  echo "swift example: FAIL: its first lines differ from what was expected:" >&2
  echo "$expected" >&2
  exit 1
fi
grep -q '^refused: input has 3 floats but the plan was compiled for \[B, C, H, W\] = \[1, 64, 16, 16\] (NCHW), 16384 floats$' "$OUT/output.txt" \
  || { echo "swift example: FAIL: no 'refused:' line for the wrong-sized input" >&2; exit 1; }
echo "swift example: built against the Sam3Neck product and ran"
