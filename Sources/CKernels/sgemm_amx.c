/* bf16x3 products on AMX (see sam3neck_kernels.h, "bf16x3 products on AMX"): B split once into
 * bfloat16 hi/lo tiles, A split per block of rows, three tile products per 16 x 16 x 32 step,
 * and the float32 kernels' epilogue (bias, GELU, store) per finished 16 x 32 tile. */
#include "sam3neck_kernels.h"
#include "sgemm_internal.h"

#include <stdint.h>
#include <string.h>

#define AMX_MC 256  /* rows of A split per block: 256 x k x 4 bytes (1 MB at k = 1024) stays in L2 */

static size_t up(size_t x, size_t q) { return (x + q - 1) / q * q; }

size_t sam3neck_sgemm_bf16x3_b_floats(size_t k, size_t n) {
  /* the float32 packing's columns (whole groups of 64) by k rounded to 32, 4 bytes per value */
  return sam3neck_sgemm_packed_b_floats(k, n) / (k ? k : 1) * up(k ? k : 1, 32);
}

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_state; /* 0: not asked yet, 1: usable, -1: not */

static int amx_probe(void) {
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
  if (a < 0xd) return 0;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
  const int tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
  if (!tile || !bf16 || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return 0;
  /* Linux keeps the tile data out of a thread's state until the process asks for it. */
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int sam3neck_cpu_has_amx_bf16(void) {
  int s = __atomic_load_n(&amx_state, __ATOMIC_ACQUIRE);
  if (s == 0) { /* racing first callers all probe; they agree, and the request is idempotent */
    s = amx_probe() ? 1 : -1;
    __atomic_store_n(&amx_state, s, __ATOMIC_RELEASE);
  }
  return s > 0;
}

/* Float bits rounded to nearest even on their top 16 bits (the bfloat16 value, as a float), NaN
 * kept NaN: adding the rounding bias to a NaN's payload could carry into the sign or wrap to zero
 * (0x7FFFFFFF would become -0, 0xFFFFFFFF +0), so NaN lanes become the quiet NaN instead. */
static inline __attribute__((always_inline, target("avx512f,avx512bw"))) __m512i round_bf16(__m512i u) {
  const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
  const __m512i top = _mm512_set1_epi32((int)0xFFFF0000u), magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, magnitude), _mm512_set1_epi32(0x7F800000));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
  return _mm512_mask_mov_epi32(_mm512_and_si512(r, top), nan, _mm512_set1_epi32(0x7FC00000));
}

/* hi and lo of 16 floats as 16-bit values in the low half of each 32-bit lane; *bad gets the lanes
 * whose hi is not finite (NaN, Inf, or rounded past the largest bfloat16). Where hi is not
 * finite, lo is NaN (x is NaN or Inf) or the infinity of the other sign (x finite, hi rounded
 * to Inf), so a_hi*b_hi + a_hi*b_lo + a_lo*b_hi is NaN whatever b is: NaN * b, Inf - Inf, or
 * Inf * 0 when b_hi = 0. */
static inline __attribute__((always_inline, target("avx512f,avx512bw"))) void
split16(__m512 x, __m512i *hi, __m512i *lo, __mmask16 *bad) {
  const __m512i exp = _mm512_set1_epi32(0x7F800000);
  __m512i h = round_bf16(_mm512_castps_si512(x));
  *bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(h, exp), exp);
  __m512i l = round_bf16(_mm512_castps_si512(_mm512_sub_ps(x, _mm512_castsi512_ps(h)))); /* exact, then rounded */
  *hi = _mm512_srli_epi32(h, 16);
  *lo = _mm512_srli_epi32(l, 16);
}

/* Two vectors of 16 (values in the low halves) into 32 interleaved 16-bit values a0 b0 a1 b1 ... */
static inline __attribute__((always_inline, target("avx512f,avx512bw"))) __m512i pairs(__m512i a, __m512i b) {
  return _mm512_or_si512(a, _mm512_slli_epi32(b, 16));
}

/* Two vectors of 16 into 32 consecutive 16-bit values a0 .. a15 b0 .. b15. */
static inline __attribute__((always_inline, target("avx512f,avx512bw"))) __m512i concat(__m512i a, __m512i b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)), _mm512_cvtepi32_epi16(b), 1);
}

/* sam3neck_sgemm_pack_b_bf16x3_rows, arguments checked. */
static __attribute__((target("avx512f,avx512bw"))) int split_rows(size_t k, size_t n, size_t k0, size_t rows,
                                                                  const float *band, float *out) {
  const size_t panels = sam3neck_sgemm_packed_b_floats(k, n) / (k ? k : 1) / 16, kb_count = up(k, 32) / 32;
  __mmask16 bad = 0;
  const __m512 zero = _mm512_setzero_ps();
  for (size_t jb = 0; jb < panels / 2; jb++)
    for (size_t kb = k0 / 32; kb < up(k0 + rows, 32) / 32; kb++) {
      __m512i *dst = (__m512i *)(out + ((jb * kb_count + kb) * 4) * 256); /* 4 tiles of 256 lanes */
      for (int half = 0; half < 2; half++) {
        const float *panel = band + (2 * jb + (size_t)half) * 16 * rows;
        for (int p = 0; p < 16; p++) {
          const size_t r0 = kb * 32 + 2 * (size_t)p - k0; /* the pair's first row, in the band */
          __m512 x0 = r0 < rows ? _mm512_loadu_ps(panel + r0 * 16) : zero;
          __m512 x1 = r0 + 1 < rows ? _mm512_loadu_ps(panel + (r0 + 1) * 16) : zero;
          __m512i h0, l0, h1, l1;
          split16(x0, &h0, &l0, &bad);
          split16(x1, &h1, &l1, &bad);
          _mm512_stream_si512(dst + (2 * half) * 16 + p, pairs(h0, h1));
          _mm512_stream_si512(dst + (2 * half + 1) * 16 + p, pairs(l0, l1));
        }
      }
    }
  _mm_sfence();
  return bad ? 1 : 0;
}

int sam3neck_sgemm_pack_b_bf16x3_rows(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out) {
  if (k0 % 32 != 0 || k0 > k || rows > k - k0 || (rows % 32 != 0 && k0 + rows != k)) return -1;
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return -1;
  return split_rows(k, n, k0, rows, band, out);
}

int sam3neck_sgemm_pack_b_bf16x3(size_t k, size_t n, const float *packed_b, float *out) {
  return sam3neck_sgemm_pack_b_bf16x3_rows(k, n, 0, k, packed_b, out) != 0;
}

/* Whether some of the len floats at src does not split: NaN, Inf, or a magnitude whose bfloat16
 * rounding is past the largest finite one (|bits| >= 0x7F7F8000, the same test split16 makes on
 * hi). */
static __attribute__((target("avx512f,avx512bw"))) int unsplittable(const float *src, size_t len) {
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF), limit = _mm512_set1_epi32(0x7F7F7FFF);
  __mmask16 bad = 0;
  for (size_t x = 0; x < len; x += 16) {
    const __mmask16 mask = len - x >= 16 ? 0xFFFF : (__mmask16)((1u << (len - x)) - 1);
    __m512i u = _mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(mask, src + x)), magnitude);
    bad |= _mm512_cmpgt_epi32_mask(u, limit);
  }
  return bad != 0;
}

/* Whether some value of A does not split. One read of A, so that a call goes to the float32
 * kernel before anything is split or stored. */
static int a_has_unsplittable(const sam3neck_sgemm_args *g) {
  const size_t lines = g->a_trans ? g->k : g->m, len = g->a_trans ? g->m : g->k;
  for (size_t line = 0; line < lines; line++)
    if (unsplittable(g->a + line * g->lda, len)) return 1;
  return 0;
}

/* Rows i0 .. i0 + rows of A (rows <= AMX_MC, zero rows up to a multiple of 16) into aw: per tile
 * row t and kb, a hi then a lo tile of 16 x 32 (a[r][kk] = A(i0 + 16 t + r, 32 kb + kk)). A has
 * passed a_has_unsplittable. */
static __attribute__((target("avx512f,avx512bw"))) void split_a(const sam3neck_sgemm_args *g, size_t i0,
                                                                size_t rows, size_t kb_count, uint16_t *aw) {
  const size_t k = g->k, lda = g->lda;
  __mmask16 bad = 0; /* (checked before) */
  const __m512 zero = _mm512_setzero_ps();
  /* k outermost when A is read transposed: the block's rows of one k are then read together
   * (one run of up to 1 KB per k instead of 64 bytes from each of k pages per tile row). */
  const size_t tiles = up(rows, 16) / 16;
  for (size_t step = 0; step < tiles * kb_count; step++) {
      const size_t t = g->a_trans ? step % tiles : step / kb_count, kb = g->a_trans ? step / tiles : step % kb_count;
      uint16_t *hi = aw + (t * kb_count + kb) * 1024, *lo = hi + 512;
      const size_t k0 = kb * 32, kw = k - k0 < 32 ? k - k0 : 32;
      if (!g->a_trans) {
        const __mmask16 m0 = kw >= 16 ? 0xFFFF : (__mmask16)((1u << kw) - 1);
        const __mmask16 m1 = kw >= 32 ? 0xFFFF : kw <= 16 ? 0 : (__mmask16)((1u << (kw - 16)) - 1);
        for (int r = 0; r < 16; r++) {
          const size_t i = 16 * t + (size_t)r;
          __m512 x0 = zero, x1 = zero;
          if (i < rows) {
            const float *src = g->a + (i0 + i) * lda + k0;
            x0 = _mm512_maskz_loadu_ps(m0, src);
            x1 = _mm512_maskz_loadu_ps(m1, src + 16);
          }
          __m512i h0, l0, h1, l1;
          split16(x0, &h0, &l0, &bad);
          split16(x1, &h1, &l1, &bad);
          _mm512_store_si512((__m512i *)(hi + r * 32), concat(h0, h1));
          _mm512_store_si512((__m512i *)(lo + r * 32), concat(l0, l1));
        }
      } else { /* A^T stored k x m: 16 rows of one k are contiguous; pairs of k, then a transpose */
        const size_t r_valid = rows - 16 * t < 16 ? rows - 16 * t : 16;
        const __mmask16 mr = r_valid >= 16 ? 0xFFFF : (__mmask16)((1u << r_valid) - 1);
        const __m512i index = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                 _mm512_set1_epi32(16));
        for (int q = 0; q < 16; q++) {
          const size_t ka = k0 + 2 * (size_t)q;
          __m512 x0 = ka < k ? _mm512_maskz_loadu_ps(mr, g->a + ka * lda + i0 + 16 * t) : zero;
          __m512 x1 = ka + 1 < k ? _mm512_maskz_loadu_ps(mr, g->a + (ka + 1) * lda + i0 + 16 * t) : zero;
          __m512i h0, l0, h1, l1;
          split16(x0, &h0, &l0, &bad);
          split16(x1, &h1, &l1, &bad);
          /* lane r holds row r's pair (ka, ka + 1): 32-bit element q of the tile's row r */
          _mm512_i32scatter_epi32((int *)hi + q, index, pairs(h0, h1), 4);
          _mm512_i32scatter_epi32((int *)lo + q, index, pairs(l0, l1), 4);
        }
      }
    }
  (void)bad;
}

typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

size_t sam3neck_sgemm_amx_workspace_floats(size_t m, size_t k) {
  const size_t rows = up(m < AMX_MC ? m : AMX_MC, 16);
  return rows * up(k ? k : 1, 32) /* hi + lo, 2 x 2 bytes */ + 32 * 32 /* tile buffer */ + 16 /* alignment */;
}

/* Lines first .. first + count - 1 (at most up to line `lines`) of the 64-byte lines at p into L2. */
static inline __attribute__((always_inline)) void prefetch_lines(const char *p, size_t first, size_t count, size_t lines) {
  for (size_t line = first; line < first + count && line < lines; line++) _mm_prefetch(p + 64 * line, _MM_HINT_T1);
}

static int fallback(const sam3neck_sgemm_args *g) {
  sam3neck_sgemm_args f = *g;
  f.kernel = SAM3NECK_SGEMM_AVX512;
  f.packed_b_bf16x3 = NULL;
  return sam3neck_sgemm_run(&f);
}

__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw"))) int sam3neck_sgemm_run_amx(const sam3neck_sgemm_args *g) {
  const size_t m = g->m, n = g->n, k = g->k;
  if (k == 0) return fallback(g);
  const size_t kb_count = up(k, 32) / 32;
  uint16_t *aw = (uint16_t *)(((uintptr_t)g->workspace + 63) & ~(uintptr_t)63);
  float *tile = (float *)(aw + up(m < AMX_MC ? m : AMX_MC, 16) * up(k, 32) * 2);
  const uint16_t *bw = (const uint16_t *)g->packed_b_bf16x3;

  /* Without a float32 B there is nothing to fall back to: a row of A that does not split gives NaN
   * in all its outputs (split16), which the caller recomputes (the Winograd convs do, per tile). */
  if (g->packed_b != NULL && a_has_unsplittable(g)) return fallback(g);
  /* No bias, GELU or store hook and a row-major C (the Winograd products): whole tiles are stored
   * from the tile registers into C, not through the tile buffer and sam3neck_sgemm_finish_tile. */
  const int plain = g->store == NULL && g->bias == NULL && !g->gelu && g->cs_c == 1 && g->rs_c >= (ptrdiff_t)n;

  tile_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  for (size_t ic = 0; ic < m; ic += AMX_MC) {
    const size_t mc = m - ic < AMX_MC ? m - ic : AMX_MC;
    split_a(g, ic, mc, kb_count, aw);
    for (size_t jb = 0; jb * 32 < n; jb++) {
      const uint16_t *bp = bw + jb * kb_count * 2048;
      const size_t cols = n - jb * 32 < 32 ? n - jb * 32 : 32;
      size_t t = 0;
      /* The next strip of B (the next 32 columns, or the first again for the next block of rows;
       * kb_count x 4 KB) into L2 while this strip's products run, spread over all their steps:
       * otherwise the first pass over each strip waits on L3 for every B tile (a Winograd conv's
       * B blocks leave L2 between uses: the other blocks of its tile pass through in between).
       * Measured in the plan, 8 interleaved pairs: level 0 315 against 350 ms (medians). */
      const char *next = (const char *)(jb * 32 + 32 < n ? bp + kb_count * 2048 : bw);
      const int prefetch = jb * 32 + 32 < n || ic + AMX_MC < m;
      const size_t passes = (up(mc, 16) / 16 + 1) / 2, lines = kb_count * 64;
      const size_t per = (lines + passes * kb_count - 1) / (passes * kb_count); /* lines per step */
      /* 2 x 2 output tiles (rows 16t .. 16t + 31, columns 32jb .. 32jb + 31): each A and B tile loaded
       * serves two products, 10 loads per 12 products (B hi twice, the second time from L1) against
       * 6 per 6 for the single row of tiles below (measured 0-15% faster on the plan's shapes). */
      for (; (t + 2) * 16 <= up(mc, 16); t += 2) {
        const uint16_t *a0 = aw + t * kb_count * 1024, *a1 = a0 + kb_count * 1024;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (size_t kb = 0; kb < kb_count; kb++) {
          const uint16_t *x = a0 + kb * 1024, *y = a1 + kb * 1024, *b = bp + kb * 2048;
          if (prefetch) prefetch_lines(next, ((t / 2) * kb_count + kb) * per, per, lines);
          _tile_loadd(4, x, 64);        /* A0 hi */
          _tile_loadd(5, y, 64);        /* A1 hi */
          _tile_loadd(6, b, 64);        /* B hi, columns 0-15 */
          _tile_loadd(7, b + 1024, 64); /* B hi, columns 16-31 */
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
          _tile_loadd(6, b + 512, 64);  /* B lo, columns 0-15 */
          _tile_loadd(7, b + 1536, 64); /* B lo, columns 16-31 */
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
          _tile_loadd(4, x + 512, 64);  /* A0 lo */
          _tile_loadd(5, y + 512, 64);  /* A1 lo */
          _tile_loadd(6, b, 64);        /* B hi again (from L1) */
          _tile_loadd(7, b + 1024, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        if (plain && cols == 32 && (t + 2) * 16 <= mc) { /* whole tiles with nothing to add: straight into C */
          float *c = g->c + (ptrdiff_t)(ic + t * 16) * g->rs_c + (ptrdiff_t)jb * 32;
          _tile_stored(0, c, g->rs_c * 4);
          _tile_stored(1, c + 16, g->rs_c * 4);
          _tile_stored(2, c + 16 * g->rs_c, g->rs_c * 4);
          _tile_stored(3, c + 16 * g->rs_c + 16, g->rs_c * 4);
          continue;
        }
        _tile_stored(0, tile, 128);
        _tile_stored(1, tile + 16, 128);
        _tile_stored(2, tile + 512, 128);
        _tile_stored(3, tile + 528, 128);
        for (int h = 0; h < 2; h++) {
          const size_t r0 = (t + (size_t)h) * 16, rows = mc - r0 < 16 ? mc - r0 : 16;
          sam3neck_sgemm_finish_tile(g, SAM3NECK_SGEMM_AVX512, tile + h * 512, 32, ic + r0, jb * 32, rows, cols, 0);
        }
      }
      for (; t * 16 < mc; t++) { /* a last single row of tiles: 1 x 2 */
        const uint16_t *ap = aw + t * kb_count * 1024;
        _tile_zero(0);
        _tile_zero(1);
        for (size_t kb = 0; kb < kb_count; kb++) {
          const uint16_t *a = ap + kb * 1024, *b = bp + kb * 2048;
          if (prefetch) prefetch_lines(next, ((t / 2) * kb_count + kb) * per, per, lines);
          _tile_loadd(2, a, 64);        /* A hi */
          _tile_loadd(3, a + 512, 64);  /* A lo */
          _tile_loadd(4, b, 64);        /* B hi, columns 0-15 */
          _tile_loadd(5, b + 512, 64);  /* B lo, columns 0-15 */
          _tile_loadd(6, b + 1024, 64); /* B hi, columns 16-31 */
          _tile_loadd(7, b + 1536, 64); /* B lo, columns 16-31 */
          _tile_dpbf16ps(0, 2, 4);
          _tile_dpbf16ps(1, 2, 6);
          _tile_dpbf16ps(0, 2, 5);
          _tile_dpbf16ps(1, 2, 7);
          _tile_dpbf16ps(0, 3, 4);
          _tile_dpbf16ps(1, 3, 6);
        }
        if (plain && cols == 32 && (t + 1) * 16 <= mc) {
          float *c = g->c + (ptrdiff_t)(ic + t * 16) * g->rs_c + (ptrdiff_t)jb * 32;
          _tile_stored(0, c, g->rs_c * 4);
          _tile_stored(1, c + 16, g->rs_c * 4);
          continue;
        }
        _tile_stored(0, tile, 128);
        _tile_stored(1, tile + 16, 128);
        const size_t rows = mc - t * 16 < 16 ? mc - t * 16 : 16;
        sam3neck_sgemm_finish_tile(g, SAM3NECK_SGEMM_AVX512, tile, 32, ic + t * 16, jb * 32, rows, cols, 0);
      }
    }
  }
  _tile_release();
  return 0;
}

#else /* no AMX here */

int sam3neck_cpu_has_amx_bf16(void) { return 0; }
int sam3neck_sgemm_pack_b_bf16x3_rows(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out) {
  (void)k; (void)n; (void)k0; (void)rows; (void)band; (void)out;
  return -1;
}
int sam3neck_sgemm_pack_b_bf16x3(size_t k, size_t n, const float *packed_b, float *out) {
  (void)k; (void)n; (void)packed_b; (void)out;
  return 1;
}
size_t sam3neck_sgemm_amx_workspace_floats(size_t m, size_t k) { (void)m; (void)k; return 0; }
int sam3neck_sgemm_run_amx(const sam3neck_sgemm_args *g) { (void)g; return -1; }

#endif
