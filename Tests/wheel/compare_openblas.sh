#!/usr/bin/env bash
# Speed of the wheel's bundled OpenBLAS against the system's, for this neck (make bench-wheel):
# the same libsam3neck.so in two wheels -- the build's own (py3-none-linux_x86_64, links the
# system's libopenblas.so.0) and the manylinux one (`auditwheel repair`: OpenBLAS inside) -- each
# installed into its own venv; then one neck run of [1, 1024, 72, 72] on the synthetic SAM 3
# checkpoint (all cores, default precision) timed RUNS times after a warm-up, in ROUNDS rounds
# that alternate between the two. The manylinux wheel runs in a mount namespace where the system's
# OpenBLAS is hidden (as in test_wheel.sh). Prints each round's medians and the median over rounds.
# WITH_SCIPY_OPENBLAS=1 adds a third column: the linux wheel with the `scipy-openblas32` wheel's
# OpenBLAS (what NumPy and SciPy bundle), through a 4-function shim named libopenblas.so.0 that
# forwards to its scipy_-prefixed symbols (needs cc and PyPI).
#   bash Tests/wheel/compare_openblas.sh [LIBRARY]    (ROUNDS=5 RUNS=30 by default)
# A measurement, not a test: it fails only when something does not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIBRARY="$(realpath "${1:-$ROOT/.build/release/libsam3neck.so}")"
PYTHON="${PYTHON:-python3}"
ROUNDS="${ROUNDS:-5}"
RUNS="${RUNS:-30}"
unset SAM3NECK_LIBRARY PYTHONPATH
WORK="$(mktemp -d /tmp/sam3neck-openblas.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

SAM3NECK_LIBRARY_PREBUILT="$LIBRARY" "$PYTHON" -m pip wheel "$ROOT/python" -w "$WORK/linux" --no-deps -q
"$PYTHON" -m auditwheel repair --strip -w "$WORK/many" "$WORK"/linux/*.whl >/dev/null 2>&1
KINDS=(linux many)
for kind in linux many; do
  "$PYTHON" -m venv "$WORK/venv-$kind"
  "$WORK/venv-$kind/bin/python" -m pip install -q "$WORK/$kind"/*.whl
done
if [ "${WITH_SCIPY_OPENBLAS:-0}" = 1 ]; then
  "$WORK/venv-linux/bin/python" -m pip install -q scipy-openblas32
  SCIPY_LIB="$("$WORK/venv-linux/bin/python" -c 'import scipy_openblas32 as s; print(s.get_lib_dir())')"
  mkdir -p "$WORK/shim"
  cat > "$WORK/shim/shim.c" <<'C'
/* libopenblas.so.0 for libsam3neck: its four OpenBLAS functions, forwarded to scipy-openblas32's. */
extern void scipy_cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
extern void scipy_cblas_dgemm(int, int, int, int, int, int, double, const double *, int, const double *, int, double, double *, int);
extern void scipy_openblas_set_num_threads(int);
extern int scipy_openblas_get_num_threads(void);
void cblas_sgemm(int o, int ta, int tb, int m, int n, int k, float al, const float *a, int lda, const float *b, int ldb, float be, float *c, int ldc) { scipy_cblas_sgemm(o, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc); }
void cblas_dgemm(int o, int ta, int tb, int m, int n, int k, double al, const double *a, int lda, const double *b, int ldb, double be, double *c, int ldc) { scipy_cblas_dgemm(o, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc); }
void openblas_set_num_threads(int n) { scipy_openblas_set_num_threads(n); }
int openblas_get_num_threads(void) { return scipy_openblas_get_num_threads(); }
C
  cc -O2 -shared -fPIC -o "$WORK/shim/libopenblas.so.0" -Wl,-soname,libopenblas.so.0 "$WORK/shim/shim.c" \
    -L"$SCIPY_LIB" -lscipy_openblas -Wl,-rpath,"$SCIPY_LIB"
  KINDS+=(scipy)
fi
WEIGHTS="$("$WORK/venv-linux/bin/python" -c 'from sam3neck import checkpoint; print(checkpoint.ensure_default_checkpoint())')"
mapfile -t HIDE < <(ldconfig -p | awk '/=>/ {print $NF}' | while read -r f; do
  r="$(realpath -e "$f" 2>/dev/null)" || continue; case "$r" in *openblas*) echo "$r" ;; esac; done | sort -u)
: > "$WORK/empty"
TIMER='import os, statistics, sys, time, numpy as np, sam3neck
neck = sam3neck.Neck(sys.argv[1]); neck.compile(height=72, width=72)
x = np.random.default_rng(0).standard_normal((1, neck.trunk_dim, 72, 72), dtype=np.float32)
out = neck.run(x); times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); neck.run(x, out=[lv.features for lv in out]); times.append(time.perf_counter() - t)
blas = sorted({p for p in (l.split()[-1] for l in open("/proc/self/maps")) if "blas" in os.path.basename(p) and "numpy" not in p})
print(f"{statistics.median(times) * 1e3:.1f}", *blas)'

median() { "$PYTHON" -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.1f}")' "$@"; }
timed() {  # timed KIND -> "median_ms openblas-paths..."
  case "$1" in
    linux) "$WORK/venv-linux/bin/python" -I -c "$TIMER" "$WEIGHTS" "$RUNS" ;;
    scipy) LD_LIBRARY_PATH="$WORK/shim" "$WORK/venv-linux/bin/python" -I -c "$TIMER" "$WEIGHTS" "$RUNS" ;;
    many) unshare -m bash -c 'e="$1"; shift; n="$1"; shift; for ((i = 0; i < n; i++)); do mount --bind "$e" "$1"; shift; done; exec "$@"' \
            _ "$WORK/empty" "${#HIDE[@]}" "${HIDE[@]}" "$WORK/venv-many/bin/python" -I -c "$TIMER" "$WEIGHTS" "$RUNS" ;;
  esac
}
declare -A NAME=([linux]="system OpenBLAS (linux_x86_64 wheel)" [many]="bundled OpenBLAS (manylinux wheel)"
                 [scipy]="scipy-openblas32 (shim)")
declare -A times=()
echo "one run of [1, 1024, 72, 72], median of $RUNS after a warm-up, $(nproc) cores; $ROUNDS rounds, alternating"
for ((r = 1; r <= ROUNDS; r++)); do
  line="round $r:"
  for kind in "${KINDS[@]}"; do
    read -r t libs <<<"$(timed "$kind")"
    [ -n "$t" ] || { echo "compare_openblas: the $kind run printed no time" >&2; exit 1; }
    times[$kind]+=" $t"
    line+="  ${NAME[$kind]} $t ms"
    [ "$r" = 1 ] && echo "  $kind loads: $libs"
  done
  echo "$line"
done
for kind in "${KINDS[@]}"; do echo "median over rounds: ${NAME[$kind]}: $(median ${times[$kind]}) ms"; done
