/* Winograd input and output transforms of one tile (see sam3neck_kernels.h, "Winograd
 * transforms"): the 2-D transform of α x α channel vectors as two passes of the 1-D one (columns,
 * then rows), a chunk of channels at a time kept in registers: sixteen channels per register where
 * the CPU has AVX-512, eight where it has AVX2, one at a time in the portable code. All do the same
 * arithmetic in the same order per channel (separate multiplies and adds: nothing is fused). */
#include "sam3neck_kernels.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SAM3NECK_X86 1
#endif

/* The 1-D transforms, written once over a vector type T with its operations, instantiated for
 * float and for __m256. Bᵀ (input, α -> α) and Aᵀ (output, α -> m):
 *   F(2x2, 3x3)   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]                 Aᵀ = [1 1 1 0; 0 1 -1 -1]
 *   F(4x4, 3x3)   Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *                 Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 *   F(4x4, 2x2)   Bᵀ = [½ -1 -½ 1 0; 0 -½ ½ 1 0; 0 ½ -3⁄2 1 0; 0 -1 0 1 0; 0 ½ -1 -½ 1]
 *                 Aᵀ = [1 1 1 1 0; 0 1 -1 ½ 0; 0 1 1 ¼ 0; 0 1 -1 ⅛ 1]
 *   F(3x3, 2x2)   Bᵀ = [-1 0 1 0; 0 1 1 0; 0 -1 1 0; 0 -1 0 1]                    Aᵀ = [1 1 1 0; 0 1 -1 0; 0 1 1 1] */

#define DEFINE_1D(T, S, ADD, SUB, MUL, C)                                                                              \
  static inline void bt_f2_##S(const T *a, T *d) {                                                                     \
    d[0] = SUB(a[0], a[2]);                                                                                            \
    d[1] = ADD(a[1], a[2]);                                                                                            \
    d[2] = SUB(a[2], a[1]);                                                                                            \
    d[3] = SUB(a[1], a[3]);                                                                                            \
  }                                                                                                                    \
  static inline void bt_f4_##S(const T *a, T *d) {                                                                     \
    d[0] = ADD(SUB(MUL(C(4.f), a[0]), MUL(C(5.f), a[2])), a[4]);                                                       \
    d[1] = ADD(ADD(MUL(C(-4.f), ADD(a[1], a[2])), a[3]), a[4]);                                                        \
    d[2] = ADD(SUB(MUL(C(4.f), SUB(a[1], a[2])), a[3]), a[4]);                                                         \
    d[3] = ADD(SUB(MUL(C(2.f), SUB(a[3], a[1])), a[2]), a[4]);                                                         \
    d[4] = ADD(SUB(MUL(C(2.f), SUB(a[1], a[3])), a[2]), a[4]);                                                         \
    d[5] = ADD(SUB(MUL(C(4.f), a[1]), MUL(C(5.f), a[3])), a[5]);                                                       \
  }                                                                                                                    \
  static inline void bt_f4r2_##S(const T *a, T *d) {                                                                   \
    d[0] = ADD(SUB(MUL(C(0.5f), SUB(a[0], a[2])), a[1]), a[3]);                                                        \
    d[1] = ADD(MUL(C(0.5f), SUB(a[2], a[1])), a[3]);                                                                   \
    d[2] = ADD(SUB(MUL(C(0.5f), a[1]), MUL(C(1.5f), a[2])), a[3]);                                                     \
    d[3] = SUB(a[3], a[1]);                                                                                            \
    d[4] = ADD(SUB(MUL(C(0.5f), SUB(a[1], a[3])), a[2]), a[4]);                                                        \
  }                                                                                                                    \
  static inline void bt_f3r2_##S(const T *a, T *d) {                                                                   \
    d[0] = SUB(a[2], a[0]);                                                                                            \
    d[1] = ADD(a[1], a[2]);                                                                                            \
    d[2] = SUB(a[2], a[1]);                                                                                            \
    d[3] = SUB(a[3], a[1]);                                                                                            \
  }                                                                                                                    \
  static inline void at_f2_##S(const T *s, T *y) {                                                                     \
    y[0] = ADD(ADD(s[0], s[1]), s[2]);                                                                                 \
    y[1] = SUB(SUB(s[1], s[2]), s[3]);                                                                                 \
  }                                                                                                                    \
  static inline void at_f4_##S(const T *s, T *y) {                                                                     \
    T p12 = ADD(s[1], s[2]), d12 = SUB(s[1], s[2]), p34 = ADD(s[3], s[4]), d34 = SUB(s[3], s[4]);                      \
    y[0] = ADD(ADD(s[0], p12), p34);                                                                                   \
    y[1] = ADD(d12, MUL(C(2.f), d34));                                                                                 \
    y[2] = ADD(p12, MUL(C(4.f), p34));                                                                                 \
    y[3] = ADD(ADD(d12, MUL(C(8.f), d34)), s[5]);                                                                      \
  }                                                                                                                    \
  static inline void at_f4r2_##S(const T *s, T *y) {                                                                   \
    T p12 = ADD(s[1], s[2]), d12 = SUB(s[1], s[2]);                                                                    \
    y[0] = ADD(ADD(s[0], p12), s[3]);                                                                                  \
    y[1] = ADD(d12, MUL(C(0.5f), s[3]));                                                                               \
    y[2] = ADD(p12, MUL(C(0.25f), s[3]));                                                                              \
    y[3] = ADD(ADD(d12, MUL(C(0.125f), s[3])), s[4]);                                                                  \
  }                                                                                                                    \
  static inline void at_f3r2_##S(const T *s, T *y) {                                                                   \
    T p12 = ADD(s[1], s[2]);                                                                                           \
    y[0] = ADD(s[0], p12);                                                                                             \
    y[1] = SUB(s[1], s[2]);                                                                                            \
    y[2] = ADD(p12, s[3]);                                                                                             \
  }

/* The 2-D transforms of one chunk of channels at k, for tile TILE (α = A, m = M). The input
 * transform makes all of V (X = -1: element ξ = α·i + j at v + ξ·vs) or its row X alone (element
 * (X, j) at v + j·vs): the columns' 1-D transforms then keep only their element X, which the
 * compiler drops the rest of when X is a constant (it is: always inlined from a switch). */
#define DEFINE_2D(T, S, TILE, A, M, LOAD, STORE, ADD, SUB, C)                                                          \
  static inline __attribute__((always_inline)) void input_##TILE##_##S(                                                \
      const float *src, ptrdiff_t rs, ptrdiff_t cs, size_t k, float *v, ptrdiff_t vs, size_t kd, const int X) {        \
    T mid[A * A], col[A], res[A];                                                                                      \
    for (int j = 0; j < A; j++) {                                                                                      \
      for (int i = 0; i < A; i++) col[i] = LOAD(src + i * rs + j * cs + k);                                            \
      bt_##TILE##_##S(col, res);                                                                                       \
      if (X >= 0)                                                                                                      \
        mid[j] = res[X < A ? X : 0];                                                                                   \
      else                                                                                                             \
        for (int i = 0; i < A; i++) mid[i * A + j] = res[i];                                                           \
    }                                                                                                                  \
    for (int i = 0; i < (X >= 0 ? 1 : A); i++) {                                                                       \
      bt_##TILE##_##S(mid + i * A, res);                                                                               \
      for (int j = 0; j < A; j++) STORE(v + (i * A + j) * vs + kd, res[j]);                                            \
    }                                                                                                                  \
  }                                                                                                                    \
  static inline T output_##TILE##_##S(const float *prod, ptrdiff_t ps, size_t k, const float *bias, float *dst,        \
                                      ptrdiff_t dr, ptrdiff_t dc) {                                                    \
    T mid[M * A], col[A], res[M], flags = C(0.f);                                                                      \
    for (int j = 0; j < A; j++) {                                                                                      \
      for (int i = 0; i < A; i++) col[i] = LOAD(prod + (i * A + j) * ps + k);                                          \
      at_##TILE##_##S(col, res);                                                                                       \
      for (int i = 0; i < M; i++) mid[i * A + j] = res[i];                                                             \
    }                                                                                                                  \
    T b = LOAD(bias + k);                                                                                              \
    for (int i = 0; i < M; i++) {                                                                                      \
      at_##TILE##_##S(mid + i * A, res);                                                                               \
      for (int j = 0; j < M; j++) {                                                                                    \
        T y = ADD(res[j], b);                                                                                          \
        STORE(dst + i * dr + j * dc + k, y);                                                                           \
        /* y - y is +0 for finite y and NaN for NaN and ±Inf */                                                       \
        flags = ADD(flags, SUB(y, y));                                                                                 \
      }                                                                                                                \
    }                                                                                                                  \
    return flags;                                                                                                      \
  }

#define F_ADD(a, b) ((a) + (b))
#define F_SUB(a, b) ((a) - (b))
#define F_MUL(a, b) ((a) * (b))
#define F_C(x) (x)
#define F_LOAD(p) (*(p))
#define F_STORE(p, x) (*(p) = (x))
DEFINE_1D(float, f, F_ADD, F_SUB, F_MUL, F_C)
DEFINE_2D(float, f, f2, 4, 2, F_LOAD, F_STORE, F_ADD, F_SUB, F_C)
DEFINE_2D(float, f, f4, 6, 4, F_LOAD, F_STORE, F_ADD, F_SUB, F_C)
DEFINE_2D(float, f, f4r2, 5, 4, F_LOAD, F_STORE, F_ADD, F_SUB, F_C)
DEFINE_2D(float, f, f3r2, 4, 3, F_LOAD, F_STORE, F_ADD, F_SUB, F_C)

/* Where channel k of an element of V lies, from the element's start: chunks of 16 channels
 * `chunk` floats apart (16: channels contiguous). */
static inline size_t v_offset(size_t k, ptrdiff_t chunk) { return (k / 16) * (size_t)chunk + k % 16; }

/* The input transform of tile `tile`, row `row` (-1: all), of the chunk at k in code S: a switch
 * on both, so that each call has its row as a constant. */
#define ROW_CASE(FN, X)                                                                                                \
  case X:                                                                                                              \
    FN(src, rs, cs, k, v, vs, kd, X);                                                                                  \
    break;
#define ROWS4(FN) ROW_CASE(FN, 0) ROW_CASE(FN, 1) ROW_CASE(FN, 2) ROW_CASE(FN, 3)
#define ROWS5(FN) ROWS4(FN) ROW_CASE(FN, 4)
#define ROWS6(FN) ROWS5(FN) ROW_CASE(FN, 5)
#define INPUT_DISPATCH(S)                                                                                              \
  switch (tile) {                                                                                                      \
  case SAM3NECK_WINOGRAD_F2:                                                                                           \
    switch (row) { ROW_CASE(input_f2_##S, -1) ROWS4(input_f2_##S) }                                                    \
    break;                                                                                                             \
  case SAM3NECK_WINOGRAD_F4:                                                                                           \
    switch (row) { ROW_CASE(input_f4_##S, -1) ROWS6(input_f4_##S) }                                                    \
    break;                                                                                                             \
  case SAM3NECK_WINOGRAD_F4R2:                                                                                         \
    switch (row) { ROW_CASE(input_f4r2_##S, -1) ROWS5(input_f4r2_##S) }                                                \
    break;                                                                                                             \
  default:                                                                                                             \
    switch (row) { ROW_CASE(input_f3r2_##S, -1) ROWS4(input_f3r2_##S) }                                                \
    break;                                                                                                             \
  }

/* Channels from k0 on, one at a time. */
static void input_portable(int tile, int row, const float *src, ptrdiff_t rs, ptrdiff_t cs, size_t c, float *v,
                           ptrdiff_t vs, ptrdiff_t vc, size_t k0) {
  for (size_t k = k0; k < c; k++) {
    const size_t kd = v_offset(k, vc);
    INPUT_DISPATCH(f)
  }
}

static int output_portable(int tile, const float *prod, ptrdiff_t ps, size_t c, const float *bias, float *dst,
                           ptrdiff_t dr, ptrdiff_t dc, size_t k0) {
  float flags = 0.f;
  for (size_t k = k0; k < c; k++) {
    switch (tile) {
    case SAM3NECK_WINOGRAD_F2: flags += output_f2_f(prod, ps, k, bias, dst, dr, dc); break;
    case SAM3NECK_WINOGRAD_F4: flags += output_f4_f(prod, ps, k, bias, dst, dr, dc); break;
    case SAM3NECK_WINOGRAD_F4R2: flags += output_f4r2_f(prod, ps, k, bias, dst, dr, dc); break;
    default: flags += output_f3r2_f(prod, ps, k, bias, dst, dr, dc); break;
    }
  }
  return flags != 0.f; /* NaN compares unequal too */
}

#ifdef SAM3NECK_X86
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_C(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, x) _mm256_storeu_ps(p, x)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
DEFINE_1D(__m256, v, V_ADD, V_SUB, V_MUL, V_C)
DEFINE_2D(__m256, v, f2, 4, 2, V_LOAD, V_STORE, V_ADD, V_SUB, V_C)
DEFINE_2D(__m256, v, f4, 6, 4, V_LOAD, V_STORE, V_ADD, V_SUB, V_C)
DEFINE_2D(__m256, v, f4r2, 5, 4, V_LOAD, V_STORE, V_ADD, V_SUB, V_C)
DEFINE_2D(__m256, v, f3r2, 4, 3, V_LOAD, V_STORE, V_ADD, V_SUB, V_C)

static void input_avx2(int tile, int row, const float *src, ptrdiff_t rs, ptrdiff_t cs, size_t c, float *v,
                       ptrdiff_t vs, ptrdiff_t vc) {
  size_t k = 0;
  for (; k + 8 <= c; k += 8) {
    const size_t kd = v_offset(k, vc);
    INPUT_DISPATCH(v)
  }
  input_portable(tile, row, src, rs, cs, c, v, vs, vc, k);
}

static int output_avx2(int tile, const float *prod, ptrdiff_t ps, size_t c, const float *bias, float *dst, ptrdiff_t dr,
                       ptrdiff_t dc) {
  __m256 flags = _mm256_setzero_ps();
  size_t k = 0;
  for (; k + 8 <= c; k += 8) {
    switch (tile) {
    case SAM3NECK_WINOGRAD_F2: flags = _mm256_add_ps(flags, output_f2_v(prod, ps, k, bias, dst, dr, dc)); break;
    case SAM3NECK_WINOGRAD_F4: flags = _mm256_add_ps(flags, output_f4_v(prod, ps, k, bias, dst, dr, dc)); break;
    case SAM3NECK_WINOGRAD_F4R2: flags = _mm256_add_ps(flags, output_f4r2_v(prod, ps, k, bias, dst, dr, dc)); break;
    default: flags = _mm256_add_ps(flags, output_f3r2_v(prod, ps, k, bias, dst, dr, dc)); break;
    }
  }
  /* any lane NaN or nonzero: unordered-or-not-equal against zero */
  int bad = _mm256_movemask_ps(_mm256_cmp_ps(flags, _mm256_setzero_ps(), _CMP_NEQ_UQ)) != 0;
  return output_portable(tile, prod, ps, c, bias, dst, dr, dc, k) || bad;
}
#pragma clang attribute pop

/* Sixteen channels at a time, the rest as input_avx2 / output_avx2 take them. */
#define W_ADD(a, b) _mm512_add_ps(a, b)
#define W_SUB(a, b) _mm512_sub_ps(a, b)
#define W_MUL(a, b) _mm512_mul_ps(a, b)
#define W_C(x) _mm512_set1_ps(x)
#define W_LOAD(p) _mm512_loadu_ps(p)
#define W_STORE(p, x) _mm512_storeu_ps(p, x)
#pragma clang attribute push(__attribute__((target("avx512f,avx2"))), apply_to = function)
DEFINE_1D(__m512, w, W_ADD, W_SUB, W_MUL, W_C)
DEFINE_2D(__m512, w, f2, 4, 2, W_LOAD, W_STORE, W_ADD, W_SUB, W_C)
DEFINE_2D(__m512, w, f4, 6, 4, W_LOAD, W_STORE, W_ADD, W_SUB, W_C)
DEFINE_2D(__m512, w, f4r2, 5, 4, W_LOAD, W_STORE, W_ADD, W_SUB, W_C)
DEFINE_2D(__m512, w, f3r2, 4, 3, W_LOAD, W_STORE, W_ADD, W_SUB, W_C)

static void input_avx512(int tile, int row, const float *src, ptrdiff_t rs, ptrdiff_t cs, size_t c, float *v,
                         ptrdiff_t vs, ptrdiff_t vc) {
  size_t k = 0;
  for (; k + 16 <= c; k += 16) {
    const size_t kd = v_offset(k, vc);
    INPUT_DISPATCH(w)
  }
  if (k < c) input_avx2(tile, row, src + k, rs, cs, c - k, v + v_offset(k, vc), vs, vc); /* k: a multiple of 16 */
}

static int output_avx512(int tile, const float *prod, ptrdiff_t ps, size_t c, const float *bias, float *dst,
                         ptrdiff_t dr, ptrdiff_t dc) {
  __m512 flags = _mm512_setzero_ps();
  size_t k = 0;
  for (; k + 16 <= c; k += 16) {
    switch (tile) {
    case SAM3NECK_WINOGRAD_F2: flags = _mm512_add_ps(flags, output_f2_w(prod, ps, k, bias, dst, dr, dc)); break;
    case SAM3NECK_WINOGRAD_F4: flags = _mm512_add_ps(flags, output_f4_w(prod, ps, k, bias, dst, dr, dc)); break;
    case SAM3NECK_WINOGRAD_F4R2: flags = _mm512_add_ps(flags, output_f4r2_w(prod, ps, k, bias, dst, dr, dc)); break;
    default: flags = _mm512_add_ps(flags, output_f3r2_w(prod, ps, k, bias, dst, dr, dc)); break;
    }
  }
  /* any lane NaN or nonzero: unordered-or-not-equal against zero */
  int bad = _mm512_cmp_ps_mask(flags, _mm512_setzero_ps(), _CMP_NEQ_UQ) != 0;
  if (k < c) bad |= output_avx2(tile, prod + k, ps, c - k, bias + k, dst + k, dr, dc);
  return bad;
}
#pragma clang attribute pop

/* 2: AVX-512F, 1: AVX2, 0: neither. */
static int vector_width(void) {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") ? 2 : __builtin_cpu_supports("avx2");
}
#else
static int vector_width(void) { return 0; }
#define input_avx2(t, r, s, rs, cs, c, v, vs, vc) input_portable(t, r, s, rs, cs, c, v, vs, vc, 0)
#define output_avx2(t, p, ps, c, b, d, dr, dc) output_portable(t, p, ps, c, b, d, dr, dc, 0)
#define input_avx512 input_avx2
#define output_avx512 output_avx2
#endif

/* portable: 0 the widest vectors the CPU has, 1 portable code, 2 AVX2 at most (tests). */
void sam3neck_winograd_input(int tile, int row, const float *src, ptrdiff_t row_stride, ptrdiff_t col_stride, size_t c,
                             float *v, ptrdiff_t v_stride, ptrdiff_t v_chunk, int portable) {
  static const int alpha[] = {4, 6, 5, 4}; /* F2, F4, F4R2, F3R2 */
  if (tile < 0 || tile > 3 || row < -1 || row >= alpha[tile]) return;
  const int width = portable == 1 ? 0 : vector_width();
  if (width == 2 && portable == 0)
    input_avx512(tile, row, src, row_stride, col_stride, c, v, v_stride, v_chunk);
  else if (width >= 1)
    input_avx2(tile, row, src, row_stride, col_stride, c, v, v_stride, v_chunk);
  else
    input_portable(tile, row, src, row_stride, col_stride, c, v, v_stride, v_chunk, 0);
}

int sam3neck_winograd_output(int tile, const float *prod, ptrdiff_t p_stride, size_t c, const float *bias, float *dst,
                             ptrdiff_t dst_row, ptrdiff_t dst_col, int portable) {
  const int width = portable == 1 ? 0 : vector_width();
  if (width == 2 && portable == 0) return output_avx512(tile, prod, p_stride, c, bias, dst, dst_row, dst_col);
  if (width >= 1) return output_avx2(tile, prod, p_stride, c, bias, dst, dst_row, dst_col);
  return output_portable(tile, prod, p_stride, c, bias, dst, dst_row, dst_col, 0);
}

/* ---- the weight transform ---------------------------------------------------------------- */

/* Where element (i, o) of block b of the transformed weights lies (see the header). */
static inline size_t weight_index(size_t b, size_t i, size_t o, size_t cin, size_t cout, size_t block_floats,
                                  int packed) {
  return b * block_floats + (packed ? sam3neck_sgemm_packed_index(cin, i, o) : i * cout + o);
}

/* The kernels for (i, o), i in i0 .. i0 + rows - 1, o in o0 .. cout - 1, one at a time. */
static void weights_portable(int alpha, int r, const double *g, const double *k, ptrdiff_t k_tap, ptrdiff_t k_in,
                             ptrdiff_t k_out, size_t i0, size_t rows, size_t o0, size_t cin, size_t cout, float *dst,
                             size_t block_floats, int packed, size_t first) {
  for (size_t i = i0; i < i0 + rows; i++)
    for (size_t o = o0; o < cout; o++) {
      double t[9], half[8 * 3];
      for (int q = 0; q < r * r; q++) t[q] = k[q * k_tap + (ptrdiff_t)(i - i0) * k_in + (ptrdiff_t)o * k_out];
      for (int x = 0; x < alpha; x++)
        for (int n = 0; n < r; n++) {
          double s = 0;
          for (int m = 0; m < r; m++) s += g[x * r + m] * t[m * r + n];
          half[x * r + n] = s;
        }
      for (int x = 0; x < alpha; x++)
        for (int y = 0; y < alpha; y++) {
          double s = 0;
          for (int n = 0; n < r; n++) s += half[x * r + n] * g[y * r + n];
          dst[weight_index(first + (size_t)(x * alpha + y), i, o, cin, cout, block_floats, packed)] = (float)s;
        }
    }
}

#ifdef SAM3NECK_X86
/* G k Gᵀ of four kernels (neighbours in o) per vector, v[q] holding their tap q: `lanes` such
 * vectors side by side, element ξ of all of them into out[ξ][0 .. 4·lanes - 1]. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
gkgt_avx2(int alpha, int r, const double *g, const __m256d *v, int lanes, __m128 *out) {
  for (int l = 0; l < lanes; l++) {
    const __m256d *k = v + 9 * l;
    __m256d half[8 * 3];
    for (int x = 0; x < alpha; x++)
      for (int n = 0; n < r; n++) {
        __m256d s = _mm256_setzero_pd();
        for (int m = 0; m < r; m++) s = _mm256_fmadd_pd(_mm256_set1_pd(g[x * r + m]), k[m * r + n], s);
        half[x * r + n] = s;
      }
    for (int x = 0; x < alpha; x++)
      for (int y = 0; y < alpha; y++) {
        __m256d s = _mm256_setzero_pd();
        for (int n = 0; n < r; n++) s = _mm256_fmadd_pd(half[x * r + n], _mm256_set1_pd(g[y * r + n]), s);
        out[(x * alpha + y) * 4 + l] = _mm256_cvtpd_ps(s);
      }
  }
}

/* Sixteen kernels (neighbours in o: one 64-byte line of every block in either layout) at a time,
 * then four, then the rest in the portable code. With `stream`, whole lines go out as streaming
 * stores where they are line-aligned: the blocks (tens of MB, read back only by the first run) then
 * cost one write, not a read for ownership and a write; a band that is split at once stays in
 * cache instead. The tap loads are vector loads where k_out is 1, gathered
 * one by one otherwise. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
weights_avx2(int alpha, int r, const double *g, const double *k, ptrdiff_t k_tap, ptrdiff_t k_in, ptrdiff_t k_out,
             size_t i0, size_t rows, size_t cin, size_t cout, float *dst, size_t block_floats, int packed, size_t first,
             int stream) {
  const int a2 = alpha * alpha, r2 = r * r;
  for (size_t i = i0; i < i0 + rows; i++) {
    const double *row = k + (ptrdiff_t)(i - i0) * k_in;
    size_t o = 0;
    for (int width = 4; width >= 1; width /= 4) { /* 4 vectors (16 kernels), then 1 (4 kernels) */
      for (; o + 4 * (size_t)width <= cout; o += 4 * (size_t)width) {
        __m256d v[4 * 9];
        __m128 out[8 * 8 * 4];
        for (int l = 0; l < width; l++)
          for (int q = 0; q < r2; q++) {
            const double *t = row + q * k_tap + (ptrdiff_t)(o + 4 * (size_t)l) * k_out;
            v[9 * l + q] = k_out == 1 ? _mm256_loadu_pd(t) : _mm256_set_pd(t[3 * k_out], t[2 * k_out], t[k_out], t[0]);
          }
        gkgt_avx2(alpha, r, g, v, width, out);
        for (int xi = 0; xi < a2; xi++) {
          float *d = dst + weight_index(first + (size_t)xi, i, o, cin, cout, block_floats, packed);
          const __m128 *x = out + xi * 4;
          if (width == 1) {
            _mm_storeu_ps(d, x[0]);
          } else if (stream && ((uintptr_t)d & 63) == 0) {
            _mm_stream_ps(d, x[0]), _mm_stream_ps(d + 4, x[1]), _mm_stream_ps(d + 8, x[2]), _mm_stream_ps(d + 12, x[3]);
          } else { /* (written out: as a loop the compiler made it a call to memmove per line) */
            _mm_storeu_ps(d, x[0]), _mm_storeu_ps(d + 4, x[1]), _mm_storeu_ps(d + 8, x[2]), _mm_storeu_ps(d + 12, x[3]);
          }
        }
      }
    }
    if (o < cout)
      weights_portable(alpha, r, g, row, k_tap, k_in, k_out, i, 1, o, cin, cout, dst, block_floats, packed, first);
  }
  _mm_sfence();
}

/* weights_avx2 with the tile's α and r as constants, so that the compiler unrolls gkgt's loops
 * (the generic loops took ~15% of a first compile's samples on this machine kind). */
#define WEIGHTS_AVX2_FIXED(A, R)                                                                                       \
  __attribute__((target("avx2,fma"))) static void weights_avx2_##A##_##R(                                              \
      const double *g, const double *k, ptrdiff_t k_tap, ptrdiff_t k_in, ptrdiff_t k_out, size_t i0, size_t rows,      \
      size_t cin, size_t cout, float *dst, size_t block_floats, int packed, size_t first, int stream) {                \
    weights_avx2(A, R, g, k, k_tap, k_in, k_out, i0, rows, cin, cout, dst, block_floats, packed, first, stream);       \
  }
WEIGHTS_AVX2_FIXED(4, 2)
WEIGHTS_AVX2_FIXED(4, 3)
WEIGHTS_AVX2_FIXED(5, 2)
WEIGHTS_AVX2_FIXED(6, 3)

__attribute__((target("avx2,fma"))) static void weights_avx2_by_size(int alpha, int r, const double *g, const double *k,
                                                                     ptrdiff_t k_tap, ptrdiff_t k_in, ptrdiff_t k_out,
                                                                     size_t i0, size_t rows, size_t cin, size_t cout,
                                                                     float *dst, size_t block_floats, int packed,
                                                                     size_t first, int stream) {
#define WEIGHTS_AVX2_CASE(A, R)                                                                                        \
  if (alpha == A && r == R) {                                                                                          \
    weights_avx2_##A##_##R(g, k, k_tap, k_in, k_out, i0, rows, cin, cout, dst, block_floats, packed, first, stream);   \
    return;                                                                                                            \
  }
  WEIGHTS_AVX2_CASE(4, 2)
  WEIGHTS_AVX2_CASE(4, 3)
  WEIGHTS_AVX2_CASE(5, 2)
  WEIGHTS_AVX2_CASE(6, 3)
#undef WEIGHTS_AVX2_CASE
  weights_avx2(alpha, r, g, k, k_tap, k_in, k_out, i0, rows, cin, cout, dst, block_floats, packed, first, stream);
}
#endif

void sam3neck_winograd_weights(int alpha, int r, const double *g, const double *k, ptrdiff_t k_tap, ptrdiff_t k_in,
                               ptrdiff_t k_out, size_t i0, size_t rows, size_t cin, size_t cout, float *dst,
                               size_t block_floats, int packed, size_t first, int flags) {
#ifdef SAM3NECK_X86
  if (!(flags & SAM3NECK_WEIGHTS_PORTABLE) && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    weights_avx2_by_size(alpha, r, g, k, k_tap, k_in, k_out, i0, rows, cin, cout, dst, block_floats, packed, first,
                         !(flags & SAM3NECK_WEIGHTS_CACHED));
    return;
  }
#endif
  weights_portable(alpha, r, g, k, k_tap, k_in, k_out, i0, rows, 0, cin, cout, dst, block_floats, packed, first);
}
