/* What the files of the packed SGEMM share (not part of the kernels' interface). Who calls whom,
 * with no cycle: sgemm_dispatch.c (sam3neck_sgemm_run, the kernel choice) calls the drivers;
 * the AMX drivers (sgemm_amx.c, sgemm_bf16.c) call the float32 driver (sgemm.c) for their
 * fallback rows; every driver calls the epilogue (sgemm_epilogue.c) and the packed layout
 * (sgemm_pack.c), which call nothing of the others. */
#ifndef SAM3NECK_SGEMM_INTERNAL_H
#define SAM3NECK_SGEMM_INTERNAL_H

#include "sam3neck_kernels.h"

#define PANEL 16 /* columns per packed panel of B (one zmm, two ymm) */
#define PANEL_GROUP                                                                                                    \
  4 /* panels are allocated in groups of 4 (64 columns): every kernel may                                              \
     * read up to 4 adjacent panels without a bounds check */
#define MAX_MR 16
#define MAX_NR 64

/* The epilogue of one finished tile t (rows x cols, leading dimension ldt) whose top-left is
 * C(i, j): bias, GELU (kernel GENERIC: the portable GELU), then the store (none when in_place).
 * t may be modified. */
void sam3neck_sgemm_finish_tile(const sam3neck_sgemm_args *g, int kernel, float *t, size_t ldt, size_t i, size_t j,
                                size_t rows, size_t cols, int in_place);

/* The blocked driver of the register-tile kernels (sgemm.c): GENERIC, AVX2, AVX512 and the
 * VDPBF16PS kernel (AVX512_BF16 and its emulation); `kernel` is one of them and runs here
 * (sam3neck_sgemm_run has resolved it). The return codes of sam3neck_sgemm_run. */
int sam3neck_sgemm_run_f32(const sam3neck_sgemm_args *g, int kernel);

/* The largest workspace of any of those kernels and variants for g's m, n, k and blocking. */
size_t sam3neck_sgemm_f32_workspace_floats(const sam3neck_sgemm_args *g);

/* The best float32 kernel this CPU runs (AVX512, else AVX2, else GENERIC). */
int sam3neck_sgemm_f32_best(void);

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
