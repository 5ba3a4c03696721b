/*
 * sam3neck_kernels.h — the few kernels of the Swift core written in C, where C can reach vector
 * instructions the Swift code (built for baseline x86-64) cannot: each has a portable version and,
 * chosen at run time when the CPU has them, an AVX2 + FMA version. Internal: not part of the C ABI
 * (the library's version script hides these symbols).
 */
#ifndef SAM3NECK_KERNELS_H
#define SAM3NECK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

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

/* Element types of the neck's inputs and outputs (the neck computes in float32 inside). */
enum { SAM3NECK_DTYPE_F32 = 0, SAM3NECK_DTYPE_F16 = 1, SAM3NECK_DTYPE_BF16 = 2 };

/* Bytes of one element of `dtype`. */
size_t sam3neck_dtype_size(int dtype);

/* One value each way: float -> half / bfloat16 round to nearest even (NaN stays NaN; past the
 * largest half, 65504, Inf), and back (exact). */
uint16_t sam3neck_f32_to_f16(float f);
float sam3neck_f16_to_f32(uint16_t h);
uint16_t sam3neck_f32_to_bf16(float f);
float sam3neck_bf16_to_f32(uint16_t b);

/* dst[i] = src[i] as float, for n elements of `dtype`. */
void sam3neck_widen(const void *src, int dtype, float *dst, size_t n);

/* dst[i] = src[i] as `dtype`, rounded as above, for n elements. */
void sam3neck_narrow(const float *src, void *dst, int dtype, size_t n);

/* Stores a tile of results, y[(i*m + j)*ldy + o] for i < rows, j < cols, o < channels, as `dtype`
 * at element i*row_stride + j*pixel_stride + o*channel_stride of dst: one layout-independent store
 * for NCHW (channel_stride = plane), NHWC and sequence outputs (channel_stride = 1). */
void sam3neck_store_tile(const float *y, ptrdiff_t ldy, int m, int rows, int cols, int channels, void *dst,
                         ptrdiff_t row_stride, ptrdiff_t pixel_stride, ptrdiff_t channel_stride, int dtype);

/* The portable versions of the two conversions above, which use F16C + AVX2 when the CPU has them. */
void sam3neck_widen_portable(const void *src, int dtype, float *dst, size_t n);
void sam3neck_narrow_portable(const float *src, void *dst, int dtype, size_t n);

/* Whether the CPU has F16C and AVX2 (the vector conversions). */
int sam3neck_cpu_has_f16c_avx2(void);

#ifdef __cplusplus
}
#endif

#endif
