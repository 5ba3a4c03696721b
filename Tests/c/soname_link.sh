#!/usr/bin/env bash
# Makes the soname link next to a freshly built library: libsam3neck.so carries the soname
# libsam3neck.so.<ABI> (Package.swift), so programs linked against the build tree ask the loader for
# that name; this creates DIR/libsam3neck.so.<ABI> -> libsam3neck.so (what ldconfig does for an
# installed copy).
#   Tests/c/soname_link.sh [LIB]          (default .build/release/libsam3neck.so)
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIB="${1:-$ROOT/.build/release/libsam3neck.so}"
soname=$(readelf -d "$LIB" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ -z "$soname" ]; then
  echo "soname_link: $LIB has no SONAME" >&2
  exit 1
fi
if [ "$soname" != "$(basename "$LIB")" ]; then
  ln -sfn "$(basename "$LIB")" "$(dirname "$LIB")/$soname"
fi
