#!/usr/bin/env bash
# Tests `make install` / `make uninstall` and the installed copy alone:
#   1. make install PREFIX=OUT/prefix: the expected files and links; the headers equal include/'s;
#      the library's SONAME is libsam3neck.so.<SAM3_NECK_ABI_VERSION>; ldd lists no Swift runtime
#      library and nothing missing; pkg-config reports the header's version.
#   2. examples/example.c and examples/example.cpp, copied out of the repository and built with
#      `pkg-config --cflags --libs sam3neck` only, run on a small synthetic checkpoint (the one
#      Tests/c/examples.sh writes) with LD_LIBRARY_PATH = the installed lib dir, and resolve
#      libsam3neck to the installed copy.
#   3. the CMake package: Tests/install/cmake (the same two examples, target sam3neck::sam3neck from
#      find_package(sam3neck MAJOR.MINOR CONFIG REQUIRED), CMAKE_PREFIX_PATH = the prefix) configures,
#      builds and runs; docs/c-cpp.md's request, the previous minor and a range up to this version are
#      accepted; the next minor, the next major, 9.0 and a range below this version are refused; the
#      installed tree, moved to another folder, still configures and builds (paths relative to the
#      config file).
#   4. make install DESTDIR=OUT/stage PREFIX=/usr/local: files under the staging root, the .pc file
#      names the final prefix; the C++ example builds against it with PKG_CONFIG_SYSROOT_DIR, and
#      with CMake (CMAKE_PREFIX_PATH = the staged prefix).
#   5. make uninstall (both) removes every installed file.
# Also: docs/c-cpp.md shows both examples exactly as tested.
#
#   Tests/install/run.sh [OUT]          (default .build/install-test; wiped first)
# Needs the library built (make lib), pkg-config, cmake, readelf, cc, c++ and $PYTHON (python3) with NumPy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" test-install
OUT="$(abs_path "${1:-.build/install-test}")"
MAKE="${MAKE:-make}"

pass() { echo "PASS $*"; }
macro() { sed -n "s/^#define SAM3_NECK_$1[[:space:]][[:space:]]*\([0-9][0-9]*\)[[:space:]]*\$/\1/p" include/sam3_neck.h; }
ABI=$(macro ABI_VERSION)
MAJOR=$(macro VERSION_MAJOR)
MINOR=$(macro VERSION_MINOR)
VERSION="$MAJOR.$MINOR.$(macro VERSION_PATCH)"
SONAME="libsam3neck.so.$ABI"
REALNAME="$SONAME.$MINOR.$(macro VERSION_PATCH)"
[ -n "$ABI" ] && [ -n "$MINOR" ] || fail "cannot read the version macros of include/sam3_neck.h"

rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/bin"
PREFIX="$OUT/prefix"

step "make install PREFIX=$PREFIX"
"$MAKE" --no-print-directory install PREFIX="$PREFIX" LDCONFIG= > "$OUT/install.log" 2>&1 ||
  { cat "$OUT/install.log"; fail "make install failed"; }
LIBDIR="$PREFIX/lib"
for f in include/sam3_neck.h include/sam3_neck.hpp lib/pkgconfig/sam3neck.pc \
         lib/cmake/sam3neck/sam3neckConfig.cmake lib/cmake/sam3neck/sam3neckConfigVersion.cmake; do
  [ -f "$PREFIX/$f" ] && [ ! -L "$PREFIX/$f" ] || fail "$PREFIX/$f is not installed"
done
cmp -s include/sam3_neck.h "$PREFIX/include/sam3_neck.h" || fail "installed sam3_neck.h differs"
cmp -s include/sam3_neck.hpp "$PREFIX/include/sam3_neck.hpp" || fail "installed sam3_neck.hpp differs"
[ -f "$LIBDIR/$REALNAME" ] && [ ! -L "$LIBDIR/$REALNAME" ] || fail "$LIBDIR/$REALNAME is not a file"
[ "$(readlink "$LIBDIR/$SONAME")" = "$REALNAME" ] || fail "$LIBDIR/$SONAME is not a link to $REALNAME"
[ "$(readlink "$LIBDIR/libsam3neck.so")" = "$SONAME" ] || fail "$LIBDIR/libsam3neck.so is not a link to $SONAME"
pass "installed: include/sam3_neck.h, include/sam3_neck.hpp, lib/$REALNAME, lib/$SONAME -> $REALNAME, lib/libsam3neck.so -> $SONAME, lib/pkgconfig/sam3neck.pc, lib/cmake/sam3neck/sam3neckConfig{,Version}.cmake"

readelf -d "$LIBDIR/$REALNAME" > "$OUT/readelf.txt"
soname=$(sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p' "$OUT/readelf.txt")
[ "$soname" = "$SONAME" ] || fail "SONAME of the installed library is '$soname', expected $SONAME"
pass "readelf -d: SONAME $soname"

ldd "$LIBDIR/$REALNAME" > "$OUT/ldd.txt" 2>&1 || { cat "$OUT/ldd.txt"; fail "ldd failed"; }
if grep -Eiq 'swift|Foundation|dispatch|BlocksRuntime' "$OUT/ldd.txt"; then
  cat "$OUT/ldd.txt"; fail "the installed library depends on Swift runtime libraries"
fi
if grep -q 'not found' "$OUT/ldd.txt"; then cat "$OUT/ldd.txt"; fail "ldd: a dependency is not found"; fi
pass "ldd: no Swift runtime library, nothing missing ($(awk '{print $1}' "$OUT/ldd.txt" | tr '\n' ' '))"

export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
[ "$(pkg-config --modversion sam3neck)" = "$VERSION" ] || fail "pkg-config --modversion is not $VERSION"
PC_FLAGS=$(pkg-config --cflags --libs sam3neck)
case "$PC_FLAGS" in *"-I$ROOT/include"*|*"$ROOT/.build/release"*) fail "pkg-config flags point into the build tree: $PC_FLAGS" ;; esac
case "$PC_FLAGS" in *"-I$PREFIX/include"*"-L$LIBDIR"*"-lsam3neck"*) ;;
  *) fail "pkg-config --cflags --libs sam3neck gave '$PC_FLAGS'" ;; esac
pass "pkg-config: version $VERSION, flags: $PC_FLAGS"

step "examples built with pkg-config against the installed copy"
# Copies outside the repository, so nothing but the installed headers can be found.
cp examples/example.c examples/example.cpp "$OUT/src/"
# shellcheck disable=SC2086  # the flags are meant to split
cc -std=c99 -Wall -Wextra -Werror -pedantic "$OUT/src/example.c" -o "$OUT/bin/example_c" $PC_FLAGS
# shellcheck disable=SC2086
c++ -std=c++17 -Wall -Wextra -Werror -pedantic "$OUT/src/example.cpp" -o "$OUT/bin/example_cpp" $PC_FLAGS
for bin in example_c example_cpp; do
  if readelf -d "$OUT/bin/$bin" | grep -Eq 'RPATH|RUNPATH'; then fail "$bin has an rpath"; fi
  resolved=$(LD_LIBRARY_PATH="$LIBDIR" ldd "$OUT/bin/$bin" | awk '$1 ~ /^libsam3neck/ {print $1 " => " $3}')
  [ "$resolved" = "$SONAME => $LIBDIR/$SONAME" ] || fail "$bin resolves libsam3neck as '$resolved'"
done
pass "example_c and example_cpp built; each needs $SONAME and finds it in $LIBDIR"

synthetic_checkpoint "$OUT/neck.safetensors" 1
for bin in example_c example_cpp; do
  LD_LIBRARY_PATH="$LIBDIR" "$OUT/bin/$bin" "$OUT/neck.safetensors" > "$OUT/$bin.out" 2>&1 ||
    { cat "$OUT/$bin.out"; fail "$bin failed"; }
  grep -q '^level 2: \[1, 32, 72, 72\]' "$OUT/$bin.out" && grep -q '^ran: trunk_dim 64, d_model 32$' "$OUT/$bin.out" ||
    { cat "$OUT/$bin.out"; fail "$bin printed something unexpected"; }
done
# The C++ example's error path: a missing file is reported through sam3neck::Error.
if LD_LIBRARY_PATH="$LIBDIR" "$OUT/bin/example_cpp" "$OUT/missing.safetensors" > "$OUT/missing.out" 2>&1 ||
   ! grep -q "cannot open '$OUT/missing.safetensors'" "$OUT/missing.out"; then
  cat "$OUT/missing.out"; fail "example_cpp on a missing file"
fi
pass "example_c and example_cpp ran on the installed library; example_cpp reports a missing file"

for example in examples/example.c examples/example.cpp; do
  "$PYTHON" -c 'import sys; sys.exit(open(sys.argv[1]).read() not in open("docs/c-cpp.md").read())' "$example" ||
    fail "docs/c-cpp.md does not show $example as it is (copy the file into it)"
done
pass "docs/c-cpp.md shows examples/example.c and examples/example.cpp verbatim"

step "the CMake package: find_package(sam3neck $MAJOR.$MINOR CONFIG REQUIRED), target sam3neck::sam3neck"
command -v cmake >/dev/null || fail "cmake not found (make test installs it: apt-get install cmake)"
if grep -rF "$PREFIX" "$LIBDIR/cmake/sam3neck"; then fail "the CMake package names its prefix (above): it must be relocatable"; fi
# cmake_consumer BUILD PREFIX [REQUEST]: configure Tests/install/cmake against PREFIX only (no
# system prefixes, no package registry); the log is BUILD.log.
cmake_consumer() {
  rm -rf "$1"
  cmake -S "$ROOT/Tests/install/cmake" -B "$1" -DCMAKE_BUILD_TYPE=Release -DEXAMPLES="$OUT/src" \
    -DCMAKE_PREFIX_PATH="$2" -DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF ${3:+-DSAM3NECK_REQUEST="$3"} > "$1.log" 2>&1
}
# cmake_built BUILD LIBDIR: build BUILD; both programs need $SONAME, find it in LIBDIR with no
# LD_LIBRARY_PATH (CMake's build-tree rpath) and run on the synthetic checkpoint.
cmake_built() {
  cmake --build "$1" > "$1.build.log" 2>&1 || { cat "$1.build.log"; fail "cmake --build $1 failed"; }
  for bin in example_c example_cpp; do
    readelf -d "$1/$bin" | grep -q "(NEEDED).*\[$SONAME\]" || fail "$1/$bin does not need $SONAME"
    resolved=$(env -u LD_LIBRARY_PATH ldd "$1/$bin" | awk '$1 ~ /^libsam3neck/ {print $1 " => " $3}')
    [ "$resolved" = "$SONAME => $2/$SONAME" ] || fail "$1/$bin resolves libsam3neck as '$resolved', not from $2"
    env -u LD_LIBRARY_PATH "$1/$bin" "$OUT/neck.safetensors" > "$1/$bin.out" 2>&1 || { cat "$1/$bin.out"; fail "$1/$bin failed"; }
    grep -q '^ran: trunk_dim 64, d_model 32$' "$1/$bin.out" || { cat "$1/$bin.out"; fail "$1/$bin printed something unexpected"; }
  done
}
cmake_consumer "$OUT/cmake" "$PREFIX" "$MAJOR.$MINOR" || { cat "$OUT/cmake.log"; fail "find_package(sam3neck $MAJOR.$MINOR CONFIG REQUIRED) failed"; }
grep -qF -- "-- sam3neck $VERSION (ABI $ABI) from $LIBDIR/cmake/sam3neck" "$OUT/cmake.log" ||
  { cat "$OUT/cmake.log"; fail "find_package found something else than $LIBDIR/cmake/sam3neck ($VERSION, ABI $ABI)"; }
cmake_built "$OUT/cmake" "$LIBDIR"
pass "cmake: find_package(sam3neck $MAJOR.$MINOR) found $VERSION; example_c and example_cpp built with sam3neck::sam3neck, linked to $SONAME and ran"
readme_request=$(sed -n 's/^find_package(sam3neck \([0-9.]*\) CONFIG REQUIRED).*/\1/p' docs/c-cpp.md)
[ -n "$readme_request" ] || fail "docs/c-cpp.md shows no find_package(sam3neck X.Y CONFIG REQUIRED) line"
accept=("$readme_request" "$VERSION" "$MAJOR.0...$MAJOR.$MINOR")
refuse=("$MAJOR.$((MINOR + 1))" "$((MAJOR + 1)).0" "$MAJOR.$MINOR.$(( $(macro VERSION_PATCH) + 1 ))")
[ "$MAJOR" -ge 9 ] || refuse+=(9.0)
if [ "$MINOR" -gt 0 ]; then accept+=("$MAJOR.$((MINOR - 1))"); refuse+=("$MAJOR.0...<$MAJOR.$MINOR"); fi
for request in "${accept[@]}"; do
  cmake_consumer "$OUT/cmake-accept" "$PREFIX" "$request" || { cat "$OUT/cmake-accept.log"; fail "find_package(sam3neck $request) refused $VERSION"; }
done
for request in "${refuse[@]}"; do
  if cmake_consumer "$OUT/cmake-refuse" "$PREFIX" "$request"; then
    cat "$OUT/cmake-refuse.log"; fail "find_package(sam3neck $request CONFIG REQUIRED) accepted $VERSION"
  fi
  grep -q "requested version \"$request\"\|requested version range \"$request\"" "$OUT/cmake-refuse.log" ||
    { cat "$OUT/cmake-refuse.log"; fail "find_package(sam3neck $request) failed, but not for the version"; }
done
pass "cmake: version requests ${accept[*]} accepted (${readme_request}: docs/c-cpp.md's); ${refuse[*]} refused"
cp -a "$PREFIX" "$OUT/moved"
cmake_consumer "$OUT/cmake-moved" "$OUT/moved" || { cat "$OUT/cmake-moved.log"; fail "find_package in the moved install failed"; }
cmake_built "$OUT/cmake-moved" "$OUT/moved/lib"
rm -rf "$OUT/moved"
pass "cmake: the install, copied to another folder, is found there and used from there"

step "make install DESTDIR=$OUT/stage PREFIX=/usr/local"
STAGE="$OUT/stage"
"$MAKE" --no-print-directory install DESTDIR="$STAGE" PREFIX=/usr/local > "$OUT/stage.log" 2>&1 ||
  { cat "$OUT/stage.log"; fail "make install DESTDIR=... failed"; }
[ -f "$STAGE/usr/local/lib/$REALNAME" ] && [ -f "$STAGE/usr/local/include/sam3_neck.hpp" ] ||
  fail "nothing installed under $STAGE/usr/local"
grep -qx 'prefix=/usr/local' "$STAGE/usr/local/lib/pkgconfig/sam3neck.pc" || fail "staged .pc file: prefix is not /usr/local"
STAGED_FLAGS=$(PKG_CONFIG_SYSROOT_DIR="$STAGE" PKG_CONFIG_PATH="$STAGE/usr/local/lib/pkgconfig" pkg-config --cflags --libs sam3neck)
# shellcheck disable=SC2086
c++ -std=c++17 -Wall -Wextra -Werror -pedantic "$OUT/src/example.cpp" -o "$OUT/bin/example_cpp_staged" $STAGED_FLAGS
LD_LIBRARY_PATH="$STAGE/usr/local/lib" "$OUT/bin/example_cpp_staged" "$OUT/neck.safetensors" > "$OUT/staged.out" 2>&1 ||
  { cat "$OUT/staged.out"; fail "example_cpp built against the staged copy failed"; }
cmake_consumer "$OUT/cmake-staged" "$STAGE/usr/local" || { cat "$OUT/cmake-staged.log"; fail "find_package in the staged install failed"; }
cmake_built "$OUT/cmake-staged" "$STAGE/usr/local/lib"
pass "DESTDIR install: files under the staging root, .pc file with prefix=/usr/local, example built and ran; CMake package used from the staging root"

step "make uninstall"
"$MAKE" --no-print-directory uninstall PREFIX="$PREFIX" > /dev/null
"$MAKE" --no-print-directory uninstall DESTDIR="$STAGE" PREFIX=/usr/local > /dev/null
left=$(find "$PREFIX" "$STAGE" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
pass "make uninstall removed every installed file"

echo
echo "test-install: make install/uninstall and the installed copy work"
