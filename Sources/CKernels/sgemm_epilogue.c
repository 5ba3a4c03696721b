/* The epilogue every packed-SGEMM driver applies to a finished tile while it is in L1: bias,
 * exact GELU, then the store (strided, or through the caller's hook), and the hook the plan uses
 * most, the phase scatter. */
#include "sam3neck_kernels.h"
#include "sgemm_internal.h"

#include <string.h>

static const float kZeros[MAX_NR] = {0};

void sam3neck_sgemm_finish_tile(const sam3neck_sgemm_args *g, int kernel, float *t, size_t ldt, size_t i, size_t j,
                                size_t rows, size_t cols, int in_place) {
  const float *bias = g->bias ? g->bias + j : kZeros;
  if (g->gelu) {
    for (size_t r = 0; r < rows; r++) {
      if (kernel == SAM3NECK_SGEMM_GENERIC)
        sam3neck_bias_gelu_generic(t + r * ldt, bias, t + r * ldt, cols);
      else
        sam3neck_bias_gelu(t + r * ldt, bias, t + r * ldt, cols);
    }
  } else if (g->bias) {
    for (size_t r = 0; r < rows; r++)
      for (size_t c = 0; c < cols; c++) t[r * ldt + c] += bias[c];
  }
  if (in_place) return;
  if (g->store) {
    g->store(g->store_ctx, i, j, rows, cols, t, ldt);
    return;
  }
  ptrdiff_t rs = g->rs_c, cs = g->cs_c;
  float *c = g->c + (ptrdiff_t)i * rs + (ptrdiff_t)j * cs;
  if (rs == 1) { /* column-contiguous (NCHW): write each column's rows together */
    for (size_t cc = 0; cc < cols; cc++)
      for (size_t r = 0; r < rows; r++) c[(ptrdiff_t)cc * cs + (ptrdiff_t)r] = t[r * ldt + cc];
  } else {
    for (size_t r = 0; r < rows; r++)
      for (size_t cc = 0; cc < cols; cc++) c[(ptrdiff_t)r * rs + (ptrdiff_t)cc * cs] = t[r * ldt + cc];
  }
}

/* ---- the grid store hook: a transposed conv's phase scatter, or a product into a framed image --- */

void sam3neck_sgemm_store_phase_scatter(void *ctx, size_t row0, size_t col0, size_t rows, size_t cols,
                                        const float *tile, size_t ldt) {
  const sam3neck_phase_scatter *s = (const sam3neck_phase_scatter *)ctx;
  for (size_t r = 0; r < rows; r++) {
    const size_t p = row0 + r, i = p / s->width, j = p % s->width;
    size_t c = 0;
    while (c < cols) { /* one run of columns within one phase: contiguous channels of one pixel */
      const size_t col = col0 + c, phase = col / s->channels, o = col % s->channels, side = s->side;
      size_t run = s->channels - o;
      if (run > cols - c) run = cols - c;
      float *out = s->out + (ptrdiff_t)(side * i + phase / side) * s->row_stride +
                   (ptrdiff_t)(side * j + phase % side) * s->pixel_stride + (ptrdiff_t)o;
      memcpy(out, tile + r * ldt + c, run * sizeof(float));
      c += run;
    }
  }
}
