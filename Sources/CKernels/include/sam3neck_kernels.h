/*
 * sam3neck_kernels.h — the few kernels of the Swift core written in C, where C can reach vector
 * instructions the Swift code (built for baseline x86-64) cannot: each has a portable version and,
 * chosen at run time when the CPU has them, an AVX2 + FMA version. Internal: not part of the C ABI
 * (the library's version script hides these symbols).
 */
#ifndef SAM3NECK_KERNELS_H
#define SAM3NECK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[k] = GELU(src[k] + bias[k]) for k < n, the exact (erf) GELU:
 * 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2). Dispatches to one of the two below.
 * out may equal src. */
void sam3neck_bias_gelu(const float *src, const float *bias, float *out, size_t n);

/* The portable version: libm's erfcf per element. */
void sam3neck_bias_gelu_generic(const float *src, const float *bias, float *out, size_t n);

/* The AVX2 + FMA version: 8 lanes, erfc from exp(-a^2) (a^2 split exactly with an FMA) times a
 * degree-10 polynomial in 1/(1 + a/2) fitted to erfc(a) exp(a^2) (relative error 3e-9 on
 * [0, 9.3]); lanes with |x| >= 13, NaN or Inf go through the generic version. Call only when
 * sam3neck_cpu_has_avx2_fma() is true. */
void sam3neck_bias_gelu_avx2(const float *src, const float *bias, float *out, size_t n);

/* The same arithmetic sixteen lanes at a time (the same bits); call only when the CPU has AVX-512F,
 * AVX2 and FMA. sam3neck_bias_gelu takes it where it can. */
void sam3neck_bias_gelu_avx512(const float *src, const float *bias, float *out, size_t n);

/* Whether the CPU runs AVX2 and FMA instructions. */
int sam3neck_cpu_has_avx2_fma(void);

/* Element types of the neck's inputs and outputs (the neck computes in float32 inside). */
enum { SAM3NECK_DTYPE_F32 = 0, SAM3NECK_DTYPE_F16 = 1, SAM3NECK_DTYPE_BF16 = 2 };

/* Bytes of one element of `dtype`. */
size_t sam3neck_dtype_size(int dtype);

/* One value each way: float -> half / bfloat16 round to nearest even (NaN stays NaN; past the
 * largest half, 65504, Inf), and back (exact). */
uint16_t sam3neck_f32_to_f16(float f);
float sam3neck_f16_to_f32(uint16_t h);
uint16_t sam3neck_f32_to_bf16(float f);
float sam3neck_bf16_to_f32(uint16_t b);

/* dst[i] = src[i] as float, for n elements of `dtype`. */
void sam3neck_widen(const void *src, int dtype, float *dst, size_t n);

/* dst[i] = src[i] as `dtype`, rounded as above, for n elements. */
void sam3neck_narrow(const float *src, void *dst, int dtype, size_t n);

/* Stores a tile of results, y[(i*m + j)*ldy + o] for i < rows, j < cols, o < channels, as `dtype`
 * at element i*row_stride + j*pixel_stride + o*channel_stride of dst: one layout-independent store
 * for NCHW (channel_stride = plane), NHWC and sequence outputs (channel_stride = 1). */
void sam3neck_store_tile(const float *y, ptrdiff_t ldy, int m, int rows, int cols, int channels, void *dst,
                         ptrdiff_t row_stride, ptrdiff_t pixel_stride, ptrdiff_t channel_stride, int dtype);

/* sam3neck_store_tile for float32 and channel_stride != 1 without the vector code (the dispatching
 * version moves 8 pixels x 8 channels at a time through an AVX2 transpose when pixel_stride == 1);
 * for the tests. */
void sam3neck_store_tile_portable(const float *y, ptrdiff_t ldy, int m, int rows, int cols, int channels, void *dst,
                                  ptrdiff_t row_stride, ptrdiff_t pixel_stride, ptrdiff_t channel_stride);

/* The portable versions of the two conversions above, which use F16C + AVX2 when the CPU has them. */
void sam3neck_widen_portable(const void *src, int dtype, float *dst, size_t n);
void sam3neck_narrow_portable(const float *src, void *dst, int dtype, size_t n);

/* Whether the CPU has F16C and AVX2 (the vector conversions). */
int sam3neck_cpu_has_f16c_avx2(void);

/* The 2 x 2 max pool's inner loops, PyTorch's semantics (a window's first maximum in reading
 * order; NaN anywhere gives NaN); AVX2 when the CPU has it, unless `portable` is set (tests).
 * pairs: out[j] = max(r0[2j], r0[2j+1], r1[2j], r1[2j+1]) for j < n (one row of NCHW windows);
 * rows:  out[k] = max(a[k], b[k], c[k], d[k]) for k < n (the channels of one NHWC window). */
void sam3neck_maxpool_pairs(const float *r0, const float *r1, float *out, size_t n, int portable);
void sam3neck_maxpool_rows(const float *a, const float *b, const float *c, const float *d, float *out, size_t n,
                           int portable);

/* ---- Winograd transforms (winograd.c) ----------------------------------------------------------
 *
 * One tile's 2-D transforms over channel vectors (channels contiguous, c of them), for the tiles
 * of the plan: F(2x2, 3x3), F(4x4, 3x3), F(4x4, 2x2), F(3x3, 2x2) (α = 4, 6, 5, 4; m = 2, 4, 4, 3).
 * AVX-512 (sixteen channels at a time) or AVX2 (eight) when the CPU has it; `portable` 1: the
 * portable code, 2: AVX2 at most (tests). All do the same arithmetic in the same order per channel. */
enum { SAM3NECK_WINOGRAD_F2 = 0, SAM3NECK_WINOGRAD_F4 = 1, SAM3NECK_WINOGRAD_F4R2 = 2, SAM3NECK_WINOGRAD_F3R2 = 3 };

/* V = Bᵀ d B for the α x α input pixels d(i, j) at src + i*row_stride + j*col_stride: row -1,
 * all of it, element ξ = α·i + j at v + ξ*v_stride; row 0 .. α - 1, that row of V alone, element
 * (row, j) at v + j*v_stride (its arithmetic is that of the whole transform's, bit for bit; a
 * row or tile out of range writes nothing). Channel k of an element at (k / 16)*v_chunk + k % 16
 * from its start (c channels; strides in floats). v_chunk 16: the channels contiguous; 16·mr: the
 * tile as row r of a micro-panel that the packed SGEMM reads as it is (v = the element's panel +
 * r·16, sam3neck_sgemm_a_packed_index). */
void sam3neck_winograd_input(int tile, int row, const float *src, ptrdiff_t row_stride, ptrdiff_t col_stride, size_t c,
                             float *v, ptrdiff_t v_stride, ptrdiff_t v_chunk, int portable);

/* Y = Aᵀ M A + bias for the α x α products M_ξ at prod + ξ*p_stride: output (i, j), i, j < m, at
 * dst + i*dst_row + j*dst_col (c floats each). Returns nonzero when an output is NaN or ±Inf. */
int sam3neck_winograd_output(int tile, const float *prod, ptrdiff_t p_stride, size_t c, const float *bias, float *dst,
                             ptrdiff_t dst_row, ptrdiff_t dst_col, int portable);

/* The weight transform U_ξ = (G k Gᵀ)[ξ] of the r x r kernels (i, o), i in i0 .. i0 + rows - 1
 * (a band of the cin inputs), o in 0 .. cout - 1, in double, rounded once: tap q (ky·r + kx) of
 * kernel (i, o) at k[q*k_tap + (i - i0)*k_in + o*k_out] (any layout: tap-major with k_out 1 is
 * the fast one); g is G, α x r, row-major. Element ξ of kernel (i, o) goes to block first + ξ of
 * dst, row-major blocks of cin x cout (packed == 0) or packed B (sam3neck_sgemm_packed_index),
 * block_floats apart; nothing else of dst is written. AVX2 + FMA sixteen kernels at a time where
 * the CPU has them unless flags has SAM3NECK_WEIGHTS_PORTABLE; the two may differ in the last bit
 * of a double before the rounding to float. The AVX2 code streams whole 64-byte lines past the
 * caches (for blocks of tens of MB, read back only by a first run) where dst and block_floats
 * let it, unless flags has SAM3NECK_WEIGHTS_CACHED (a band made to be read back at once). */
enum { SAM3NECK_WEIGHTS_PORTABLE = 1, SAM3NECK_WEIGHTS_CACHED = 2 };
void sam3neck_winograd_weights(int alpha, int r, const double *g, const double *k, ptrdiff_t k_tap, ptrdiff_t k_in,
                               ptrdiff_t k_out, size_t i0, size_t rows, size_t cin, size_t cout, float *dst,
                               size_t block_floats, int packed, size_t first, int flags);

/* ---- Library lookup (library.c) --------------------------------------------------------------
 *
 * Calls `int name(void)` of the shared object that holds the code at `known` (e.g. a function of
 * OpenBLAS, to reach one its headers do not declare), whether that object was loaded with global
 * or local symbols. Returns the function's result, or -1 where the object or the function is not
 * found. */
int sam3neck_call_in_library_of(const void *known, const char *name);

/* ---- Packed SGEMM (sgemm_dispatch.c, sgemm.c, sgemm_pack.c, sgemm_epilogue.c) ------------------
 *
 * C = epilogue(A[m x k] * B[k x n]) with B packed once (at compile time) into the layout the
 * micro-kernels read, single-threaded (the caller's workers own the threads; call it per row
 * block). Three kernel families, chosen at run time:
 *   SAM3NECK_SGEMM_AVX512  12 x 32 register tile (24 zmm accumulators), AVX-512F; kc 512, mc 96
 *   SAM3NECK_SGEMM_AVX2     6 x 16 (12 ymm accumulators), AVX2 + FMA; kc 256, mc 192
 *   SAM3NECK_SGEMM_GENERIC  4 x 16, portable C (for CPUs without AVX2: there OpenBLAS is ~5x faster)
 * All three read the same packed B, so a packed B is valid on any CPU and for any kernel.
 *
 * Packed layout of B: panels of 16 columns; panel p holds columns 16p .. 16p+15 for every k,
 * k-major: packed[p*16*k + kk*16 + j] = B(kk, 16p + j), zero where 16p + j >= n. The panel
 * count is rounded up to a multiple of 4 (64 columns), so a kernel may read 4 adjacent panels
 * without bounds checks; sam3neck_sgemm_packed_b_floats gives the size (floats). */

enum {
  SAM3NECK_SGEMM_AUTO = 0, /* the best the CPU has, or $SAM3NECK_SGEMM_KERNEL if set */
  SAM3NECK_SGEMM_GENERIC = 1,
  SAM3NECK_SGEMM_AVX2 = 2,
  SAM3NECK_SGEMM_AVX512 = 3,
  SAM3NECK_SGEMM_AMX_BF16X3 = 4, /* not a float32 kernel: see "bf16x3 products on AMX" below;
                                  * never chosen by AUTO or $SAM3NECK_SGEMM_KERNEL */
  /* bfloat16 products (the fast mode): see "bfloat16 products" below; never chosen by AUTO */
  SAM3NECK_SGEMM_AVX512_BF16 = 5,          /* VDPBF16PS, 12 x 32 register tile */
  SAM3NECK_SGEMM_AVX512_BF16_EMULATED = 6, /* the same code on the portable emulation (tests) */
  SAM3NECK_SGEMM_AMX_BF16 = 7,             /* TDPBF16PS tile products */
  SAM3NECK_SGEMM_AMX_BF16_EMULATED = 8,    /* the same code on the portable emulation (tests) */
  SAM3NECK_SGEMM_AMX_BF16X3_EMULATED = 9,  /* SAM3NECK_SGEMM_AMX_BF16X3's code on the portable
                                            * emulation of the AMX instructions and portable splits,
                                            * supported everywhere (tests); falls back to the best
                                            * float32 kernel where the native one takes AVX-512 */
};

/* Where B(kk, j) lies in a packed B of k rows (the layout above). */
static inline size_t sam3neck_sgemm_packed_index(size_t k, size_t kk, size_t j) {
  return (j / 16) * 16 * k + kk * 16 + j % 16;
}

/* A packed whole for the float32 kernels (args.a_packed): micro-panels of mr rows, each mr ·
 * round_up(k, 16) floats, in chunks of 16 k-values held row by row, so that a producer of
 * sixteen-channel vectors (sam3neck_winograd_input) writes each with one store. */
static inline size_t sam3neck_sgemm_a_packed_index(size_t mr, size_t k, size_t i, size_t kk) {
  return (i / mr) * mr * ((k + 15) / 16 * 16) + (kk / 16) * 16 * mr + (i % mr) * 16 + kk % 16;
}

/* The rows of a micro-panel of that layout for this kernel and variant; 0 where the kernel does
 * not read it (the bfloat16 and AMX kernels, alternative tiles). */
size_t sam3neck_sgemm_a_panel_rows(int kernel, int variant);

/* Floats of a packed B of k x n. */
size_t sam3neck_sgemm_packed_b_floats(size_t k, size_t n);

/* Packs B (b_trans == 0: B stored k x n row-major, B(kk, j) = b[kk*ldb + j]; b_trans != 0: B^T
 * stored n x k, B(kk, j) = b[j*ldb + kk], e.g. a Conv2d weight [out, in]) into packed
 * (sam3neck_sgemm_packed_b_floats(k, n) floats, 64-byte alignment recommended). */
void sam3neck_sgemm_pack_b(size_t k, size_t n, const float *b, size_t ldb, int b_trans, float *packed);

/* The store hook: called once per finished tile (after bias and GELU) with the tile's rows
 * row0 .. row0+rows-1 and columns col0 .. col0+cols-1 of C, element (r, c) at tile[r*ldt + c].
 * For the transposed conv's phase scatter or any other output-index mapping. The tile is the
 * kernel's workspace: read it, do not keep the pointer. */
typedef void (*sam3neck_sgemm_store_fn)(void *ctx, size_t row0, size_t col0, size_t rows, size_t cols,
                                        const float *tile, size_t ldt);

typedef struct sam3neck_sgemm_args {
  int kernel;  /* SAM3NECK_SGEMM_*; a kernel the CPU lacks: the call returns -1 */
  int variant; /* 0; others select alternative tiles (for measurement only) */
  size_t m, n, k;
  const float *a; /* a_trans == 0: A(i, kk) = a[i*lda + kk] (row-major, channels-last);
                   * a_trans != 0: A(i, kk) = a[kk*lda + i] (A^T stored k x m: NCHW) */
  size_t lda;
  int a_trans;
  const float *packed_b; /* sam3neck_sgemm_pack_b(k, n, ...) */
  const float *bias;     /* n values added per column, or NULL */
  int gelu;              /* != 0: exact GELU after the bias (sam3neck_bias_gelu's math) */
  float *c;              /* C(i, j) = c[i*rs_c + j*cs_c]; rs_c = ldc, cs_c = 1 is row-major,
                          * rs_c = 1, cs_c = pixels is NCHW. Unused when store != NULL. */
  ptrdiff_t rs_c, cs_c;
  sam3neck_sgemm_store_fn store; /* NULL: store to c */
  void *store_ctx;
  float *workspace;             /* sam3neck_sgemm_workspace_floats(this) floats, any alignment */
  size_t mc, kc, nc;            /* cache blocking; 0: the kernel's defaults */
  const float *packed_b_bf16x3; /* SAM3NECK_SGEMM_AMX_BF16X3 only: sam3neck_sgemm_pack_b_bf16x3 of
                                 * packed_b; packed_b may then be NULL (see below) */
  const float *a_packed;        /* NULL, or all of A already packed (then a, lda and a_trans are
                                 * unused): micro-panels of sam3neck_sgemm_a_panel_rows(kernel,
                                 * variant) rows, A(i, kk) at sam3neck_sgemm_a_packed_index; rows
                                 * past m in the last panel are read and must be finite (zero) */
} sam3neck_sgemm_args;

/* Runs the product. 0 on success; -1: kernel not supported here; -2: no such variant;
 * -3: a required pointer is NULL; -4: lda below k (m for a_trans); -5: a_packed for a kernel
 * that does not read it (sam3neck_sgemm_a_panel_rows 0). C's strides are the caller's
 * to get right: with cs_c == 1 and rs_c >= n the kernels accumulate in C itself (no copy); any
 * other strides go through the workspace and a strided store per finished tile.
 * No global state: concurrent calls are safe with their own workspace and C (a packed B may be
 * shared). m = 0 or n = 0 does nothing; k = 0 stores epilogue(0). */
int sam3neck_sgemm_run(const sam3neck_sgemm_args *args);

/* Floats of workspace that sam3neck_sgemm_run needs for these m, n, k and blocking (the
 * largest over all kernels, so it does not depend on the CPU). */
size_t sam3neck_sgemm_workspace_floats(const sam3neck_sgemm_args *args);

/* The common case: row-major C (ldc >= n), bias (or NULL), gelu flag. Same return codes. */
int sam3neck_sgemm(int kernel, size_t m, size_t n, size_t k, const float *a, size_t lda, int a_trans,
                   const float *packed_b, const float *bias, int gelu, float *c, size_t ldc, float *workspace);

/* Whether this CPU runs a kernel family (GENERIC: always). */
int sam3neck_sgemm_kernel_supported(int kernel);

/* The kernel SAM3NECK_SGEMM_AUTO resolves to now: $SAM3NECK_SGEMM_KERNEL ("generic", "avx2",
 * "avx512") when set to one this CPU supports, else the best supported. */
int sam3neck_sgemm_auto_kernel(void);

/* The kernel $SAM3NECK_SGEMM_KERNEL names when this CPU runs it, else -1 (unset, unknown or
 * unsupported): an explicit choice, which the plan follows (GemmBackend). */
int sam3neck_sgemm_env_kernel(void);

/* What SAM3NECK_SGEMM_AUTO resolves to with the override name (or NULL): the named kernel when
 * this CPU supports it, else the best supported (an unknown name is ignored). */
int sam3neck_sgemm_pick_kernel(const char *name);

/* "generic" / "avx2" / "avx512" to SAM3NECK_SGEMM_*, -1 for anything else (NULL included). */
int sam3neck_sgemm_kernel_named(const char *name);

/* A store hook for a product whose row p is pixel (i, j) = (p / width, p % width) of a grid of
 * input pixels, written channels-last into an image with its own strides (the plan's framed
 * images). side = 2: a k = 2, s = 2 transposed conv computed as one GEMM (columns (2a + b)·n + o,
 * a, b the tap, o the output channel; bias tiled 4 times, GELU as needed): C(p, (2a+b)·n + o)
 * goes to channel o of output pixel (2i + a, 2j + b),
 *   out + (2i + a)·row_stride + (2j + b)·pixel_stride + o
 * (for the plan's PaddedImage: out = pixel(2·i0, 0), row_stride = paddedWidth·channels,
 * pixel_stride = channels). side = 1 (channels = n): a plain product, C(p, o) to pixel (i, j),
 * e.g. a 1×1 conv's rows straight into a framed image's interior. Pass it as args.store with
 * args.store_ctx = &scatter. */
typedef struct sam3neck_phase_scatter {
  float *out;
  size_t width;           /* input pixels per row of the grid */
  size_t channels;        /* n, output channels per tap */
  ptrdiff_t row_stride;   /* floats between output rows */
  ptrdiff_t pixel_stride; /* floats between output pixels of a row */
  size_t side;            /* taps per side: 2 (transposed conv) or 1 (no upsampling) */
} sam3neck_phase_scatter;

void sam3neck_sgemm_store_phase_scatter(void *ctx, size_t row0, size_t col0, size_t rows, size_t cols,
                                        const float *tile, size_t ldt);

/* Whether the CPU runs AVX-512F instructions. */
int sam3neck_cpu_has_avx512f(void);

/* ---- bf16x3 products on AMX (sgemm_amx.c) ------------------------------------------------------
 *
 * For the default precision mode only (its bound is 1e-4; strict mode never uses it). Each float x
 * is split into two bfloat16 values, hi = bf16(x) and lo = bf16(x - hi) (round to nearest even;
 * x - hi is exact), so |x - hi - lo| <= 2^-17 |x|; a product is a_hi*b_hi + a_hi*b_lo + a_lo*b_hi
 * (the dropped a_lo*b_lo is <= 2^-18 |a b|), three AMX tile products (TDPBF16PS: exact bf16
 * products, float32 sums), so each term's relative error is at most about 2^-16 against float32's
 * 2^-24. AMX runs about 16x the float32 FMA rate of AVX-512 per core, so the three products still
 * take a fraction of the float32 time.
 *
 * Non-finite values would not survive the split (Inf - Inf = NaN, Inf * 0 = NaN): a B holding
 * one is refused at packing (use the float32 kernels with it). A call whose A holds one (or a
 * value beyond bfloat16's range) runs the float32 AVX-512 kernel on packed_b instead, so Inf and
 * NaN reach exactly the outputs they reach in float32; with packed_b NULL (B kept split only) it
 * runs on, and every output of such a row of A is NaN, for the caller to recompute (the
 * Winograd convs recompute tiles with non-finite outputs directly).
 *
 * Packed layout (for the tile loads, in 4-byte units): per 32 columns jb and 32 k-rows kb, four
 * 16 x 32 bfloat16 tiles (hi of columns 0-15, lo of them, hi of 16-31, lo of them), each in the
 * pair-interleaved ("VNNI") order tile[p][2j + e] = B(32 kb + 2p + e, 32 jb + j). */

/* Whether the CPU has AMX-TILE, AMX-BF16 and AVX-512F and Linux lets this process use the tile
 * state (asked once per process, with arch_prctl ARCH_REQ_XCOMP_PERM). */
int sam3neck_cpu_has_amx_bf16(void);

/* Floats of sam3neck_sgemm_pack_b_bf16x3's output for a k x n B. */
size_t sam3neck_sgemm_bf16x3_b_floats(size_t k, size_t n);

/* Splits a packed B (sam3neck_sgemm_pack_b's layout) into out (64-byte aligned). Returns 0, or
 * 1 when B holds a value that does not split (NaN, Inf, or |x| rounding beyond bfloat16's
 * largest finite value): out is then not to be used. AVX-512 code where the CPU has AVX-512F and
 * AVX-512BW, portable code elsewhere (the same bits). */
int sam3neck_sgemm_pack_b_bf16x3(size_t k, size_t n, const float *packed_b, float *out);

/* The same for rows k0 .. k0 + rows - 1 of a k x n B only, given as a rows x n matrix packed on
 * its own (sam3neck_sgemm_pack_b's layout for k = rows), written into their place in out, the
 * split of the whole B: so that a B made a band of rows at a time is split while the band is in
 * cache. k0 is a multiple of 32, and so is rows unless the band ends B. Returns 0; 1 when the
 * band holds a value that does not split (out is then not to be used); -1, writing nothing, for
 * a band that breaks those rules. */
int sam3neck_sgemm_pack_b_bf16x3_rows(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out);

/* ---- bfloat16 products (sgemm_bf16.c) -----------------------------------------------------------
 *
 * For the fast precision mode: A and B rounded to bfloat16 (as VCVTNE2PS2BF16 rounds: nearest
 * even, NaN quieted, denormals to zero), products exact, sums in float32 (VDPBF16PS on CPUs with
 * AVX512_BF16, TDPBF16PS tile products on CPUs with AMX-BF16). Each kernel is also built against
 * a portable emulation of the instructions it uses (the *_EMULATED codes, supported everywhere,
 * about 100x slower), so that its blocking, packing and epilogue run in the tests on any CPU.
 * The epilogue (bias, GELU, store hook) and the arguments are those of sam3neck_sgemm_run, with
 * packed_b pointing to sam3neck_sgemm_pack_b_bf16's output; mc, kc and nc count pairs of k.
 *
 * Packed layout of B: the float32 packing's panels of 16 columns, each of round_up(k, 32) / 2
 * pairs: the 4-byte value (kk, j) of panel p holds B(2 kk, 16p + j) in its low and B(2 kk + 1,
 * 16p + j) in its high 16 bits (zero past k). So 16 pairs of one panel are an AMX B tile in its
 * pair-interleaved order, and one pair of a panel a VDPBF16PS operand. */

/* Whether the CPU runs AVX512F, AVX512BW and AVX512_BF16 instructions. */
int sam3neck_cpu_has_avx512_bf16(void);

/* Floats (4-byte units) of sam3neck_sgemm_pack_b_bf16's output for a k x n B. */
size_t sam3neck_sgemm_bf16_b_floats(size_t k, size_t n);

/* A packed B (sam3neck_sgemm_pack_b's layout) rounded to bfloat16 pairs into out. */
void sam3neck_sgemm_pack_b_bf16(size_t k, size_t n, const float *packed_b, float *out);

/* The same for rows k0 .. k0 + rows - 1 of a k x n B, given as a rows x n matrix packed on its
 * own, written into their place in out (the band that ends B also writes the zero padding): so
 * that a B made a band at a time is converted while the band is in cache. k0 is a multiple of
 * 32, and so is rows unless the band ends B. Returns 0; -1, writing nothing, for a band that
 * breaks those rules. */
int sam3neck_sgemm_pack_b_bf16_rows(size_t k, size_t n, size_t k0, size_t rows, const float *band, float *out);

/* The emulation's arithmetic, one value at a time: a float rounded to a bfloat16 operand, and one
 * step of VDPBF16PS / TDPBF16PS (acc + a b, denormals as zero in and out, nearest even). */
uint16_t sam3neck_bf16_operand(float x);
float sam3neck_bf16_dot_step(float acc, uint16_t a, uint16_t b);

#ifdef __cplusplus
}
#endif

#endif
