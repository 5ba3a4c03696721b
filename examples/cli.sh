#!/usr/bin/env bash
# The command-line examples of README.md and docs/python.md, run by python/tests/test_readme_snippets.py.
# Usage: examples/cli.sh DIR, where DIR holds sam3.safetensors, feats.npy and a folder features/
# of .npy files; the outputs land in DIR.
set -euo pipefail
cd "$1"
# The installed `sam3neck` script is `python3 -m sam3neck`; this runs the package on PYTHONPATH.
sam3neck() { "${PYTHON:-python3}" -m sam3neck "$@"; }

sam3neck run --weights sam3.safetensors feats.npy feats.npz --png feats.png
sam3neck run --weights sam3.safetensors features/ pyramids/ --levels 0,1,2
sam3neck run --weights sam3.safetensors --input features/ --out pyramids/ --levels 0,1,2  # flags work too
sam3neck run --weights sam3.safetensors feats.npy tokens.npz --output-dtype bfloat16 --output-layout sequence  # [h*w, d] tokens, bfloat16 bits
