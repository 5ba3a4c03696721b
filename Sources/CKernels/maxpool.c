/* The 2 x 2 max pool's inner loops (see the header): a portable and an AVX2 version with the same
 * result bit for bit, PyTorch's: a window's value is the first of its maxima in reading order
 * (so -0 before +0 stays -0), and a NaN anywhere in the window gives NaN. */
#include "sam3neck_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SAM3NECK_X86 1
#endif

/* m, then b: b replaces m when greater or NaN; a NaN m stays. */
static inline float step(float m, float b) { return (b > m || b != b) ? b : m; }

static void pairs_portable(const float *r0, const float *r1, float *out, size_t n) {
  for (size_t j = 0; j < n; j++) out[j] = step(step(step(r0[2 * j], r0[2 * j + 1]), r1[2 * j]), r1[2 * j + 1]);
}

static void rows_portable(const float *a, const float *b, const float *c, const float *d, float *out, size_t n) {
  for (size_t k = 0; k < n; k++) out[k] = step(step(step(a[k], b[k]), c[k]), d[k]);
}

#ifdef SAM3NECK_X86

/* step() in eight lanes: max(b, m) returns its second operand, m, on ties and when m is NaN; a NaN
 * b is put back by the blend. */
__attribute__((target("avx2"))) static inline __m256 step8(__m256 m, __m256 b) {
  return _mm256_blendv_ps(_mm256_max_ps(b, m), b, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
}

/* Even and odd elements of 16 consecutive floats, each in order. */
__attribute__((target("avx2"))) static inline void split16(const float *x, __m256 *even, __m256 *odd) {
  __m256 lo = _mm256_loadu_ps(x), hi = _mm256_loadu_ps(x + 8);
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
}

__attribute__((target("avx2"))) static void pairs_avx2(const float *r0, const float *r1, float *out, size_t n) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 a, b, c, d;
    split16(r0 + 2 * j, &a, &b);
    split16(r1 + 2 * j, &c, &d);
    _mm256_storeu_ps(out + j, step8(step8(step8(a, b), c), d));
  }
  pairs_portable(r0 + 2 * j, r1 + 2 * j, out + j, n - j);
}

__attribute__((target("avx2"))) static void rows_avx2(const float *a, const float *b, const float *c, const float *d,
                                                      float *out, size_t n) {
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 m = step8(step8(step8(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k)), _mm256_loadu_ps(c + k)),
                     _mm256_loadu_ps(d + k));
    _mm256_storeu_ps(out + k, m);
  }
  rows_portable(a + k, b + k, c + k, d + k, out + k, n - k);
}

static int use_avx2(void) { return __builtin_cpu_supports("avx2"); }

#else
static int use_avx2(void) { return 0; }
#define pairs_avx2 pairs_portable
#define rows_avx2 rows_portable
#endif

void sam3neck_maxpool_pairs(const float *r0, const float *r1, float *out, size_t n, int portable) {
  if (!portable && use_avx2())
    pairs_avx2(r0, r1, out, n);
  else
    pairs_portable(r0, r1, out, n);
}

void sam3neck_maxpool_rows(const float *a, const float *b, const float *c, const float *d, float *out, size_t n,
                           int portable) {
  if (!portable && use_avx2())
    rows_avx2(a, b, c, d, out, n);
  else
    rows_portable(a, b, c, d, out, n);
}
