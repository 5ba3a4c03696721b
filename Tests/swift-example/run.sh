#!/usr/bin/env bash
# Builds the Swift example (examples/swift: a separate package that depends on this repository's
# `Sam3Neck` product by path) and runs it on a small synthetic checkpoint, checking what it prints.
#   bash Tests/swift-example/run.sh [OUT]        (default .build/swift-example)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" "swift example"
OUT="$(abs_path "${1:-.build/swift-example}")"
mkdir -p "$OUT"
# The checkpoint comes from this checkout's Python package (no native library needed for it).
synthetic_checkpoint "$OUT/neck.safetensors" 2
# SwiftPM does not notice source files added to a dependency it has built before (here, this
# repository by path): start that build afresh when the core's list of files has changed.
files="$(cd "$ROOT" && ls Package.swift Sources/*/*.* Sources/*/*/*.* 2>/dev/null | sha1sum)"
if [ "$(cat examples/swift/.build/sam3neck-sources 2>/dev/null)" != "$files" ]; then
  rm -rf examples/swift/.build
fi
swift build --package-path examples/swift
echo "$files" > examples/swift/.build/sam3neck-sources
BIN="$(swift build --package-path examples/swift --show-bin-path)/neck-example"
"$BIN" "$OUT/neck.safetensors" | tee "$OUT/output.txt"

expected='trunk_dim 64, d_model 32
level 0 (scale 4.0): features [1, 32, 64, 64], position encoding [1, 32, 64, 64]
level 1 (scale 2.0): features [1, 32, 32, 32], position encoding [1, 32, 32, 32]
level 2 (scale 1.0): features [1, 32, 16, 16], position encoding [1, 32, 16, 16]'
[ "$(head -n 4 "$OUT/output.txt")" = "$expected" ] ||
  fail "its first lines differ from what was expected:"$'\n'"$expected"
grep -q '^refused: input has 3 floats but the plan was compiled for \[B, C, H, W\] = \[1, 64, 16, 16\] (NCHW), 16384 floats$' "$OUT/output.txt" \
  || fail "no 'refused:' line for the wrong-sized input"
echo "swift example: built against the Sam3Neck product and ran"
