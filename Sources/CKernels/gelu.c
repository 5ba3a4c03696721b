/* The exact GELU after a bias, in a portable and an AVX2 + FMA version (see the header). */
#include "sam3neck_kernels.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SAM3NECK_X86 1
#endif

static inline float gelu1(float x) { return 0.5f * x * erfcf(x * -0.70710678118654752440f); }

void sam3neck_bias_gelu_generic(const float *src, const float *bias, float *out, size_t n) {
  for (size_t k = 0; k < n; k++) out[k] = gelu1(src[k] + bias[k]);
}

#ifdef SAM3NECK_X86

int sam3neck_cpu_has_avx2_fma(void) {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* erfc(a) exp(a^2) (1 + a/2) = P(t), t = 1 / (1 + a/2), for a in [0, 9.3]: a weighted least-squares
 * fit in Chebyshev form, iterated towards equal relative error, converted to powers of t
 * (Tests/Sam3NeckTests/KernelTests.swift checks the result against erfc in double). */
static const float kP[11] = {
    0.28208601474761963f, 0.2823094129562378f,  0.24461983144283295f, 0.18871375918388367f,
    0.04390931501984596f, 0.06088830903172493f, -0.06166290119290352f, -0.24852702021598816f,
    0.3543696105480194f,  -0.18076299130916595f, 0.0340566486120224f,
};

__attribute__((target("avx2,fma"))) void sam3neck_bias_gelu_avx2(const float *src, const float *bias,
                                                                 float *out, size_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f), half = _mm256_set1_ps(0.5f);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 limit = _mm256_set1_ps(13.0f);
  const __m256 minus_rsqrt2 = _mm256_set1_ps(-0.70710678118654752440f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693145751953125f);   /* few bits: n * ln2_hi is exact */
  const __m256 ln2_lo = _mm256_set1_ps(1.42860682030941723e-6f);
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 x = _mm256_add_ps(_mm256_loadu_ps(src + k), _mm256_loadu_ps(bias + k));
    __m256 in_range = _mm256_cmp_ps(_mm256_and_ps(x, abs_mask), limit, _CMP_LT_OQ);
    if (_mm256_movemask_ps(in_range) != 0xFF) {  /* a NaN, an Inf or a far tail: the exact path */
      float lanes[8];
      _mm256_storeu_ps(lanes, x);
      for (int j = 0; j < 8; j++) out[k + j] = gelu1(lanes[j]);
      continue;
    }
    __m256 z = _mm256_mul_ps(x, minus_rsqrt2);
    __m256 a = _mm256_and_ps(z, abs_mask);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, a, one));
    __m256 p = _mm256_set1_ps(kP[10]);
    for (int j = 9; j >= 0; j--) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(kP[j]));
    /* exp(-a^2) with a^2 = hi + lo exactly; exp(-hi) by range reduction and a degree-7 Taylor
     * polynomial on |r| <= ln2/2 (error < 5e-9), then exp(-a^2) = exp(-hi) (1 - lo). */
    __m256 hi = _mm256_mul_ps(a, a);
    __m256 lo = _mm256_fmsub_ps(a, a, hi);
    __m256 y = _mm256_sub_ps(_mm256_setzero_ps(), hi);
    __m256 m = _mm256_round_ps(_mm256_mul_ps(y, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(m, ln2_hi, y);
    r = _mm256_fnmadd_ps(m, ln2_lo, r);
    __m256 e = _mm256_set1_ps(1.0f / 5040.0f);
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f / 720.0f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f / 120.0f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f / 24.0f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f / 6.0f));
    e = _mm256_fmadd_ps(e, r, half);
    e = _mm256_fmadd_ps(e, r, one);
    e = _mm256_fmadd_ps(e, r, one);
    /* |x| < 13 keeps a^2 < 84.5, so m >= -122 and 2^m is a normal float. */
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(127)), 23);
    e = _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
    e = _mm256_fnmadd_ps(e, lo, e);
    __m256 erfc_a = _mm256_mul_ps(_mm256_mul_ps(e, t), p);
    /* erfc(z) = erfc(|z|) for z >= 0 (x <= 0), else 2 - erfc(|z|). */
    __m256 erfc_z = _mm256_blendv_ps(_mm256_sub_ps(two, erfc_a), erfc_a,
                                     _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ));
    _mm256_storeu_ps(out + k, _mm256_mul_ps(_mm256_mul_ps(half, x), erfc_z));
  }
  for (; k < n; k++) out[k] = gelu1(src[k] + bias[k]);
}

void sam3neck_bias_gelu(const float *src, const float *bias, float *out, size_t n) {
  /* __builtin_cpu_supports reads data set once at load time: cheap, and free of races. */
  if (sam3neck_cpu_has_avx2_fma()) {
    sam3neck_bias_gelu_avx2(src, bias, out, n);
  } else {
    sam3neck_bias_gelu_generic(src, bias, out, n);
  }
}

#else /* not x86: the portable version only */

int sam3neck_cpu_has_avx2_fma(void) { return 0; }

void sam3neck_bias_gelu_avx2(const float *src, const float *bias, float *out, size_t n) {
  sam3neck_bias_gelu_generic(src, bias, out, n);
}

void sam3neck_bias_gelu(const float *src, const float *bias, float *out, size_t n) {
  sam3neck_bias_gelu_generic(src, bias, out, n);
}

#endif
