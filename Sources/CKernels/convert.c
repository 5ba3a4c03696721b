/* Element conversions between float32 and the half-precision types (see the header): widening
 * the input in its first pass, narrowing the outputs in their final store. */
#include "sam3neck_kernels.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SAM3NECK_X86 1
#endif

static inline uint32_t bits_of(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  return x;
}

static inline float float_of(uint32_t x) {
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* float -> IEEE half, round to nearest even; NaN stays NaN (quiet, top payload bits kept),
 * magnitudes from 65520 up become Inf. */
uint16_t sam3neck_f32_to_f16(float f) {
  uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) { /* Inf or NaN */
    return (uint16_t)(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u | ((ax >> 13) & 0x3FFu) : 0u));
  }
  if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* >= 65520: rounds past 65504 */
  if (ax < 0x38800000u) {
    /* Below 2^-14, the smallest normal half: adding 0.5 leaves the value's multiple of 2^-24 (the
     * half subnormal step) in the low mantissa bits, rounded to nearest even by the addition. */
    return (uint16_t)(sign | (bits_of(float_of(ax) + 0.5f) - 0x3F000000u));
  }
  /* Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even. */
  ax += 0xC8000FFFu + ((ax >> 13) & 1u);
  return (uint16_t)(sign | (ax >> 13));
}

float sam3neck_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0) return float_of(sign | bits_of((float)m * 5.9604644775390625e-8f)); /* m * 2^-24 */
  if (e == 31) return float_of(sign | 0x7F800000u | (m << 13));
  return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

/* float -> bfloat16, round to nearest even; NaN stays NaN (quieted). */
uint16_t sam3neck_f32_to_bf16(float f) {
  uint32_t x = bits_of(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u);
  return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

float sam3neck_bf16_to_f32(uint16_t b) { return float_of((uint32_t)b << 16); }

void sam3neck_widen_portable(const void *src, int dtype, float *dst, size_t n) {
  const uint16_t *s = (const uint16_t *)src;
  switch (dtype) {
  case SAM3NECK_DTYPE_F16:
    for (size_t i = 0; i < n; i++) dst[i] = sam3neck_f16_to_f32(s[i]);
    break;
  case SAM3NECK_DTYPE_BF16:
    for (size_t i = 0; i < n; i++) dst[i] = sam3neck_bf16_to_f32(s[i]);
    break;
  default: memcpy(dst, src, n * sizeof(float));
  }
}

void sam3neck_narrow_portable(const float *src, void *dst, int dtype, size_t n) {
  uint16_t *d = (uint16_t *)dst;
  switch (dtype) {
  case SAM3NECK_DTYPE_F16:
    for (size_t i = 0; i < n; i++) d[i] = sam3neck_f32_to_f16(src[i]);
    break;
  case SAM3NECK_DTYPE_BF16:
    for (size_t i = 0; i < n; i++) d[i] = sam3neck_f32_to_bf16(src[i]);
    break;
  default: memcpy(dst, src, n * sizeof(float));
  }
}

#ifdef SAM3NECK_X86

int sam3neck_cpu_has_f16c_avx2(void) { return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2"); }

/* Eight lanes at a time; F16C rounds to nearest even and quiets NaN like the scalar code, and the
 * bfloat16 rounding is the scalar formula in integer lanes. The tail goes through the scalar code. */
__attribute__((target("avx2,f16c"))) static void widen_avx2(const void *src, int dtype, float *dst, size_t n) {
  const uint16_t *s = (const uint16_t *)src;
  size_t i = 0;
  if (dtype == SAM3NECK_DTYPE_F16) {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
  } else if (dtype == SAM3NECK_DTYPE_BF16) {
    for (; i + 8 <= n; i += 8) {
      __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
  }
  sam3neck_widen_portable(dtype == SAM3NECK_DTYPE_F32 ? (const void *)((const float *)src + i) : (const void *)(s + i),
                          dtype, dst + i, n - i);
}

/* Eight floats as eight 16-bit values of `dtype` (F16 or BF16), rounded to nearest even, NaN kept
 * a quiet NaN. */
__attribute__((target("avx2,f16c"), always_inline)) static inline __m128i narrow8(__m256 v, int dtype) {
  if (dtype == SAM3NECK_DTYPE_F16) return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
  const __m256i round = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x40);
  __m256i x = _mm256_castps_si256(v);
  __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
  __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(round, odd)), 16);
  __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);
  __m256i quieted = _mm256_or_si256(_mm256_srli_epi32(x, 16), quiet);
  __m256i r = _mm256_blendv_epi8(rounded, quieted, nan);
  /* 32-bit lanes holding 16-bit values -> 8 packed uint16 (packus works per 128-bit half). */
  __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

__attribute__((target("avx2,f16c"))) static void narrow_avx2(const float *src, void *dst, int dtype, size_t n) {
  uint16_t *d = (uint16_t *)dst;
  size_t i = 0;
  if (dtype == SAM3NECK_DTYPE_F16 || dtype == SAM3NECK_DTYPE_BF16)
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(d + i), narrow8(_mm256_loadu_ps(src + i), dtype));
  sam3neck_narrow_portable(src + i, dtype == SAM3NECK_DTYPE_F32 ? (void *)((float *)dst + i) : (void *)(d + i), dtype,
                           n - i);
}

static int use_avx2(void) {
  /* __builtin_cpu_supports reads data set once at load time: cheap, and free of races. */
  return sam3neck_cpu_has_f16c_avx2();
}

#else

int sam3neck_cpu_has_f16c_avx2(void) { return 0; }
static int use_avx2(void) { return 0; }
#define widen_avx2 sam3neck_widen_portable
#define narrow_avx2 sam3neck_narrow_portable

#endif

void sam3neck_widen(const void *src, int dtype, float *dst, size_t n) {
  if (use_avx2())
    widen_avx2(src, dtype, dst, n);
  else
    sam3neck_widen_portable(src, dtype, dst, n);
}

void sam3neck_narrow(const float *src, void *dst, int dtype, size_t n) {
  if (use_avx2())
    narrow_avx2(src, dst, dtype, n);
  else
    sam3neck_narrow_portable(src, dst, dtype, n);
}

size_t sam3neck_dtype_size(int dtype) { return dtype == SAM3NECK_DTYPE_F32 ? 4 : 2; }

/* float32 channel-major store, element by element, of the tile's pixels from column j0 and
 * channels from o0 on (the whole tile for j0 = o0 = 0; the vector version's edges otherwise). */
static void store_planes_portable(const float *y, ptrdiff_t ldy, int m, int rows, int cols, int channels, float *dst,
                                  ptrdiff_t row_stride, ptrdiff_t pixel_stride, ptrdiff_t channel_stride, int j0,
                                  int o0) {
  for (int o = 0; o < channels; o++) {
    for (int i = 0; i < rows; i++) {
      const float *src = y + (ptrdiff_t)i * m * ldy + o;
      float *d = dst + o * channel_stride + i * row_stride;
      for (int j = (o < o0 ? j0 : 0); j < cols; j++) d[j * pixel_stride] = src[j * ldy];
    }
  }
}

#ifdef SAM3NECK_X86
/* Eight pixels' channels o .. o + 7 (pixel jj at p + jj * ldy) transposed: r[c] holds channel o + c
 * of the eight pixels. */
__attribute__((target("avx2"), always_inline)) static inline void transpose8(const float *p, ptrdiff_t ldy, int o,
                                                                             __m256 r[8]) {
  __m256 r0 = _mm256_loadu_ps(p + o), r1 = _mm256_loadu_ps(p + ldy + o);
  __m256 r2 = _mm256_loadu_ps(p + 2 * ldy + o), r3 = _mm256_loadu_ps(p + 3 * ldy + o);
  __m256 r4 = _mm256_loadu_ps(p + 4 * ldy + o), r5 = _mm256_loadu_ps(p + 5 * ldy + o);
  __m256 r6 = _mm256_loadu_ps(p + 6 * ldy + o), r7 = _mm256_loadu_ps(p + 7 * ldy + o);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Bytes 32h .. 32h + 31 of channel c's line from the transposed groups of eight pixels r[q]: a
 * group as it is (float32), or two groups narrowed (F16, BF16: narrow8, sam3neck_narrow's rounding). */
__attribute__((target("avx2,f16c"), always_inline)) static inline __m256i line_part(__m256 r[4][8], int c, int h,
                                                                                    int dtype) {
  if (dtype == SAM3NECK_DTYPE_F32) return _mm256_castps_si256(r[h][c]);
  return _mm256_set_m128i(narrow8(r[2 * h + 1][c], dtype), narrow8(r[2 * h][c], dtype));
}

/* Eight pixels of one channel at d, unaligned: as they are (float32) or narrowed. */
__attribute__((target("avx2,f16c"), always_inline)) static inline void put8(char *d, __m256 v, int dtype) {
  if (dtype == SAM3NECK_DTYPE_F32)
    _mm256_storeu_ps((float *)d, v);
  else
    _mm_storeu_si128((__m128i *)d, narrow8(v, dtype));
}

/* The channel-major store (pixel_stride 1) on whole 64-byte lines, for every element type: where
 * every row of every plane starts at the same offset within a line (row and plane strides
 * multiples of a line's 16 floats or 32 half values: levels 0 and 1 at SAM 3's grid), a line's
 * worth of pixels at a time from the first line boundary: two or four 8 x 8 transposes in
 * registers, then per channel one whole line written with streaming stores (narrowed first for
 * F16 and BF16). The output (85 MB at level 0 in float32) is then written once, not read for
 * ownership first, and each line leaves complete. Measured on one core, level 0's calls in a /tmp
 * microbenchmark (2026-12-01): float32 15-16 against 46-52 ms with 8 x 8 transposes stored 32
 * bytes at a time; F16 7-8.5 against 28-45 ms with 16-byte pieces scattered over 256 planes.
 * The pixels before the first line and after the last go eight at a time (one transpose,
 * ordinary stores) where eight fit, then element by element, as do the channels past the last
 * multiple of 8. Returns 0, having written nothing, where the store does not fit the pattern. */
__attribute__((target("avx2,f16c"))) static int store_planes_lines_avx2(const float *y, ptrdiff_t ldy, int m, int rows,
                                                                        int cols, int channels, void *dst,
                                                                        ptrdiff_t row_stride, ptrdiff_t channel_stride,
                                                                        int dtype) {
  const int size = (int)sam3neck_dtype_size(dtype), per = 64 / size, channels8 = channels & ~7;
  const int lead = (int)(((64 - ((uintptr_t)dst & 63)) & 63) / (uintptr_t)size);
  if (row_stride % per != 0 || channel_stride % per != 0 || ((uintptr_t)dst & (uintptr_t)(size - 1)) != 0 ||
      channels8 == 0 || cols - lead < per)
    return 0;
  const int end = lead + (cols - lead) / per * per;
  char *base = (char *)dst;
  for (int i = 0; i < rows; i++) {
    const float *yi = y + (ptrdiff_t)i * m * ldy;
    char *di = base + i * row_stride * size;
    for (int j = lead; j < end; j += per) {
      const float *p = yi + (ptrdiff_t)j * ldy;
      for (int o = 0; o < channels8; o += 8) {
        __m256 r[4][8];
        for (int q = 0; q < per / 8; q++) transpose8(p + 8 * q * ldy, ldy, o, r[q]);
        char *d = di + (o * channel_stride + j) * size; /* on a line boundary */
        for (int c = 0; c < 8; c++) {
          _mm256_stream_si256((__m256i *)(d + c * channel_stride * size), line_part(r, c, 0, dtype));
          _mm256_stream_si256((__m256i *)(d + c * channel_stride * size + 32), line_part(r, c, 1, dtype));
        }
      }
    }
  }
  _mm_sfence();
  for (int i = 0; i < rows; i++) {
    const float *yi = y + (ptrdiff_t)i * m * ldy;
    char *di = base + i * row_stride * size;
    for (int o = 0; o < channels8; o += 8)
      for (int part = 0; part < 2; part++) {
        const int j1 = part ? cols : lead;
        int j = part ? end : 0;
        for (; j + 8 <= j1; j += 8) {
          __m256 r[8];
          transpose8(yi + (ptrdiff_t)j * ldy, ldy, o, r);
          for (int c = 0; c < 8; c++) put8(di + ((o + c) * channel_stride + j) * size, r[c], dtype);
        }
        for (int c = 0; c < 8; c++)
          for (int jj = j; jj < j1; jj++)
            sam3neck_narrow_portable(yi + (ptrdiff_t)jj * ldy + o + c, di + ((o + c) * channel_stride + jj) * size,
                                     dtype, 1);
      }
    for (int o = channels8; o < channels; o++)
      for (int j = 0; j < cols; j++)
        sam3neck_narrow_portable(yi + (ptrdiff_t)j * ldy + o, di + (o * channel_stride + j) * size, dtype, 1);
  }
  return 1;
}

/* The float32 store where whole lines do not fit (strides not multiples of 16 floats): eight
 * pixels x eight channels at a time, eight loads of a pixel's channels, an 8 x 8 transpose in
 * registers, eight stores of a channel's pixels (32 contiguous bytes each) instead of 64
 * scattered 4-byte stores. Pure data movement: the values are copied bit for bit, as in the
 * portable loop. */
__attribute__((target("avx2"))) static void store_planes_avx2(const float *y, ptrdiff_t ldy, int m, int rows, int cols,
                                                              int channels, float *dst, ptrdiff_t row_stride,
                                                              ptrdiff_t channel_stride) {
  const int cols8 = cols & ~7, channels8 = channels & ~7;
  for (int i = 0; i < rows; i++) {
    const float *yi = y + (ptrdiff_t)i * m * ldy;
    float *di = dst + i * row_stride;
    for (int j = 0; j < cols8; j += 8) {
      const float *p = yi + (ptrdiff_t)j * ldy;
      for (int o = 0; o < channels8; o += 8) {
        __m256 r[8];
        transpose8(p, ldy, o, r);
        float *d = di + o * channel_stride + j;
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(d + c * channel_stride, r[c]);
      }
    }
  }
  /* The edges: channels past the last multiple of 8 for the vector columns, every channel for the
   * columns past the last multiple of 8. */
  if (channels8 < channels || cols8 < cols)
    store_planes_portable(y, ldy, m, rows, cols, channels, dst, row_stride, 1, channel_stride, cols8, channels8);
}
#else
#define store_planes_avx2(y, ldy, m, rows, cols, channels, dst, row_stride, channel_stride)                            \
  store_planes_portable(y, ldy, m, rows, cols, channels, dst, row_stride, 1, channel_stride, 0, 0)
#define store_planes_lines_avx2(y, ldy, m, rows, cols, channels, dst, row_stride, channel_stride, dtype) 0
#endif

void sam3neck_store_tile(const float *y, ptrdiff_t ldy, int m, int rows, int cols, int channels, void *dst,
                         ptrdiff_t row_stride, ptrdiff_t pixel_stride, ptrdiff_t channel_stride, int dtype) {
  const size_t size = sam3neck_dtype_size(dtype);
  char *base = (char *)dst;
  if (channel_stride == 1) { /* channels last: each pixel's channels are one contiguous run */
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++)
        sam3neck_narrow(y + (ptrdiff_t)(i * m + j) * ldy, base + (size_t)(i * row_stride + j * pixel_stride) * size,
                        dtype, (size_t)channels);
    return;
  }
  /* Channel-major: one plane per channel, the tile's pixels strided in it. */
  if (pixel_stride == 1 && use_avx2() &&
      store_planes_lines_avx2(y, ldy, m, rows, cols, channels, dst, row_stride, channel_stride, dtype))
    return;
  if (dtype != SAM3NECK_DTYPE_F32) {
    /* Half precision: narrow each pixel's channels with the vector code into a small buffer
     * first (at most 8 pixels x 512 channels at a time), then scatter the 16-bit values. */
    uint16_t buf[8 * 512];
    for (int i = 0; i < rows; i++) {
      for (int j0 = 0; j0 < cols; j0 += 8) {
        const int jn = cols - j0 < 8 ? cols - j0 : 8;
        for (int o0 = 0; o0 < channels; o0 += 512) {
          const int on = channels - o0 < 512 ? channels - o0 : 512;
          for (int jj = 0; jj < jn; jj++)
            sam3neck_narrow(y + (ptrdiff_t)(i * m + j0 + jj) * ldy + o0, buf + jj * 512, dtype, (size_t)on);
          for (int o = 0; o < on; o++) {
            uint16_t *d = (uint16_t *)dst + (ptrdiff_t)(o0 + o) * channel_stride + (ptrdiff_t)i * row_stride +
                          (ptrdiff_t)j0 * pixel_stride;
            for (int jj = 0; jj < jn; jj++) d[jj * pixel_stride] = buf[jj * 512 + o];
          }
        }
      }
    }
    return;
  }
  if (pixel_stride == 1 && use_avx2()) {
    store_planes_avx2(y, ldy, m, rows, cols, channels, (float *)dst, row_stride, channel_stride);
    return;
  }
  store_planes_portable(y, ldy, m, rows, cols, channels, (float *)dst, row_stride, pixel_stride, channel_stride, 0, 0);
}

void sam3neck_store_tile_portable(const float *y, ptrdiff_t ldy, int m, int rows, int cols, int channels, void *dst,
                                  ptrdiff_t row_stride, ptrdiff_t pixel_stride, ptrdiff_t channel_stride) {
  store_planes_portable(y, ldy, m, rows, cols, channels, (float *)dst, row_stride, pixel_stride, channel_stride, 0, 0);
}
