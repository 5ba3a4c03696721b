/* What sgemm.c shares with sgemm_amx.c (not part of the kernels' interface). */
#ifndef SAM3NECK_SGEMM_INTERNAL_H
#define SAM3NECK_SGEMM_INTERNAL_H

#include "sam3neck_kernels.h"

/* The epilogue of one finished tile t (rows x cols, leading dimension ldt) whose top-left is
 * C(i, j): bias, GELU (kernel GENERIC: the portable GELU), then the store (none when in_place).
 * t may be modified. */
void sam3neck_sgemm_finish_tile(const sam3neck_sgemm_args *g, int kernel, float *t, size_t ldt,
                                size_t i, size_t j, size_t rows, size_t cols, int in_place);

/* SAM3NECK_SGEMM_AMX_BF16X3's driver (sgemm_amx.c); g has been checked by sam3neck_sgemm_run. */
int sam3neck_sgemm_run_amx(const sam3neck_sgemm_args *g);

/* Floats of workspace sam3neck_sgemm_run_amx needs for m x k (0 where AMX is not built). */
size_t sam3neck_sgemm_amx_workspace_floats(size_t m, size_t k);

#endif
