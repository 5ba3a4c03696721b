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

int sam3neck_cpu_has_avx2_fma(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

/* erfc(a) exp(a^2) (1 + a/2) = P(t), t = 1 / (1 + a/2), for a in [0, 9.3]: a weighted least-squares
 * fit in Chebyshev form, iterated towards equal relative error, converted to powers of t
 * (Tests/Sam3NeckTests/KernelTests.swift checks the result against erfc in double). */
static const float kP[11] = {
    0.28208601474761963f, 0.2823094129562378f,   0.24461983144283295f,  0.18871375918388367f,
    0.04390931501984596f, 0.06088830903172493f,  -0.06166290119290352f, -0.24852702021598816f,
    0.3543696105480194f,  -0.18076299130916595f, 0.0340566486120224f,
};

/* The vector GELU, written once over a vector type of W lanes and its operations, instantiated for
 * AVX2 + FMA (8 lanes) and AVX-512 (16): the same operations in the same order per lane, so the
 * two give the same bits. Lanes with |x| >= 13, NaN or Inf are then redone by the generic path
 * (only those lanes: a value never depends on its neighbours). */
#define DEFINE_GELU(NAME, TARGET, T, TI, W, SET1, LOADU, STOREU, ADD, SUB, MUL, DIV, FMADD, FNMADD, FMSUB, ABS,        \
                    ALL_BELOW, ROUND, EXP2I, SELECT_GE0)                                                               \
  __attribute__((target(TARGET))) void NAME(const float *src, const float *bias, float *out, size_t n) {               \
    const T one = SET1(1.0f), two = SET1(2.0f), half = SET1(0.5f), limit = SET1(13.0f);                                \
    const T minus_rsqrt2 = SET1(-0.70710678118654752440f), log2e = SET1(1.44269504088896341f);                         \
    const T ln2_hi = SET1(0.693145751953125f); /* few bits: n * ln2_hi is exact */                                     \
    const T ln2_lo = SET1(1.42860682030941723e-6f);                                                                    \
    size_t k = 0;                                                                                                      \
    for (; k + W <= n; k += W) {                                                                                       \
      T x = ADD(LOADU(src + k), LOADU(bias + k));                                                                      \
      const int tails = !ALL_BELOW(ABS(x), limit); /* a NaN, an Inf or a far tail somewhere */                         \
      T z = MUL(x, minus_rsqrt2);                                                                                      \
      T a = ABS(z);                                                                                                    \
      T t = DIV(one, FMADD(half, a, one));                                                                             \
      T p = SET1(kP[10]);                                                                                              \
      for (int j = 9; j >= 0; j--) p = FMADD(p, t, SET1(kP[j]));                                                       \
      /* exp(-a^2) with a^2 = hi + lo exactly; exp(-hi) by range reduction and a degree-7 Taylor                       \
       * polynomial on |r| <= ln2/2 (error < 5e-9), then exp(-a^2) = exp(-hi) (1 - lo). */                             \
      T hi = MUL(a, a);                                                                                                \
      T lo = FMSUB(a, a, hi);                                                                                          \
      T y = SUB(SET1(0.0f), hi);                                                                                       \
      T m = ROUND(MUL(y, log2e));                                                                                      \
      T r = FNMADD(m, ln2_hi, y);                                                                                      \
      r = FNMADD(m, ln2_lo, r);                                                                                        \
      T e = SET1(1.0f / 5040.0f);                                                                                      \
      e = FMADD(e, r, SET1(1.0f / 720.0f));                                                                            \
      e = FMADD(e, r, SET1(1.0f / 120.0f));                                                                            \
      e = FMADD(e, r, SET1(1.0f / 24.0f));                                                                             \
      e = FMADD(e, r, SET1(1.0f / 6.0f));                                                                              \
      e = FMADD(e, r, half);                                                                                           \
      e = FMADD(e, r, one);                                                                                            \
      e = FMADD(e, r, one);                                                                                            \
      /* |x| < 13 keeps a^2 < 84.5, so m >= -122 and 2^m is a normal float. */                                         \
      e = MUL(e, EXP2I(m));                                                                                            \
      e = FNMADD(e, lo, e);                                                                                            \
      T erfc_a = MUL(MUL(e, t), p);                                                                                    \
      /* erfc(z) = erfc(|z|) for z >= 0 (x <= 0), else 2 - erfc(|z|). */                                               \
      T erfc_z = SELECT_GE0(z, erfc_a, SUB(two, erfc_a));                                                              \
      if (tails) { /* the lanes out of range again, exactly; x is gone from src when out == src */                     \
        float lanes[W];                                                                                                \
        STOREU(lanes, x);                                                                                              \
        STOREU(out + k, MUL(MUL(half, x), erfc_z));                                                                    \
        for (int j = 0; j < W; j++)                                                                                    \
          if (!(fabsf(lanes[j]) < 13.0f)) out[k + j] = gelu1(lanes[j]);                                                \
        continue;                                                                                                      \
      }                                                                                                                \
      STOREU(out + k, MUL(MUL(half, x), erfc_z));                                                                      \
    }                                                                                                                  \
    for (; k < n; k++) out[k] = gelu1(src[k] + bias[k]);                                                               \
  }

#define Y_ABS(x) _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)))
#define Y_ALL_BELOW(a, b) (_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_LT_OQ)) == 0xFF)
#define Y_ROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define Y_EXP2I(m)                                                                                                     \
  _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(127)), 23))
#define Y_SELECT_GE0(z, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ))
DEFINE_GELU(sam3neck_bias_gelu_avx2, "avx2,fma", __m256, __m256i, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps,
            _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_div_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps,
            _mm256_fmsub_ps, Y_ABS, Y_ALL_BELOW, Y_ROUND, Y_EXP2I, Y_SELECT_GE0)

#define Z_ABS(x) _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)))
#define Z_ALL_BELOW(a, b) (_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ) == 0xFFFF)
#define Z_ROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define Z_EXP2I(m)                                                                                                     \
  _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(m), _mm512_set1_epi32(127)), 23))
#define Z_SELECT_GE0(z, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GE_OQ), b, a)
DEFINE_GELU(sam3neck_bias_gelu_avx512, "avx512f,avx2,fma", __m512, __m512i, 16, _mm512_set1_ps, _mm512_loadu_ps,
            _mm512_storeu_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_div_ps, _mm512_fmadd_ps,
            _mm512_fnmadd_ps, _mm512_fmsub_ps, Z_ABS, Z_ALL_BELOW, Z_ROUND, Z_EXP2I, Z_SELECT_GE0)

void sam3neck_bias_gelu(const float *src, const float *bias, float *out, size_t n) {
  /* __builtin_cpu_supports reads data set once at load time: cheap, and free of races. */
  if (sam3neck_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f")) {
    sam3neck_bias_gelu_avx512(src, bias, out, n);
  } else if (sam3neck_cpu_has_avx2_fma()) {
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

void sam3neck_bias_gelu_avx512(const float *src, const float *bias, float *out, size_t n) {
  sam3neck_bias_gelu_generic(src, bias, out, n);
}

void sam3neck_bias_gelu(const float *src, const float *bias, float *out, size_t n) {
  sam3neck_bias_gelu_generic(src, bias, out, n);
}

#endif
