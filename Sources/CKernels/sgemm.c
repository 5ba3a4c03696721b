/* Single-precision GEMM against a B packed once (see sam3neck_kernels.h, "Packed SGEMM"): the
 * register-blocked micro-kernels (portable C, AVX2 + FMA, AVX-512F) and the blocked driver that
 * runs them (and the VDPBF16PS kernel of sgemm_bf16.c), with the epilogue (sgemm_epilogue.c)
 * applied per finished tile while it is in L1. sgemm_dispatch.c chooses the kernel. */
#include "sam3neck_kernels.h"
#include "sgemm_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SAM3NECK_X86 1
#endif

/* ---- kernels ---------------------------------------------------------------------------------
 * kern(kc, a, b, bps, c, ldc, acc): the full MR x NR tile
 *   c[r*ldc + j] (acc ? += : =) sum_kk A(r, kk) * B(kk, j)
 * where B(kk, j) = b[(j / 16) * bps + kk * 16 + j % 16] (bps: the floats between panels) and A
 * is a micro-panel packed k-major, A(r, kk) = a[kk*MR + r] (pack_a's layout), or, for the
 * `chunked` form, in chunks of 16 k-values, row by row within a chunk: A(r, kk) = a[(kk/16)*16*MR
 * + r*16 + kk%16] (sam3neck_sgemm_a_packed_index: what a producer of sixteen-channel vectors,
 * such as the Winograd input transform, writes with whole-vector stores). Both forms start chunk
 * k0 at a + k0*MR. */
typedef void (*kernel_fn)(size_t kc, const float *a, const float *b, size_t bps, float *c, size_t ldc, int acc);

typedef struct {
  int mr, nr;        /* register tile */
  size_t mc, kc, nc; /* default cache blocking (measured: sam3neck-gemm-bench) */
  kernel_fn fn;
  kernel_fn chunked; /* the same tile reading A in chunks (NULL: the kernel has no such form) */
} kernel_info;

/* The default nc when C is not stored in place (strided store or hook) and k takes more than one
 * pass: the mc x nc block accumulator then has to stay in L2 next to the packed A. */
#define NC_STORE 512

enum { GEN_MR = 4, GEN_NR = 16 };

/* A(r, kk) of a micro-panel of mr rows in either form (see above). */
static inline size_t a_index(int chunked, size_t mr, size_t r, size_t kk) {
  return chunked ? (kk & ~(size_t)15) * mr + r * 16 + (kk & 15) : kk * mr + r;
}

static inline void generic_body(int chunked, size_t kc, const float *a, const float *b, float *c, size_t ldc, int acc) {
  float t[GEN_MR][GEN_NR];
  for (int r = 0; r < GEN_MR; r++)
    for (int j = 0; j < GEN_NR; j++) t[r][j] = 0.0f;
  for (size_t kk = 0; kk < kc; kk++) {
    const float *bk = b + kk * PANEL;
    for (int r = 0; r < GEN_MR; r++) {
      float av = a[a_index(chunked, GEN_MR, (size_t)r, kk)];
      for (int j = 0; j < GEN_NR; j++) t[r][j] += av * bk[j];
    }
  }
  for (int r = 0; r < GEN_MR; r++)
    for (int j = 0; j < GEN_NR; j++) c[r * ldc + j] = acc ? c[r * ldc + j] + t[r][j] : t[r][j];
}

static void kern_generic(size_t kc, const float *a, const float *b, size_t bps, float *c, size_t ldc, int acc) {
  (void)bps; /* one panel */
  generic_body(0, kc, a, b, c, ldc, acc);
}
static void kern_generic_chunked(size_t kc, const float *a, const float *b, size_t bps, float *c, size_t ldc, int acc) {
  (void)bps;
  generic_body(1, kc, a, b, c, ldc, acc);
}

#ifdef SAM3NECK_X86

/* The register-tile kernels are macro bodies laid out by hand: clang-format leaves them alone. */
/* clang-format off */
/* The vector kernels are written once, as always-inlined bodies with the tile shape as constant
 * arguments, over named accumulators (c<row>_<vector>): with constants, the unused ones vanish and
 * the rest stay in registers (an array of accumulators was kept in memory by clang -O2). */
#define ROWS16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

/* CH: A in chunks (the `chunked` form); the k loop then runs a chunk of 16 at a time, so that
 * every A address is a constant offset from the chunk's start. */
static inline __attribute__((always_inline, target("avx2,fma"))) void
avx2_body(const int MR, const int CH, size_t kc, const float *a, const float *b, float *c, size_t ldc, int acc) {
  /* MR rows x 16 columns (one panel) = 2 ymm per row; MR <= 6 */
#define DECL(r) __m256 c##r##_0 = _mm256_setzero_ps(), c##r##_1 = _mm256_setzero_ps();
  DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5)
#undef DECL
  const size_t RS = CH ? 16 : 1, JS = CH ? 1 : (size_t)MR; /* A's steps per row and per k */
  for (size_t k0 = 0; k0 < kc; k0 += 16) {
    const size_t len = kc - k0 < 16 ? kc - k0 : 16;
    const float *ac = a + k0 * MR, *bc = b + k0 * PANEL;
    for (size_t j = 0; j < len; j++) {
    const __m256 b0 = _mm256_loadu_ps(bc + j * PANEL), b1 = _mm256_loadu_ps(bc + j * PANEL + 8);
    const float *ak = ac + j * JS;
#define ROW(r)                                                                                     \
    if (MR > r) {                                                                                  \
      __m256 av = _mm256_broadcast_ss(ak + r * RS);                                                \
      c##r##_0 = _mm256_fmadd_ps(av, b0, c##r##_0);                                                \
      c##r##_1 = _mm256_fmadd_ps(av, b1, c##r##_1);                                                \
    }
    ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
  }
#define STORE(r)                                                                                   \
  if (MR > r) {                                                                                    \
    float *cp = c + r * ldc;                                                                       \
    if (acc) {                                                                                     \
      c##r##_0 = _mm256_add_ps(c##r##_0, _mm256_loadu_ps(cp));                                     \
      c##r##_1 = _mm256_add_ps(c##r##_1, _mm256_loadu_ps(cp + 8));                                 \
    }                                                                                              \
    _mm256_storeu_ps(cp, c##r##_0);                                                                \
    _mm256_storeu_ps(cp + 8, c##r##_1);                                                            \
  }
  STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
}

__attribute__((target("avx2,fma"))) static void kern_avx2_6x16(size_t kc, const float *a,
                                                                const float *b, size_t bps,
                                                                float *c, size_t ldc, int acc) {
  (void)bps; /* one panel */
  avx2_body(6, 0, kc, a, b, c, ldc, acc);
}
__attribute__((target("avx2,fma"))) static void kern_avx2_6x16_chunked(size_t kc, const float *a,
                                                                        const float *b, size_t bps,
                                                                        float *c, size_t ldc, int acc) {
  (void)bps;
  avx2_body(6, 1, kc, a, b, c, ldc, acc);
}

static inline __attribute__((always_inline, target("avx512f"))) void
avx512_body(const int MR, const int P, const int CH, size_t kc, const float *a, const float *b,
            size_t bps, float *c, size_t ldc, int acc) {
  /* MR rows (<= 16) x P panels (<= 4) of 16 columns, one zmm each; MR * P + P + 1 <= 32 */
#define DECL(r) __m512 c##r##_0 = _mm512_setzero_ps(), c##r##_1 = c##r##_0, c##r##_2 = c##r##_0, c##r##_3 = c##r##_0;
  ROWS16(DECL)
#undef DECL
  const size_t RS = CH ? 16 : 1, JS = CH ? 1 : (size_t)MR; /* A's steps per row and per k */
  for (size_t k0 = 0; k0 < kc; k0 += 16) {
    const size_t len = kc - k0 < 16 ? kc - k0 : 16;
    const float *ac = a + k0 * MR;
    const float *b0p = b + k0 * PANEL, *b1p = b0p + bps, *b2p = b0p + 2 * bps, *b3p = b0p + 3 * bps;
    for (size_t kk = 0; kk < len; kk++) {
    __m512 b0 = _mm512_loadu_ps(b0p + kk * PANEL), b1 = b0, b2 = b0, b3 = b0;
    if (P > 1) b1 = _mm512_loadu_ps(b1p + kk * PANEL);
    if (P > 2) b2 = _mm512_loadu_ps(b2p + kk * PANEL);
    if (P > 3) b3 = _mm512_loadu_ps(b3p + kk * PANEL);
    const float *ak = ac + kk * JS;
#define ROW(r)                                                                                     \
    if (MR > r) {                                                                                  \
      __m512 av = _mm512_set1_ps(ak[r * RS]);                                                      \
      c##r##_0 = _mm512_fmadd_ps(av, b0, c##r##_0);                                                \
      if (P > 1) c##r##_1 = _mm512_fmadd_ps(av, b1, c##r##_1);                                     \
      if (P > 2) c##r##_2 = _mm512_fmadd_ps(av, b2, c##r##_2);                                     \
      if (P > 3) c##r##_3 = _mm512_fmadd_ps(av, b3, c##r##_3);                                     \
    }
    ROWS16(ROW)
#undef ROW
    }
  }
#define ST(r, p)                                                                                   \
  if (P > p) {                                                                                     \
    float *cp = c + r * ldc + p * PANEL;                                                           \
    if (acc) c##r##_##p = _mm512_add_ps(c##r##_##p, _mm512_loadu_ps(cp));                          \
    _mm512_storeu_ps(cp, c##r##_##p);                                                              \
  }
#define STORE(r) if (MR > r) { ST(r, 0) ST(r, 1) ST(r, 2) ST(r, 3) }
  ROWS16(STORE)
#undef STORE
#undef ST
}

__attribute__((target("avx512f"))) static void kern_avx512_14x32(size_t kc, const float *a,
                                                                  const float *b, size_t bps,
                                                                  float *c, size_t ldc, int acc) {
  avx512_body(14, 2, 0, kc, a, b, bps, c, ldc, acc);
}
__attribute__((target("avx512f"))) static void kern_avx512_6x64(size_t kc, const float *a,
                                                                 const float *b, size_t bps,
                                                                 float *c, size_t ldc, int acc) {
  avx512_body(6, 4, 0, kc, a, b, bps, c, ldc, acc);
}
__attribute__((target("avx512f"))) static void kern_avx512_12x32(size_t kc, const float *a,
                                                                  const float *b, size_t bps,
                                                                  float *c, size_t ldc, int acc) {
  avx512_body(12, 2, 0, kc, a, b, bps, c, ldc, acc);
}
__attribute__((target("avx512f"))) static void kern_avx512_12x32_chunked(size_t kc, const float *a,
                                                                          const float *b, size_t bps,
                                                                          float *c, size_t ldc, int acc) {
  avx512_body(12, 2, 1, kc, a, b, bps, c, ldc, acc);
}

/* clang-format on */
int sam3neck_cpu_has_avx512f(void) { return __builtin_cpu_supports("avx512f"); }

#else
int sam3neck_cpu_has_avx512f(void) { return 0; }
#endif

/* Variants: index 0 is the default of each kernel family; the others are for measurement. */
static const kernel_info *lookup(int kernel, int variant) {
  static const kernel_info generic[] = {{GEN_MR, GEN_NR, 64, 256, 4096, kern_generic, kern_generic_chunked}};
#ifdef SAM3NECK_X86
  /* kc 256 (not 512): flat here, and Zen 3's L2 (512 KB) is half Zen 5's */
  static const kernel_info avx2[] = {{6, 16, 192, 256, 4096, kern_avx2_6x16, kern_avx2_6x16_chunked}};
  /* 12 x 32 by measurement (sam3neck-gemm-bench tune, Zen 5): within noise of 6 x 64 on the
   * large shapes, ahead of both on m = 288 (24 whole tiles; 14 leaves edge tiles on 288, 324
   * and 2592 rows); kc 512 and mc 96 near the best on every shape tried. */
  static const kernel_info avx512[] = {
      {12, 32, 96, 512, 4096, kern_avx512_12x32, kern_avx512_12x32_chunked},
      {14, 32, 112, 512, 4096, kern_avx512_14x32, NULL},
      {6, 64, 96, 512, 4096, kern_avx512_6x64, NULL},
  };
#endif
  /* bfloat16 pairs (sgemm_bf16.c): kc counts pairs (512 values of k, as the float32 kernel) */
  static const kernel_info bf16_emulated[] = {{12, 32, 96, 256, 4096, sam3neck_sgemm_bf16_kern_emulated, NULL}};
#if defined(__x86_64__) && defined(__linux__)
  static const kernel_info bf16_native[] = {{12, 32, 96, 256, 4096, sam3neck_sgemm_bf16_kern_native, NULL}};
#endif
  switch (kernel) {
  case SAM3NECK_SGEMM_AVX512_BF16_EMULATED: return variant == 0 ? &bf16_emulated[0] : NULL;
#if defined(__x86_64__) && defined(__linux__)
  case SAM3NECK_SGEMM_AVX512_BF16: return variant == 0 ? &bf16_native[0] : NULL;
#endif
  case SAM3NECK_SGEMM_GENERIC: return variant == 0 ? &generic[0] : NULL;
#ifdef SAM3NECK_X86
  case SAM3NECK_SGEMM_AVX2: return variant == 0 ? &avx2[0] : NULL;
  case SAM3NECK_SGEMM_AVX512:
    return variant >= 0 && variant < (int)(sizeof avx512 / sizeof avx512[0]) ? &avx512[variant] : NULL;
#endif
  default: return NULL;
  }
}

/* ---- driver -------------------------------------------------------------------------------- */

typedef struct {
  size_t mc, kc, nc;
  int mr, nr;
} blocking;

/* Row-major C with whole rows apart (rs_c >= n): the kernels accumulate in C itself. Any other
 * strides (NCHW, or m = 1 with rs_c = cs_c = 1) go through the strided store. */
static int in_place(const sam3neck_sgemm_args *g) {
  return g->store == NULL && g->cs_c == 1 && g->rs_c >= 0 && (size_t)g->rs_c >= g->n;
}

/* The bfloat16 kernels whose operands are packed as the float32 ones, one pair of k a value. */
static int packs_pairs(int kernel) {
  return kernel == SAM3NECK_SGEMM_AVX512_BF16 || kernel == SAM3NECK_SGEMM_AVX512_BF16_EMULATED;
}

/* Packed values along k: k, or its pairs. */
static size_t k_values(int kernel, size_t k) { return packs_pairs(kernel) ? (k + 1) / 2 : k; }

/* k counts packed values (k_values). */
static blocking blocking_for(const kernel_info *ki, const sam3neck_sgemm_args *g, int direct, size_t k) {
  blocking bl;
  bl.mr = ki->mr;
  bl.nr = ki->nr;
  bl.mc = g->mc ? g->mc : ki->mc;
  bl.kc = g->kc ? g->kc : ki->kc;
  /* Not in place: one pass over k when k <= 2 kc, so that each tile goes from the kernel to the
   * store through the L1 tile buffer with no block accumulator, and then nc as in place
   * (measured on level 0's first stage with the phase scatter, k = 1024, n = 2048: kc 1024 and
   * nc 4096 7-10% faster than kc 512 or 1024 with nc 256..1024). */
  if (!g->kc && !direct && k <= 2 * ki->kc) bl.kc = k > 0 ? k : 1;
  bl.nc = g->nc ? g->nc : (direct || bl.kc >= k ? ki->nc : NC_STORE);
  bl.mc = (bl.mc + bl.mr - 1) / bl.mr * bl.mr; /* whole micro-panels */
  bl.nc = (bl.nc + bl.nr - 1) / bl.nr * bl.nr;
  if (bl.nc % PANEL) bl.nc = (bl.nc + PANEL - 1) / PANEL * PANEL;
  return bl;
}

static size_t round_up(size_t x, size_t q) { return (x + q - 1) / q * q; }

/* Floats of workspace: packed A (mc x kc), the block accumulator (mc x nc, strided/callback
 * stores only), a tile. */
/* The block accumulator (mc x nc) is needed only when C is not in place and k takes more than
 * one pass; otherwise tiles go straight to C or through the tile buffer. */
static int needs_cbuf(const blocking *bl, size_t k, int direct) { return !direct && bl->kc < k; }

/* k counts packed values; pairs: A is converted to pairs before it is packed (one more mc x kc). */
static size_t workspace_floats(const blocking *bl, size_t m, size_t n, size_t k, int direct, int pairs) {
  size_t mc = bl->mc < round_up(m, bl->mr) ? bl->mc : round_up(m, bl->mr);
  size_t kc = bl->kc < k ? bl->kc : k;
  size_t nc = bl->nc < round_up(n, bl->nr) ? bl->nc : round_up(n, bl->nr);
  size_t cbuf = needs_cbuf(bl, k, direct) ? round_up(mc * nc, 16) : 0;
  return (pairs ? 2 : 1) * round_up(mc * kc, 16) + cbuf + MAX_MR * MAX_NR + 16 /* alignment */;
}

size_t sam3neck_sgemm_f32_workspace_floats(const sam3neck_sgemm_args *g) {
  size_t best = 0;
  static const int kinds[] = {
      SAM3NECK_SGEMM_GENERIC, SAM3NECK_SGEMM_AVX2, SAM3NECK_SGEMM_AVX512,
      SAM3NECK_SGEMM_AVX512_BF16_EMULATED}; /* (the native bf16 kernel blocks as its emulation) */
  for (size_t q = 0; q < sizeof kinds / sizeof kinds[0]; q++) {
    const int kind = kinds[q];
    for (int v = 0;; v++) {
      const kernel_info *kv = lookup(kind, v);
      if (kv == NULL) break;
      for (int direct = 0; direct < 2; direct++) { /* either store form */
        const size_t k = k_values(kind, g->k);
        blocking bl = blocking_for(kv, g, direct, k);
        size_t s = workspace_floats(&bl, g->m, g->n, k, direct, packs_pairs(kind));
        if (s > best) best = s;
      }
    }
  }
  return best;
}

int sam3neck_sgemm_f32_best(void) {
  if (sam3neck_cpu_has_avx512f() && sam3neck_cpu_has_avx2_fma()) return SAM3NECK_SGEMM_AVX512;
  if (sam3neck_cpu_has_avx2_fma()) return SAM3NECK_SGEMM_AVX2;
  return SAM3NECK_SGEMM_GENERIC;
}

#ifdef SAM3NECK_X86
/* One full micro-panel of row-major A (mr rows from src, leading dimension lda, kc columns) into
 * dst[kk*mr + r], with register transposes instead of one strided store per value: rows in
 * groups of 8 through an 8 x 8 AVX transpose, then groups of 4 through a 4 x 4 SSE one, eight or
 * four k-columns at a time; what is left (rows, columns) element by element. Pure data movement:
 * the packed values are those of the scalar loop, bit for bit. */
__attribute__((target("avx2"))) static void pack_panel_avx2(const float *src, size_t lda, size_t kc, int mr,
                                                            float *dst) {
  int r0 = 0;
  for (; r0 + 8 <= mr; r0 += 8) {
    const float *s = src + (size_t)r0 * lda;
    size_t kk = 0;
    for (; kk + 8 <= kc; kk += 8) {
      __m256 r[8], t[8], u[8];
      for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(s + (size_t)q * lda + kk);
      for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
      }
      for (int q = 0; q < 8; q += 4) {
        u[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
        u[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
        u[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
        u[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
      }
      /* u[0..3]: k-columns 0, 1, 2, 3 (low lanes) and 4, 5, 6, 7 (high lanes) of rows 0-3; u[4..7]: rows 4-7 */
      for (int q = 0; q < 4; q++) {
        _mm256_storeu_ps(dst + (kk + (size_t)q) * (size_t)mr + r0, _mm256_permute2f128_ps(u[q], u[q + 4], 0x20));
        _mm256_storeu_ps(dst + (kk + 4 + (size_t)q) * (size_t)mr + r0, _mm256_permute2f128_ps(u[q], u[q + 4], 0x31));
      }
    }
    for (; kk < kc; kk++)
      for (int q = 0; q < 8; q++) dst[kk * (size_t)mr + (size_t)(r0 + q)] = s[(size_t)q * lda + kk];
  }
  for (; r0 + 4 <= mr; r0 += 4) {
    const float *s = src + (size_t)r0 * lda;
    size_t kk = 0;
    for (; kk + 4 <= kc; kk += 4) {
      __m128 a = _mm_loadu_ps(s + kk), b = _mm_loadu_ps(s + lda + kk);
      __m128 c = _mm_loadu_ps(s + 2 * lda + kk), d = _mm_loadu_ps(s + 3 * lda + kk);
      _MM_TRANSPOSE4_PS(a, b, c, d);
      _mm_storeu_ps(dst + kk * (size_t)mr + r0, a);
      _mm_storeu_ps(dst + (kk + 1) * (size_t)mr + r0, b);
      _mm_storeu_ps(dst + (kk + 2) * (size_t)mr + r0, c);
      _mm_storeu_ps(dst + (kk + 3) * (size_t)mr + r0, d);
    }
    for (; kk < kc; kk++)
      for (int q = 0; q < 4; q++) dst[kk * (size_t)mr + (size_t)(r0 + q)] = s[(size_t)q * lda + kk];
  }
  for (; r0 < mr; r0++)
    for (size_t kk = 0; kk < kc; kk++) dst[kk * (size_t)mr + (size_t)r0] = src[(size_t)r0 * lda + kk];
}
#endif

/* dst[kk*mr + r] = src[kk*lda + r] for r < mr, kk < kc (a micro-panel of a transposed A). */
static inline __attribute__((always_inline)) void copy_columns(float *dst, const float *src, size_t lda, size_t kc,
                                                               size_t mr) {
  for (size_t kk = 0; kk < kc; kk++)
    for (size_t r = 0; r < mr; r++) dst[kk * mr + r] = src[kk * lda + r];
}

/* A block, rows i0..i0+mc, k-columns p0..p0+kc, into micro-panels of mr rows (zero-padded):
 * ap[(ir/mr) * kc*mr + kk*mr + r]. */
static void pack_a(const sam3neck_sgemm_args *g, size_t i0, size_t mc, size_t p0, size_t kc, int mr, float *ap,
                   int kernel_uses_avx2) {
  for (size_t ir = 0; ir < mc; ir += (size_t)mr) {
    size_t rows = mc - ir < (size_t)mr ? mc - ir : (size_t)mr;
    float *dst = ap + ir * kc;
    if (g->a_trans) { /* A^T stored k x m: the mr values of one kk are contiguous */
      const float *src = g->a + p0 * g->lda + i0 + ir;
      if (rows == (size_t)mr) {
        /* mr floats per k: a call to memcpy each cost ~1% of level 0 (NCHW input); with mr a
         * constant the compiler moves them in registers */
        switch (mr) {
        case 12: copy_columns(dst, src, g->lda, kc, 12); break;
        case 6: copy_columns(dst, src, g->lda, kc, 6); break;
        case 4: copy_columns(dst, src, g->lda, kc, 4); break;
        default: copy_columns(dst, src, g->lda, kc, (size_t)mr); break;
        }
      } else {
        for (size_t kk = 0; kk < kc; kk++) {
          size_t r = 0;
          for (; r < rows; r++) dst[kk * mr + r] = src[kk * g->lda + r];
          for (; r < (size_t)mr; r++) dst[kk * mr + r] = 0.0f;
        }
      }
    } else {
      const float *src = g->a + (i0 + ir) * g->lda + p0;
#ifdef SAM3NECK_X86
      if (rows == (size_t)mr && kernel_uses_avx2) {
        pack_panel_avx2(src, g->lda, kc, mr, dst);
        continue;
      }
#endif
      size_t r = 0;
      for (; r < rows; r++) {
        const float *row = src + r * g->lda;
        for (size_t kk = 0; kk < kc; kk++) dst[kk * mr + r] = row[kk];
      }
      for (; r < (size_t)mr; r++)
        for (size_t kk = 0; kk < kc; kk++) dst[kk * mr + r] = 0.0f;
    }
  }
}

int sam3neck_sgemm_run_f32(const sam3neck_sgemm_args *g, int kernel) {
  const kernel_info *ki = lookup(kernel, g->variant);
  if (ki == NULL) return -2;
  const float *prepacked = g->a_packed; /* A in the chunked form, whole: no packing here */
  if (prepacked != NULL && ki->chunked == NULL) return -5;
  if (g->m == 0 || g->n == 0) return 0;
  if (g->workspace == NULL || (g->k > 0 && ((g->a == NULL && prepacked == NULL) || g->packed_b == NULL))) return -3;
  if (g->store == NULL && g->c == NULL) return -3;
  if (g->k > 0 && prepacked == NULL && g->lda < (g->a_trans ? g->m : g->k)) return -4;
  /* direct: accumulate in C itself (row-major, unit column stride) */
  const int direct = in_place(g), pairs = packs_pairs(kernel);
  /* k: the packed values along k (pairs for the bfloat16 kernel, whose panels are round_up(k, 32)
   * / 2 pairs long) */
  const size_t m = g->m, n = g->n, k = k_values(kernel, g->k);
  blocking bl = blocking_for(ki, g, direct, k);
  const size_t mr = (size_t)bl.mr, nr = (size_t)bl.nr;
  if (prepacked != NULL && bl.kc < k) bl.kc = bl.kc < 16 ? 16 : bl.kc / 16 * 16; /* k blocks start at chunks */
  const kernel_fn kern = prepacked != NULL ? ki->chunked : ki->fn;
  const size_t panel_floats = mr * round_up(g->k, 16);             /* a prepacked micro-panel */
  const size_t bps = PANEL * (pairs ? round_up(g->k, 32) / 2 : k); /* values between panels */

  float *ws = (float *)(((uintptr_t)g->workspace + 63) & ~(uintptr_t)63);
  const size_t mc_max = bl.mc < round_up(m, mr) ? bl.mc : round_up(m, mr);
  const size_t kc_max = bl.kc < k ? bl.kc : k;
  const size_t nc_max = bl.nc < round_up(n, nr) ? bl.nc : round_up(n, nr);
  float *ap = ws;
  float *cbuf = ap + round_up(mc_max * kc_max, 16);
  float *tile = cbuf + (needs_cbuf(&bl, k, direct) ? round_up(mc_max * nc_max, 16) : 0);
  uint32_t *converted = (uint32_t *)(tile + MAX_MR * MAX_NR); /* pairs: A's block as pairs, before packing */

  if (k == 0) { /* C = epilogue(0) */
    for (size_t i = 0; i < m; i += mr)
      for (size_t j = 0; j < n; j += nr) {
        size_t rows = m - i < mr ? m - i : mr, cols = n - j < nr ? n - j : nr;
        memset(tile, 0, sizeof(float) * MAX_MR * MAX_NR);
        sam3neck_sgemm_finish_tile(g, kernel, tile, nr, i, j, rows, cols, 0);
      }
    return 0;
  }

  for (size_t jc = 0; jc < n; jc += nc_max) {
    const size_t nc = n - jc < nc_max ? n - jc : nc_max;
    for (size_t ic = 0; ic < m; ic += mc_max) {
      const size_t mc = m - ic < mc_max ? m - ic : mc_max;
      for (size_t pc = 0; pc < k; pc += kc_max) {
        const size_t kc = k - pc < kc_max ? k - pc : kc_max;
        const int acc = pc > 0, last = pc + kc == k;
        if (prepacked != NULL) {
          /* nothing to pack: the block's micro-panels start at its rows' panel, chunk pc */
        } else if (pairs) { /* the block as pairs in A's orientation, then packed as float32 values are */
          sam3neck_sgemm_bf16_convert_a(kernel, g, ic, mc, pc, kc, converted, g->a_trans ? mc : kc);
          sam3neck_sgemm_args c = *g;
          c.a = (const float *)converted;
          c.lda = g->a_trans ? mc : kc;
          pack_a(&c, 0, mc, 0, kc, bl.mr, ap, kernel == SAM3NECK_SGEMM_AVX512_BF16);
        } else {
          pack_a(g, ic, mc, pc, kc, bl.mr, ap, kernel != SAM3NECK_SGEMM_GENERIC);
        }
        for (size_t jr = 0; jr < nc; jr += nr) {
          const size_t j = jc + jr;
          const size_t cols = nc - jr < nr ? nc - jr : nr;
          const float *bp = g->packed_b + (j / PANEL) * bps + pc * PANEL;
          for (size_t ir = 0; ir < mc; ir += mr) {
            const size_t i = ic + ir;
            const size_t rows = mc - ir < mr ? mc - ir : mr;
            const float *a = prepacked != NULL ? prepacked + (i / mr) * panel_floats + pc * mr : ap + ir * kc;
            float *cp;
            size_t ldc;
            if (direct) {
              cp = g->c + (ptrdiff_t)i * g->rs_c + (ptrdiff_t)j;
              ldc = (size_t)g->rs_c;
            } else if (kc == k) {
              cp = tile;
              ldc = nr;
            } /* one pass over k: no block accumulator */
            else {
              cp = cbuf + ir * nc_max + jr;
              ldc = nc_max;
            }
            if (!direct || (rows == mr && cols == nr)) { /* the cbuf has room for whole tiles */
              kern(kc, a, bp, bps, cp, ldc, acc);
              if (last) sam3neck_sgemm_finish_tile(g, kernel, cp, ldc, i, j, rows, cols, direct);
            } else { /* an edge tile: through the tile buffer */
              if (acc)
                for (size_t r = 0; r < rows; r++) memcpy(tile + r * nr, cp + r * ldc, cols * sizeof(float));
              kern(kc, a, bp, bps, tile, nr, acc);
              if (last) {
                sam3neck_sgemm_finish_tile(g, kernel, tile, nr, i, j, rows, cols, 0);
              } else {
                for (size_t r = 0; r < rows; r++) memcpy(cp + r * ldc, tile + r * nr, cols * sizeof(float));
              }
            }
          }
        }
      }
    }
  }
  return 0;
}

size_t sam3neck_sgemm_a_panel_rows(int kernel, int variant) {
  const kernel_info *ki = lookup(kernel, variant);
  return ki != NULL && ki->chunked != NULL ? (size_t)ki->mr : 0;
}
