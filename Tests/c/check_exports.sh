#!/usr/bin/env bash
# The exported (global, defined) dynamic symbols of libsam3neck.so must be exactly the functions
# declared in include/sam3_neck.h: nothing missing, nothing extra (no Swift symbols leaking out).
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIB="${1:-$ROOT/.build/release/libsam3neck.so}"
declared=$(grep -oE '\bsam3_neck_[a-z_0-9]+[[:space:]]*\(' "$ROOT/include/sam3_neck.h" | tr -d '( ' | sort -u)
exported=$(nm -D --defined-only "$LIB" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sort -u)
if [ "$declared" != "$exported" ]; then
  echo "check_exports: header and library disagree (< header only, > library only):"
  diff <(echo "$declared") <(echo "$exported") || true
  exit 1
fi
echo "check_exports: the library exports exactly the header's $(echo "$declared" | wc -l) functions"
