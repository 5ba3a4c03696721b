/* The bfloat16 product code of the fast mode, written once over a handful of operations and
 * compiled twice by sgemm_bf16.c: with the real instructions (AVX512_BF16, AMX-BF16), and against
 * a portable emulation of exactly those operations, so that the blocking, packing and epilogue
 * logic of both kernels runs in the tests on any CPU. Not a header of its own: sgemm_bf16.c
 * defines, before each inclusion,
 *   BF16_NAME(x)     the function name for this build (x##_native / x##_emulated)
 *   BF16_TARGET      the target attribute of the AVX512_BF16 code (empty when emulated)
 *   AMX_TARGET       the target attribute of the AMX code (empty when emulated)
 *   vf, VF_ZERO, VF_LOAD, VF_STORE, VF_ADD, VF_BCAST, VF_DP   16 float lanes; VF_DP is VDPBF16PS
 *   CVT_ROW, CVT_TWO_ROWS                                     VCVTNE2PS2BF16 and its pairing
 *   TILE_STATE, TILE_CONFIG, TILE_ZERO, TILE_LOAD, TILE_STORE, TILE_DP, TILE_RELEASE  AMX
 *
 * Packed operands (see sam3neck_kernels.h, "bfloat16 products"): one 4-byte element holds a pair
 * of bfloat16 values of consecutive k (the lower k in the low half), so the float32 driver's
 * packing and loops serve with k counted in pairs. */

/* ---- A: float32 rows into bfloat16 pairs -------------------------------------------------- */

/* Rows i0 .. i0 + rows - 1 and pairs q0 .. q0 + pairs - 1 (k from 2 q0) of A into dst as pairs,
 * in A's orientation: row-major A gives dst[r * ld + q] = (A(i0 + r, 2(q0 + q)), A(.., + 1)),
 * transposed A gives dst[q * ld + r]. A k past the end gives 0 (odd k). */
static BF16_TARGET void BF16_NAME(convert_a)(const sam3neck_sgemm_args *g, size_t i0, size_t rows, size_t q0,
                                             size_t pairs, uint32_t *dst, size_t ld) {
  const size_t k = g->k, k0 = 2 * q0, kw = k - k0 < 2 * pairs ? k - k0 : 2 * pairs;
  if (!g->a_trans) {
    for (size_t r = 0; r < rows; r++) CVT_ROW(g->a + (i0 + r) * g->lda + k0, kw, dst + r * ld);
  } else {
    for (size_t q = 0; q < pairs; q++) {
      const size_t ka = k0 + 2 * q;
      CVT_TWO_ROWS(g->a + ka * g->lda + i0, ka + 1 < k ? g->a + (ka + 1) * g->lda + i0 : NULL, rows, dst + q * ld);
    }
  }
}

/* ---- the AVX512_BF16 micro-kernel: 12 rows x 32 columns, 24 accumulators ------------------- */

/* The register-tile kernel is a macro body laid out by hand: clang-format leaves it alone. */
/* clang-format off */
#define BF16_ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* c[r*ldc + j] (acc ? += : =) sum over pairs q < kp of the pair products of a[q*12 + r] and
 * B's pair (q, j), B's 16-column panels bps elements apart: the float32 kernels' contract with
 * k counted in pairs. */
static BF16_TARGET void BF16_NAME(kern_12x32)(size_t kp, const float *a, const float *b, size_t bps, float *c,
                                              size_t ldc, int acc) {
#define DECL(r) vf c##r##_0 = VF_ZERO(), c##r##_1 = VF_ZERO();
  BF16_ROWS12(DECL)
#undef DECL
  const float *b1p = b + bps;
  for (size_t q = 0; q < kp; q++) {
    const vf b0 = VF_LOAD(b + q * 16), b1 = VF_LOAD(b1p + q * 16);
    const float *aq = a + q * 12;
#define ROW(r)                                                                                     \
    {                                                                                              \
      const vf av = VF_BCAST(aq + r);                                                              \
      c##r##_0 = VF_DP(c##r##_0, av, b0);                                                          \
      c##r##_1 = VF_DP(c##r##_1, av, b1);                                                          \
    }
    BF16_ROWS12(ROW)
#undef ROW
  }
#define STORE(r)                                                                                   \
  {                                                                                                \
    float *cp = c + r * ldc;                                                                       \
    if (acc) {                                                                                     \
      c##r##_0 = VF_ADD(c##r##_0, VF_LOAD(cp));                                                    \
      c##r##_1 = VF_ADD(c##r##_1, VF_LOAD(cp + 16));                                               \
    }                                                                                              \
    VF_STORE(cp, c##r##_0);                                                                        \
    VF_STORE(cp + 16, c##r##_1);                                                                   \
  }
  BF16_ROWS12(STORE)
#undef STORE
}
/* clang-format on */

/* ---- the AMX driver: 16 x 16 x 32 tile products, 2 x 2 output tiles per step ---------------- */

#define BF16_AMX_MC 256 /* rows of A converted per block: 256 x k x 2 bytes (512 KB at k = 1024) */

/* Rows ic .. ic + mc - 1 of A as row-major pairs, kpp per row (whole tiles: k rounded to 32),
 * rows up to a multiple of 16 and pairs past k zero. */
static AMX_TARGET void BF16_NAME(amx_convert_a)(const sam3neck_sgemm_args *g, size_t ic, size_t mc, size_t kpp,
                                                uint32_t *aw, uint32_t *column) {
  const size_t kp = (g->k + 1) / 2, rows16 = (mc + 15) / 16 * 16;
  if (!g->a_trans) {
    BF16_NAME(convert_a)(g, ic, mc, 0, kp, aw, kpp);
    for (size_t r = 0; r < mc; r++) memset(aw + r * kpp + kp, 0, (kpp - kp) * 4);
  } else { /* one pair of k-rows at a time, then into its column of the row-major block */
    for (size_t q = 0; q < kpp; q++) {
      if (q < kp) BF16_NAME(convert_a)(g, ic, mc, q, 1, column, 1);
      for (size_t r = 0; r < mc; r++) aw[r * kpp + q] = q < kp ? column[r] : 0;
    }
  }
  memset(aw + mc * kpp, 0, (rows16 - mc) * kpp * 4);
}

static AMX_TARGET int BF16_NAME(amx_run)(const sam3neck_sgemm_args *g) {
  const size_t m = g->m, n = g->n, k = g->k;
  const size_t kb_count = (k + 31) / 32, kpp = kb_count * 16, bps = 16 * kpp;
  uint32_t *aw = (uint32_t *)(((uintptr_t)g->workspace + 63) & ~(uintptr_t)63);
  const size_t block = m < BF16_AMX_MC ? m : BF16_AMX_MC;
  float *tile = (float *)(aw + (block + 15) / 16 * 16 * kpp);
  uint32_t *column = (uint32_t *)(tile + 16 * 32);
  const float *bw = g->packed_b;
  /* No bias, GELU or store hook and a row-major C (the Winograd products): whole tiles go from
   * the tile registers straight into C. */
  const int plain = g->store == NULL && g->bias == NULL && !g->gelu && g->cs_c == 1 && g->rs_c >= (ptrdiff_t)n;
  const size_t lda = kpp * 4; /* bytes between rows of the converted A */
  TILE_STATE;
  TILE_CONFIG;
  for (size_t ic = 0; ic < m; ic += BF16_AMX_MC) {
    const size_t mc = m - ic < BF16_AMX_MC ? m - ic : BF16_AMX_MC;
    BF16_NAME(amx_convert_a)(g, ic, mc, kpp, aw, column);
    for (size_t jb = 0; jb * 32 < n; jb++) {
      const float *b0 = bw + 2 * jb * bps, *b1 = b0 + bps;
      const size_t cols = n - jb * 32 < 32 ? n - jb * 32 : 32;
      size_t t = 0;
      for (; (t + 2) * 16 <= (mc + 15) / 16 * 16; t += 2) {
        const uint32_t *a0 = aw + t * 16 * kpp, *a1 = a0 + 16 * kpp;
        TILE_ZERO(0);
        TILE_ZERO(1);
        TILE_ZERO(2);
        TILE_ZERO(3);
        for (size_t kb = 0; kb < kb_count; kb++) {
          TILE_LOAD(4, a0 + kb * 16, lda);
          TILE_LOAD(5, a1 + kb * 16, lda);
          TILE_LOAD(6, b0 + kb * 256, 64);
          TILE_LOAD(7, b1 + kb * 256, 64);
          TILE_DP(0, 4, 6);
          TILE_DP(1, 4, 7);
          TILE_DP(2, 5, 6);
          TILE_DP(3, 5, 7);
        }
        AMX_FINISH_TILES(2, g, plain, tile, ic, t, jb, mc, cols, BF16_EPILOGUE_KERNEL);
      }
      for (; t * 16 < mc; t++) { /* a last single row of tiles */
        const uint32_t *a0 = aw + t * 16 * kpp;
        TILE_ZERO(0);
        TILE_ZERO(1);
        for (size_t kb = 0; kb < kb_count; kb++) {
          TILE_LOAD(4, a0 + kb * 16, lda);
          TILE_LOAD(6, b0 + kb * 256, 64);
          TILE_LOAD(7, b1 + kb * 256, 64);
          TILE_DP(0, 4, 6);
          TILE_DP(1, 4, 7);
        }
        AMX_FINISH_TILES(1, g, plain, tile, ic, t, jb, mc, cols, BF16_EPILOGUE_KERNEL);
      }
    }
  }
  TILE_RELEASE;
  return 0;
}
