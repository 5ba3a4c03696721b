/*
 * sam3neck_kernels.h — the few kernels of the Swift core written in C, where C can reach vector
 * instructions the Swift code (built for baseline x86-64) cannot: each has a portable version and,
 * chosen at run time when the CPU has them, an AVX2 + FMA version. Internal: not part of the C ABI
 * (the library's version script hides these symbols).
 */
#ifndef SAM3NECK_KERNELS_H
#define SAM3NECK_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[k] = GELU(src[k] + bias[k]) for k < n, the exact (erf) GELU:
 * 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2). Dispatches to one of the two below.
 * out may equal src. */
void sam3neck_bias_gelu(const float *src, const float *bias, float *out, size_t n);

/* The portable version: libm's erfcf per element. */
void sam3neck_bias_gelu_generic(const float *src, const float *bias, float *out, size_t n);

/* The AVX2 + FMA version: 8 lanes, erfc from exp(-a^2) (a^2 split exactly with an FMA) times a
 * degree-10 polynomial in 1/(1 + a/2) fitted to erfc(a) exp(a^2) (relative error 3e-9 on
 * [0, 9.3]); lanes with |x| >= 13, NaN or Inf go through the generic version. Call only when
 * sam3neck_cpu_has_avx2_fma() is true. */
void sam3neck_bias_gelu_avx2(const float *src, const float *bias, float *out, size_t n);

/* Whether the CPU runs AVX2 and FMA instructions. */
int sam3neck_cpu_has_avx2_fma(void);

#ifdef __cplusplus
}
#endif

#endif
