#!/usr/bin/env bash
# Speed of the wheel's bundled OpenBLAS against the system's, for this neck (make bench-wheel):
# the same libsam3neck.so in two wheels -- the build's own (py3-none-linux_x86_64, links the
# system's libopenblas.so.0) and the manylinux one (`auditwheel repair`: OpenBLAS inside) -- each
# installed into its own venv, then `sam3neck demo` ([1, 1024, 72, 72] on the synthetic SAM 3
# checkpoint, all cores) run ROUNDS times alternately; the manylinux wheel runs in a mount namespace
# where the system's OpenBLAS is hidden. Prints each run's median and the median over rounds.
#   bash Tests/wheel/compare_openblas.sh [LIBRARY]    (ROUNDS=5 RUNS=20 by default)
# A measurement, not a test: it fails only when something does not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIBRARY="$(realpath "${1:-$ROOT/.build/release/libsam3neck.so}")"
PYTHON="${PYTHON:-python3}"
ROUNDS="${ROUNDS:-5}"
RUNS="${RUNS:-20}"
unset SAM3NECK_LIBRARY PYTHONPATH
WORK="$(mktemp -d /tmp/sam3neck-openblas.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

SAM3NECK_LIBRARY_PREBUILT="$LIBRARY" "$PYTHON" -m pip wheel "$ROOT/python" -w "$WORK/linux" --no-deps -q
"$PYTHON" -m auditwheel repair --strip -w "$WORK/many" "$WORK"/linux/*.whl >/dev/null 2>&1
for kind in linux many; do
  "$PYTHON" -m venv "$WORK/venv-$kind"
  "$WORK/venv-$kind/bin/python" -m pip install -q "$WORK/$kind"/*.whl
done
WEIGHTS="$("$WORK/venv-linux/bin/python" -c 'from sam3neck import checkpoint; print(checkpoint.ensure_default_checkpoint())')"
mapfile -t HIDE < <(ldconfig -p | awk '/=>/ {print $NF}' | while read -r f; do
  r="$(realpath -e "$f" 2>/dev/null)" || continue; case "$r" in *openblas*) echo "$r" ;; esac; done | sort -u)
: > "$WORK/empty"

median() { "$PYTHON" -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' "$@"; }
demo() {  # demo KIND -> the run's median in ms
  local cmd=("$WORK/venv-$1/bin/sam3neck" demo --weights "$WEIGHTS" --runs "$RUNS")
  if [ "$1" = many ]; then
    unshare -m bash -c 'e="$1"; shift; n="$1"; shift; for ((i = 0; i < n; i++)); do mount --bind "$e" "$1"; shift; done; exec "$@"' \
      _ "$WORK/empty" "${#HIDE[@]}" "${HIDE[@]}" "${cmd[@]}"
  else
    "${cmd[@]}"
  fi | sed -n 's/^run: median \([0-9.]*\) ms.*/\1/p'
}
declare -A times=([linux]="" [many]="")
echo "sam3neck demo --runs $RUNS, [1, 1024, 72, 72], $(nproc) cores; $ROUNDS rounds, alternating"
for ((r = 1; r <= ROUNDS; r++)); do
  for kind in linux many; do
    t="$(demo "$kind")"
    [ -n "$t" ] || { echo "compare_openblas: the $kind wheel's demo printed no time" >&2; exit 1; }
    times[$kind]+=" $t"
  done
  echo "round $r: system OpenBLAS ${times[linux]##* } ms, bundled OpenBLAS ${times[many]##* } ms"
done
echo "median over rounds: system OpenBLAS (py3-none-linux_x86_64) $(median ${times[linux]}) ms," \
     "bundled OpenBLAS ($(basename "$WORK"/many/*.whl | sed 's/.*none-//; s/.whl//')) $(median ${times[many]}) ms"
