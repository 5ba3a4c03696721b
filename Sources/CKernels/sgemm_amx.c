/* bf16x3 products on AMX (see sam3neck_kernels.h, "bf16x3 products on AMX"): B split once into
 * bfloat16 hi/lo tiles, A split per block of rows, three tile products per 16 x 16 x 32 step,
 * and the float32 kernels' epilogue (bias, GELU, store) per finished 16 x 32 tile. The driver
 * (sgemm_amx_body.h) is built twice: on the AMX instructions with AVX-512 splits, and on their
 * emulation (amx_tiles.h) with the portable splits below, which give the same bits. */
#include "sam3neck_kernels.h"
#include "sgemm_internal.h"
#include "amx_tiles.h"

#include <stdint.h>
#include <string.h>

#define AMX_MC 256 /* rows of A split per block: 256 x k x 4 bytes (1 MB at k = 1024) stays in L2 */

static size_t up(size_t x, size_t q) { return (x + q - 1) / q * q; }

size_t sam3neck_sgemm_bf16x3_b_floats(size_t k, size_t n) {
  /* the float32 packing's columns (whole groups of 64) by k rounded to 32, 4 bytes per value */
  return sam3neck_sgemm_packed_b_floats(k, n) / (k ? k : 1) * up(k ? k : 1, 32);
}

/* ---- the split, portable (the same bits as the AVX-512 code below) ---------------------------- */

/* Float bits rounded to nearest even on their top 16 bits, NaN to the quiet NaN (round_bf16). */
static uint32_t round_bf16_1(uint32_t u) {
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC00000u;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
}

/* hi and lo of x (split16, one lane); *bad set when hi is not finite. */
static void split1(float x, uint16_t *hi, uint16_t *lo, int *bad) {
  const uint32_t h = round_bf16_1(bits_of_f32(x));
  if ((h & 0x7F800000u) == 0x7F800000u) *bad = 1;
  *hi = (uint16_t)(h >> 16);
  *lo = (uint16_t)(round_bf16_1(bits_of_f32(x - f32_of_bits(h))) >> 16);
}

/* split_rows, one value at a time. */
static int split_rows_portable(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out) {
  const size_t panels = sam3neck_sgemm_packed_b_floats(k, n) / (k ? k : 1) / 16, kb_count = up(k, 32) / 32;
  int bad = 0;
  for (size_t jb = 0; jb < panels / 2; jb++)
    for (size_t kb = k0 / 32; kb < up(k0 + rows, 32) / 32; kb++) {
      uint32_t *dst = (uint32_t *)out + ((jb * kb_count + kb) * 4) * 256; /* 4 tiles of 256 values */
      for (int half = 0; half < 2; half++) {
        const float *panel = band + (2 * jb + (size_t)half) * 16 * rows;
        for (int p = 0; p < 16; p++) {
          const size_t r0 = kb * 32 + 2 * (size_t)p - k0; /* the pair's first row, in the band */
          for (int j = 0; j < 16; j++) {
            uint16_t h0, l0, h1, l1;
            split1(r0 < rows ? panel[r0 * 16 + (size_t)j] : 0.0f, &h0, &l0, &bad);
            split1(r0 + 1 < rows ? panel[(r0 + 1) * 16 + (size_t)j] : 0.0f, &h1, &l1, &bad);
            dst[((2 * half) * 16 + p) * 16 + j] = (uint32_t)h0 | (uint32_t)h1 << 16;
            dst[((2 * half + 1) * 16 + p) * 16 + j] = (uint32_t)l0 | (uint32_t)l1 << 16;
          }
        }
      }
    }
  return bad;
}

/* a_has_unsplittable, one value at a time: |bits| past 0x7F7F7FFF. */
static int a_has_unsplittable_portable(const sam3neck_sgemm_args *g) {
  const size_t lines = g->a_trans ? g->k : g->m, len = g->a_trans ? g->m : g->k;
  for (size_t line = 0; line < lines; line++)
    for (size_t i = 0; i < len; i++)
      if ((bits_of_f32(g->a[line * g->lda + i]) & 0x7FFFFFFFu) > 0x7F7F7FFFu) return 1;
  return 0;
}

/* split_a, one value at a time (the same layout whichever way A is stored). */
static void split_a_portable(const sam3neck_sgemm_args *g, size_t i0, size_t rows, size_t kb_count, uint16_t *aw) {
  int bad = 0; /* (checked before) */
  for (size_t t = 0; t < up(rows, 16) / 16; t++)
    for (size_t kb = 0; kb < kb_count; kb++) {
      uint16_t *hi = aw + (t * kb_count + kb) * 1024, *lo = hi + 512;
      for (size_t r = 0; r < 16; r++)
        for (size_t kk = 0; kk < 32; kk++) {
          const size_t i = 16 * t + r, ka = 32 * kb + kk;
          const float x =
              i < rows && ka < g->k ? (g->a_trans ? g->a[ka * g->lda + i0 + i] : g->a[(i0 + i) * g->lda + ka]) : 0.0f;
          split1(x, hi + r * 32 + kk, lo + r * 32 + kk, &bad);
        }
    }
  (void)bad;
}

size_t sam3neck_sgemm_amx_workspace_floats(size_t m, size_t k) {
  const size_t rows = up(m < AMX_MC ? m : AMX_MC, 16);
  return rows * up(k ? k : 1, 32) /* hi + lo, 2 x 2 bytes */ + 32 * 32 /* tile buffer */ + 16 /* alignment */;
}

/* ---- the emulated driver ---------------------------------------------------------------------- */

#define AMX_NAME(x) x##_emulated
#define AMX_TARGET
#define AMX_EPILOGUE_KERNEL SAM3NECK_SGEMM_GENERIC
#define AMX_FALLBACK_KERNEL sam3neck_sgemm_f32_best() /* the best float32 kernel here */
#define AMX_A_HAS_UNSPLITTABLE(g) a_has_unsplittable_portable(g)
#define AMX_SPLIT_A(g, i0, rows, kb_count, aw) split_a_portable(g, i0, rows, kb_count, aw)
#define AMX_PREFETCH(p, first, count, lines) ((void)(p), (void)(first), (void)(count), (void)(lines))
#define TILE_STATE EMU_TILE_STATE
#define TILE_CONFIG EMU_TILE_CONFIG
#define TILE_ZERO(t) EMU_TILE_ZERO(t)
#define TILE_LOAD(t, p, stride) EMU_TILE_LOAD(t, p, stride)
#define TILE_STORE(t, p, stride) EMU_TILE_STORE(t, p, stride)
#define TILE_DP(c, a, b) EMU_TILE_DP(c, a, b)
#define TILE_RELEASE EMU_TILE_RELEASE
#include "sgemm_amx_body.h"
#undef AMX_NAME
#undef AMX_TARGET
#undef AMX_EPILOGUE_KERNEL
#undef AMX_FALLBACK_KERNEL
#undef AMX_A_HAS_UNSPLITTABLE
#undef AMX_SPLIT_A
#undef AMX_PREFETCH
#undef TILE_STATE
#undef TILE_CONFIG
#undef TILE_ZERO
#undef TILE_LOAD
#undef TILE_STORE
#undef TILE_DP
#undef TILE_RELEASE

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
static inline __attribute__((always_inline, target("avx512f,avx512bw"))) void split16(__m512 x, __m512i *hi,
                                                                                      __m512i *lo, __mmask16 *bad) {
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

static int split_rows_fastest(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out) {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw"))
    return split_rows_portable(k, n, k0, rows, band, out);
  return split_rows(k, n, k0, rows, band, out);
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
static __attribute__((target("avx512f,avx512bw"))) void split_a(const sam3neck_sgemm_args *g, size_t i0, size_t rows,
                                                                size_t kb_count, uint16_t *aw) {
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

#define AMX_NAME(x) x##_native
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))
#define AMX_EPILOGUE_KERNEL SAM3NECK_SGEMM_AVX512
#define AMX_FALLBACK_KERNEL SAM3NECK_SGEMM_AVX512
#define AMX_A_HAS_UNSPLITTABLE(g) a_has_unsplittable(g)
#define AMX_SPLIT_A(g, i0, rows, kb_count, aw) split_a(g, i0, rows, kb_count, aw)
#define AMX_PREFETCH(p, first, count, lines) prefetch_lines(p, first, count, lines)
#define TILE_STATE NATIVE_TILE_STATE
#define TILE_CONFIG NATIVE_TILE_CONFIG
#define TILE_ZERO(t) NATIVE_TILE_ZERO(t)
#define TILE_LOAD(t, p, stride) NATIVE_TILE_LOAD(t, p, stride)
#define TILE_STORE(t, p, stride) NATIVE_TILE_STORE(t, p, stride)
#define TILE_DP(c, a, b) NATIVE_TILE_DP(c, a, b)
#define TILE_RELEASE NATIVE_TILE_RELEASE

/* Lines first .. first + count - 1 (at most up to line `lines`) of the 64-byte lines at p into L2. */
static inline __attribute__((always_inline)) void prefetch_lines(const char *p, size_t first, size_t count,
                                                                 size_t lines) {
  for (size_t line = first; line < first + count && line < lines; line++) _mm_prefetch(p + 64 * line, _MM_HINT_T1);
}
#include "sgemm_amx_body.h"
#define SAM3NECK_AMX_NATIVE 1

#else /* no AMX here */

int sam3neck_cpu_has_amx_bf16(void) { return 0; }
static int split_rows_fastest(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out) {
  return split_rows_portable(k, n, k0, rows, band, out);
}

#endif

int sam3neck_sgemm_pack_b_bf16x3_rows(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out) {
  if (k0 % 32 != 0 || k0 > k || rows > k - k0 || (rows % 32 != 0 && k0 + rows != k)) return -1;
  return split_rows_fastest(k, n, k0, rows, band, out);
}

int sam3neck_sgemm_pack_b_bf16x3(size_t k, size_t n, const float *packed_b, float *out) {
  return sam3neck_sgemm_pack_b_bf16x3_rows(k, n, 0, k, packed_b, out) != 0;
}

int sam3neck_sgemm_run_amx(const sam3neck_sgemm_args *g, int emulated) {
  if (emulated) return run_emulated(g);
#ifdef SAM3NECK_AMX_NATIVE
  return run_native(g);
#else
  return -1;
#endif
}
