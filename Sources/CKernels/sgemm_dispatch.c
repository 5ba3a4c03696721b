/* The packed SGEMM's entry points (see sam3neck_kernels.h, "Packed SGEMM"): which kernels this
 * CPU runs, the choice SAM3NECK_SGEMM_AUTO and $SAM3NECK_SGEMM_KERNEL make, and
 * sam3neck_sgemm_run, which hands a call to the AMX drivers or to the float32 driver. */
#include "sam3neck_kernels.h"
#include "sgemm_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- dispatch ------------------------------------------------------------------------------ */

int sam3neck_sgemm_kernel_supported(int kernel) {
  switch (kernel) {
  case SAM3NECK_SGEMM_GENERIC: return 1;
  case SAM3NECK_SGEMM_AVX2: return sam3neck_cpu_has_avx2_fma();
  case SAM3NECK_SGEMM_AVX512: return sam3neck_cpu_has_avx512f() && sam3neck_cpu_has_avx2_fma();
  case SAM3NECK_SGEMM_AMX_BF16X3: return sam3neck_cpu_has_amx_bf16() && sam3neck_cpu_has_avx2_fma();
  case SAM3NECK_SGEMM_AVX512_BF16: return sam3neck_cpu_has_avx512_bf16() && sam3neck_cpu_has_avx2_fma();
  case SAM3NECK_SGEMM_AMX_BF16:
    return sam3neck_cpu_has_amx_bf16() && sam3neck_cpu_has_avx512_bf16() && sam3neck_cpu_has_avx2_fma();
  case SAM3NECK_SGEMM_AVX512_BF16_EMULATED:
  case SAM3NECK_SGEMM_AMX_BF16_EMULATED:
  case SAM3NECK_SGEMM_AMX_BF16X3_EMULATED: return 1;
  default: return 0;
  }
}

int sam3neck_sgemm_kernel_named(const char *name) {
  if (name == NULL) return -1;
  if (strcmp(name, "generic") == 0) return SAM3NECK_SGEMM_GENERIC;
  if (strcmp(name, "avx2") == 0) return SAM3NECK_SGEMM_AVX2;
  if (strcmp(name, "avx512") == 0) return SAM3NECK_SGEMM_AVX512;
  return -1;
}

int sam3neck_sgemm_pick_kernel(const char *name) {
  int forced = sam3neck_sgemm_kernel_named(name);
  if (forced > 0 && sam3neck_sgemm_kernel_supported(forced)) return forced;
  return sam3neck_sgemm_f32_best();
}

int sam3neck_sgemm_env_kernel(void) {
  int named = sam3neck_sgemm_kernel_named(getenv("SAM3NECK_SGEMM_KERNEL"));
  return named > 0 && sam3neck_sgemm_kernel_supported(named) ? named : -1;
}

int sam3neck_sgemm_auto_kernel(void) {
  /* The environment is read on every call (cheap next to a GEMM; no cached state to race on). */
  return sam3neck_sgemm_pick_kernel(getenv("SAM3NECK_SGEMM_KERNEL"));
}

static int resolve(int kernel) {
  if (kernel == SAM3NECK_SGEMM_AUTO) return sam3neck_sgemm_auto_kernel();
  return sam3neck_sgemm_kernel_supported(kernel) ? kernel : -1;
}

int sam3neck_sgemm_run(const sam3neck_sgemm_args *g) {
  int kernel = resolve(g->kernel);
  if (kernel < 0) return -1;
  const int bf16x3 = kernel == SAM3NECK_SGEMM_AMX_BF16X3 || kernel == SAM3NECK_SGEMM_AMX_BF16X3_EMULATED;
  if (bf16x3 || kernel == SAM3NECK_SGEMM_AMX_BF16 || kernel == SAM3NECK_SGEMM_AMX_BF16_EMULATED) {
    /* the AMX drivers: B split (bf16x3) or in bfloat16 pairs (packed_b) */
    if (g->a_packed != NULL) return -5;
    if (g->m == 0 || g->n == 0) return 0;
    if (g->workspace == NULL || g->a == NULL ||
        (bf16x3 ? (const void *)g->packed_b_bf16x3 : (const void *)g->packed_b) == NULL)
      return -3;
    if (g->store == NULL && g->c == NULL) return -3;
    if (g->k > 0 && g->lda < (g->a_trans ? g->m : g->k)) return -4;
    if (bf16x3) return sam3neck_sgemm_run_amx(g, kernel == SAM3NECK_SGEMM_AMX_BF16X3_EMULATED);
    return sam3neck_sgemm_run_amx_bf16(g, kernel == SAM3NECK_SGEMM_AMX_BF16_EMULATED);
  }
  return sam3neck_sgemm_run_f32(g, kernel);
}

size_t sam3neck_sgemm_workspace_floats(const sam3neck_sgemm_args *g) {
  /* the largest over every kernel and variant, so that the size does not depend on the CPU */
  size_t best = sam3neck_sgemm_f32_workspace_floats(g);
  size_t amx = sam3neck_sgemm_amx_workspace_floats(g->m, g->k),
         amx16 = sam3neck_sgemm_amx_bf16_workspace_floats(g->m, g->k);
  if (amx16 > amx) amx = amx16;
  return amx > best ? amx : best;
}

int sam3neck_sgemm(int kernel, size_t m, size_t n, size_t k, const float *a, size_t lda, int a_trans,
                   const float *packed_b, const float *bias, int gelu, float *c, size_t ldc, float *workspace) {
  sam3neck_sgemm_args g;
  memset(&g, 0, sizeof g);
  g.kernel = kernel;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.a_trans = a_trans;
  g.packed_b = packed_b;
  g.bias = bias;
  g.gelu = gelu;
  g.c = c;
  g.rs_c = (ptrdiff_t)ldc;
  g.cs_c = 1;
  g.workspace = workspace;
  return sam3neck_sgemm_run(&g);
}
