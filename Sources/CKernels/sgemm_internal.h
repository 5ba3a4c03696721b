/* What sgemm.c shares with sgemm_amx.c (not part of the kernels' interface). */
#ifndef SAM3NECK_SGEMM_INTERNAL_H
#define SAM3NECK_SGEMM_INTERNAL_H

#include "sam3neck_kernels.h"

/* The epilogue of one finished tile t (rows x cols, leading dimension ldt) whose top-left is
 * C(i, j): bias, GELU (kernel GENERIC: the portable GELU), then the store (none when in_place).
 * t may be modified. */
void sam3neck_sgemm_finish_tile(const sam3neck_sgemm_args *g, int kernel, float *t, size_t ldt,
                                size_t i, size_t j, size_t rows, size_t cols, int in_place);

/* SAM3NECK_SGEMM_AMX_BF16X3's driver (sgemm_amx.c), on the instructions or (emulated != 0) on
 * their emulation; g has been checked by sam3neck_sgemm_run. -1 where the native one is not built. */
int sam3neck_sgemm_run_amx(const sam3neck_sgemm_args *g, int emulated);

/* Floats of workspace sam3neck_sgemm_run_amx needs for m x k. */
size_t sam3neck_sgemm_amx_workspace_floats(size_t m, size_t k);

/* The bfloat16 kernels (sgemm_bf16.c), for sgemm.c's driver: the 12 x 32 micro-kernel with k
 * counted in pairs (native only on x86-64 Linux), A's rows i0 .. i0 + rows - 1 and pairs q0 ..
 * q0 + pairs - 1 as pairs in A's orientation (dst[r * ld + q], or dst[q * ld + r] for a
 * transposed A), and the AMX driver (emulated or not; -1 where the native one is not built). */
void sam3neck_sgemm_bf16_kern_emulated(size_t kp, const float *a, const float *b, size_t bps, float *c, size_t ldc,
                                       int acc);
#if defined(__x86_64__) && defined(__linux__)
void sam3neck_sgemm_bf16_kern_native(size_t kp, const float *a, const float *b, size_t bps, float *c, size_t ldc,
                                     int acc);
#endif
void sam3neck_sgemm_bf16_convert_a(int kernel, const sam3neck_sgemm_args *g, size_t i0, size_t rows, size_t q0,
                                   size_t pairs, uint32_t *dst, size_t ld);
int sam3neck_sgemm_run_amx_bf16(const sam3neck_sgemm_args *g, int emulated);
size_t sam3neck_sgemm_amx_bf16_workspace_floats(size_t m, size_t k);

#endif
