/* The packed layout of B (see sam3neck_kernels.h, "Packed SGEMM"): panels of 16 columns,
 * grouped by 4, which every kernel of the packed SGEMM reads. */
#include "sam3neck_kernels.h"
#include "sgemm_internal.h"

#include <string.h>

static size_t panel_count(size_t n) {
  size_t groups = (n + PANEL * PANEL_GROUP - 1) / (PANEL * PANEL_GROUP);
  return groups * PANEL_GROUP;
}

size_t sam3neck_sgemm_packed_b_floats(size_t k, size_t n) { return panel_count(n) * PANEL * k; }

void sam3neck_sgemm_pack_b(size_t k, size_t n, const float *b, size_t ldb, int b_trans, float *packed) {
  size_t panels = panel_count(n);
  for (size_t p = 0; p < panels; p++) {
    float *dst = packed + p * PANEL * k;
    size_t j0 = p * PANEL;
    size_t w = j0 >= n ? 0 : (n - j0 < PANEL ? n - j0 : PANEL);
    if (!b_trans) {
      for (size_t kk = 0; kk < k; kk++) {
        const float *src = b + kk * ldb + j0;
        size_t j = 0;
        for (; j < w; j++) dst[kk * PANEL + j] = src[j];
        for (; j < PANEL; j++) dst[kk * PANEL + j] = 0.0f;
      }
    } else {
      memset(dst, 0, PANEL * k * sizeof(float));
      for (size_t j = 0; j < w; j++) {
        const float *src = b + (j0 + j) * ldb;
        for (size_t kk = 0; kk < k; kk++) dst[kk * PANEL + j] = src[kk];
      }
    }
  }
}
