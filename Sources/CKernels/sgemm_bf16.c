/* bfloat16 products with float32 accumulation for the fast precision mode (see sam3neck_kernels.h,
 * "bfloat16 products"): sgemm_bf16_body.h compiled twice, with the instructions themselves and
 * against a portable emulation of exactly the ones it uses. The emulation follows the
 * instructions' documented arithmetic (Intel SDM pseudo-code), checked bit for bit against
 * VCVTNE2PS2BF16 and VDPBF16PS on a Zen 4 (tests: nativeBF16MatchesEmulation):
 *   - float -> bfloat16: NaN quieted, denormals to signed zero, otherwise round to nearest even;
 *   - VDPBF16PS lane i: acc += a[2i+1] b[2i+1], then acc += a[2i] b[2i], each a float32 FMA with
 *     denormal inputs as zero, denormal results flushed, round to nearest even (the bfloat16
 *     products are exact in float32, so each step rounds once);
 *   - TDPBF16PS: the same steps per element, the even k of a pair first. */
#include "sam3neck_kernels.h"
#include "sgemm_internal.h"
#include "amx_tiles.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static size_t round_up(size_t x, size_t q) { return (x + q - 1) / q * q; }

size_t sam3neck_sgemm_bf16_b_floats(size_t k, size_t n) {
  /* the float32 packing's panels, each round_up(k, 32) / 2 pairs long */
  return sam3neck_sgemm_packed_b_floats(1, n) * (round_up(k ? k : 1, 32) / 2);
}

/* ---- the emulation -------------------------------------------------------------------------- */

static inline float daz(float x) {
  const uint32_t u = bits_of_f32(x);
  return (u & 0x7F800000u) == 0 ? f32_of_bits(u & 0x80000000u) : x;
}

uint16_t sam3neck_bf16_operand(float x) {
  uint32_t u = bits_of_f32(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);
  if ((u & 0x7F800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float sam3neck_bf16_dot_step(float acc, uint16_t a, uint16_t b) {
  const float x = daz(f32_of_bits((uint32_t)a << 16)), y = daz(f32_of_bits((uint32_t)b << 16));
  return daz(fmaf(x, y, daz(acc)));
}

typedef struct {
  float f[16];
} emu_vf;

static inline emu_vf emu_zero(void) {
  emu_vf v;
  memset(&v, 0, sizeof v);
  return v;
}
static inline emu_vf emu_load(const float *p) {
  emu_vf v;
  memcpy(v.f, p, sizeof v.f);
  return v;
}
static inline void emu_store(float *p, emu_vf v) { memcpy(p, v.f, sizeof v.f); }
static inline emu_vf emu_add(emu_vf a, emu_vf b) {
  for (int i = 0; i < 16; i++) a.f[i] += b.f[i];
  return a;
}
static inline emu_vf emu_bcast(const float *p) {
  emu_vf v;
  for (int i = 0; i < 16; i++) memcpy(&v.f[i], p, 4);
  return v;
}
static inline emu_vf emu_dp(emu_vf acc, emu_vf a, emu_vf b) {
  for (int i = 0; i < 16; i++) {
    const uint32_t x = bits_of_f32(a.f[i]), y = bits_of_f32(b.f[i]);
    float s = sam3neck_bf16_dot_step(acc.f[i], (uint16_t)(x >> 16), (uint16_t)(y >> 16));
    acc.f[i] = sam3neck_bf16_dot_step(s, (uint16_t)x, (uint16_t)y);
  }
  return acc;
}
static inline uint32_t emu_pair(float lo, float hi) {
  return (uint32_t)sam3neck_bf16_operand(lo) | (uint32_t)sam3neck_bf16_operand(hi) << 16;
}
/* dst[q] = (src[2q], src[2q + 1]) for q < ceil(len / 2), a missing last value 0. */
static void emu_cvt_row(const float *src, size_t len, uint32_t *dst) {
  for (size_t q = 0; 2 * q < len; q++) dst[q] = emu_pair(src[2 * q], 2 * q + 1 < len ? src[2 * q + 1] : 0.0f);
}
/* dst[i] = (r0[i], r1[i]) for i < len, r1 NULL for zeros. */
static void emu_cvt_two_rows(const float *r0, const float *r1, size_t len, uint32_t *dst) {
  for (size_t i = 0; i < len; i++) dst[i] = emu_pair(r0[i], r1 ? r1[i] : 0.0f);
}

#define BF16_NAME(x) x##_emulated
#define BF16_TARGET
#define AMX_TARGET
#define BF16_EPILOGUE_KERNEL SAM3NECK_SGEMM_GENERIC
#define vf emu_vf
#define VF_ZERO() emu_zero()
#define VF_LOAD(p) emu_load(p)
#define VF_STORE(p, v) emu_store(p, v)
#define VF_ADD(a, b) emu_add(a, b)
#define VF_BCAST(p) emu_bcast(p)
#define VF_DP(acc, a, b) emu_dp(acc, a, b)
#define CVT_ROW(src, len, dst) emu_cvt_row(src, len, dst)
#define CVT_TWO_ROWS(r0, r1, len, dst) emu_cvt_two_rows(r0, r1, len, dst)
#define TILE_STATE EMU_TILE_STATE
#define TILE_CONFIG EMU_TILE_CONFIG
#define TILE_ZERO(t) EMU_TILE_ZERO(t)
#define TILE_LOAD(t, p, stride) EMU_TILE_LOAD(t, p, stride)
#define TILE_STORE(t, p, stride) EMU_TILE_STORE(t, p, stride)
#define TILE_DP(c, a, b) EMU_TILE_DP(c, a, b)
#define TILE_RELEASE EMU_TILE_RELEASE
#include "sgemm_bf16_body.h"
#undef BF16_NAME
#undef BF16_TARGET
#undef AMX_TARGET
#undef BF16_EPILOGUE_KERNEL
#undef vf
#undef VF_ZERO
#undef VF_LOAD
#undef VF_STORE
#undef VF_ADD
#undef VF_BCAST
#undef VF_DP
#undef CVT_ROW
#undef CVT_TWO_ROWS
#undef TILE_STATE
#undef TILE_CONFIG
#undef TILE_ZERO
#undef TILE_LOAD
#undef TILE_STORE
#undef TILE_DP
#undef TILE_RELEASE

/* ---- the instructions --------------------------------------------------------------------- */

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>
#define SAM3NECK_BF16_NATIVE 1

#define NATIVE_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* 32 floats (lo: the first 16) into 32 bfloat16 in order, as VCVTNE2PS2BF16 rounds. */
static inline __attribute__((always_inline)) NATIVE_BF16 __m512i cvt32(__m512 lo, __m512 hi) {
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

static NATIVE_BF16 void native_cvt_row(const float *src, size_t len, uint32_t *dst) {
  size_t i = 0;
  for (; i + 32 <= len; i += 32)
    _mm512_storeu_si512((void *)(dst + i / 2), cvt32(_mm512_loadu_ps(src + i), _mm512_loadu_ps(src + i + 16)));
  if (i < len) { /* the tail, zeros past len: ceil((len - i) / 2) pairs */
    const size_t left = len - i;
    const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
    const __mmask16 m1 = left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
    const __m512i v = cvt32(_mm512_maskz_loadu_ps(m0, src + i), _mm512_maskz_loadu_ps(m1, src + i + 16));
    _mm512_mask_storeu_epi32(dst + i / 2, (__mmask16)((1u << ((left + 1) / 2)) - 1), v);
  }
}

static NATIVE_BF16 void native_cvt_two_rows(const float *r0, const float *r1, size_t len, uint32_t *dst) {
  /* cvt32(x0, x1) holds x0's 16 values then x1's; the permutation interleaves them in pairs */
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (size_t i = 0; i < len; i += 16) {
    const __mmask16 m = len - i >= 16 ? 0xFFFF : (__mmask16)((1u << (len - i)) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(m, r0 + i),
                 x1 = r1 ? _mm512_maskz_loadu_ps(m, r1 + i) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(dst + i, m, _mm512_permutexvar_epi16(interleave, cvt32(x0, x1)));
  }
}

#define BF16_NAME(x) x##_native
#define BF16_TARGET NATIVE_BF16
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))
#define BF16_EPILOGUE_KERNEL SAM3NECK_SGEMM_AVX512
#define vf __m512
#define VF_ZERO() _mm512_setzero_ps()
#define VF_LOAD(p) _mm512_loadu_ps(p)
#define VF_STORE(p, v) _mm512_storeu_ps(p, v)
#define VF_ADD(a, b) _mm512_add_ps(a, b)
#define VF_BCAST(p) _mm512_set1_ps(*(p)) /* a pair's 4 bytes, moved, not computed on */
#define VF_DP(acc, a, b) _mm512_dpbf16_ps(acc, (__m512bh)(a), (__m512bh)(b))
#define CVT_ROW(src, len, dst) native_cvt_row(src, len, dst)
#define CVT_TWO_ROWS(r0, r1, len, dst) native_cvt_two_rows(r0, r1, len, dst)
#define TILE_STATE NATIVE_TILE_STATE
#define TILE_CONFIG NATIVE_TILE_CONFIG
#define TILE_ZERO(t) NATIVE_TILE_ZERO(t)
#define TILE_LOAD(t, p, stride) NATIVE_TILE_LOAD(t, p, stride)
#define TILE_STORE(t, p, stride) NATIVE_TILE_STORE(t, p, stride)
#define TILE_DP(c, a, b) NATIVE_TILE_DP(c, a, b)
#define TILE_RELEASE NATIVE_TILE_RELEASE
#include "sgemm_bf16_body.h"

int sam3neck_cpu_has_avx512_bf16(void) {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512bf16");
}
#else
int sam3neck_cpu_has_avx512_bf16(void) { return 0; }
#endif

/* ---- what the driver (sgemm.c) reaches ------------------------------------------------------ */

void sam3neck_sgemm_bf16_kern_emulated(size_t kp, const float *a, const float *b, size_t bps, float *c, size_t ldc,
                                       int acc) {
  kern_12x32_emulated(kp, a, b, bps, c, ldc, acc);
}
#ifdef SAM3NECK_BF16_NATIVE
void sam3neck_sgemm_bf16_kern_native(size_t kp, const float *a, const float *b, size_t bps, float *c, size_t ldc,
                                     int acc) {
  kern_12x32_native(kp, a, b, bps, c, ldc, acc);
}
#endif

void sam3neck_sgemm_bf16_convert_a(int kernel, const sam3neck_sgemm_args *g, size_t i0, size_t rows, size_t q0,
                                   size_t pairs, uint32_t *dst, size_t ld) {
#ifdef SAM3NECK_BF16_NATIVE
  if (kernel == SAM3NECK_SGEMM_AVX512_BF16) {
    convert_a_native(g, i0, rows, q0, pairs, dst, ld);
    return;
  }
#endif
  (void)kernel;
  convert_a_emulated(g, i0, rows, q0, pairs, dst, ld);
}

int sam3neck_sgemm_run_amx_bf16(const sam3neck_sgemm_args *g, int emulated) {
  if (emulated) return amx_run_emulated(g);
#ifdef SAM3NECK_BF16_NATIVE
  return amx_run_native(g);
#else
  return -1;
#endif
}

size_t sam3neck_sgemm_amx_bf16_workspace_floats(size_t m, size_t k) {
  const size_t rows = round_up(m < BF16_AMX_MC ? m : BF16_AMX_MC, 16);
  return rows * (round_up(k ? k : 1, 32) / 2) + 16 * 32 /* tile buffer */ + BF16_AMX_MC /* a column */ + 16;
}

void sam3neck_sgemm_pack_b_bf16(size_t k, size_t n, const float *packed_b, float *out) {
  sam3neck_sgemm_pack_b_bf16_rows(k, n, 0, k, packed_b, out);
}

int sam3neck_sgemm_pack_b_bf16_rows(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out) {
  if (k0 % 32 != 0 || k0 > k || rows > k - k0 || (rows % 32 != 0 && k0 + rows != k)) return -1;
  const size_t panels = sam3neck_sgemm_packed_b_floats(1, n) / 16, kpp = round_up(k ? k : 1, 32) / 2;
  const size_t q_end = k0 + rows == k ? kpp : (k0 + rows) / 2; /* the last band writes the padding too */
  /* The two conversions give the same bits (the emulation is the instruction's); the native one
   * where the CPU has it, as a band of tens of MB is converted at every first compile. */
#ifdef SAM3NECK_BF16_NATIVE
  void (*two_rows)(const float *, const float *, size_t, uint32_t *) =
      sam3neck_cpu_has_avx512_bf16() ? native_cvt_two_rows : emu_cvt_two_rows;
#else
  void (*two_rows)(const float *, const float *, size_t, uint32_t *) = emu_cvt_two_rows;
#endif
  for (size_t p = 0; p < panels; p++) {
    const float *src = band + p * 16 * rows;
    uint32_t *dst = (uint32_t *)out + p * 16 * kpp;
    for (size_t q = k0 / 2; q < q_end; q++) {
      const size_t r0 = 2 * q - k0;
      if (r0 >= rows)
        memset(dst + q * 16, 0, 64);
      else
        two_rows(src + r0 * 16, r0 + 1 < rows ? src + (r0 + 1) * 16 : NULL, 16, dst + q * 16);
    }
  }
  return 0;
}
