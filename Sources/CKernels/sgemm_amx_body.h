/* The bf16x3 AMX driver (see sgemm_amx.c), written once over the tile operations and the split
 * of A and compiled twice by sgemm_amx.c: with the AMX instructions, and against their portable
 * emulation (amx_tiles.h) with a portable split, so that its blocking, split layout, fallback
 * and epilogue run in the tests on any CPU. Not a header of its own: sgemm_amx.c defines, before
 * each inclusion, AMX_NAME(x), AMX_TARGET, AMX_EPILOGUE_KERNEL, AMX_FALLBACK_KERNEL,
 * AMX_A_HAS_UNSPLITTABLE(g), AMX_SPLIT_A(g, i0, rows, kb_count, aw), AMX_PREFETCH(p, first, count,
 * lines) and the TILE_* operations. */

/* The call on the float32 kernels (AMX_FALLBACK_KERNEL), on packed_b. */
static int AMX_NAME(fallback)(const sam3neck_sgemm_args *g) {
  sam3neck_sgemm_args f = *g;
  f.kernel = AMX_FALLBACK_KERNEL;
  f.packed_b_bf16x3 = NULL;
  return sam3neck_sgemm_run_f32(&f, f.kernel);
}

static AMX_TARGET int AMX_NAME(run)(const sam3neck_sgemm_args *g) {
  const size_t m = g->m, n = g->n, k = g->k;
  if (k == 0) return AMX_NAME(fallback)(g);
  const size_t kb_count = up(k, 32) / 32;
  uint16_t *aw = (uint16_t *)(((uintptr_t)g->workspace + 63) & ~(uintptr_t)63);
  float *tile = (float *)(aw + up(m < AMX_MC ? m : AMX_MC, 16) * up(k, 32) * 2);
  const uint16_t *bw = (const uint16_t *)g->packed_b_bf16x3;

  /* Without a float32 B there is nothing to fall back to: a row of A that does not split gives NaN
   * in all its outputs (split16), which the caller recomputes (the Winograd convs do, per tile). */
  if (g->packed_b != NULL && AMX_A_HAS_UNSPLITTABLE(g)) return AMX_NAME(fallback)(g);
  /* No bias, GELU or store hook and a row-major C (the Winograd products): whole tiles are stored
   * from the tile registers into C, not through the tile buffer and sam3neck_sgemm_finish_tile. */
  const int plain = g->store == NULL && g->bias == NULL && !g->gelu && g->cs_c == 1 && g->rs_c >= (ptrdiff_t)n;

  TILE_STATE;
  TILE_CONFIG;
  for (size_t ic = 0; ic < m; ic += AMX_MC) {
    const size_t mc = m - ic < AMX_MC ? m - ic : AMX_MC;
    AMX_SPLIT_A(g, ic, mc, kb_count, aw);
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
        TILE_ZERO(0);
        TILE_ZERO(1);
        TILE_ZERO(2);
        TILE_ZERO(3);
        for (size_t kb = 0; kb < kb_count; kb++) {
          const uint16_t *x = a0 + kb * 1024, *y = a1 + kb * 1024, *b = bp + kb * 2048;
          if (prefetch) AMX_PREFETCH(next, ((t / 2) * kb_count + kb) * per, per, lines);
          TILE_LOAD(4, x, 64);        /* A0 hi */
          TILE_LOAD(5, y, 64);        /* A1 hi */
          TILE_LOAD(6, b, 64);        /* B hi, columns 0-15 */
          TILE_LOAD(7, b + 1024, 64); /* B hi, columns 16-31 */
          TILE_DP(0, 4, 6);
          TILE_DP(1, 4, 7);
          TILE_DP(2, 5, 6);
          TILE_DP(3, 5, 7);
          TILE_LOAD(6, b + 512, 64);  /* B lo, columns 0-15 */
          TILE_LOAD(7, b + 1536, 64); /* B lo, columns 16-31 */
          TILE_DP(0, 4, 6);
          TILE_DP(1, 4, 7);
          TILE_DP(2, 5, 6);
          TILE_DP(3, 5, 7);
          TILE_LOAD(4, x + 512, 64); /* A0 lo */
          TILE_LOAD(5, y + 512, 64); /* A1 lo */
          TILE_LOAD(6, b, 64);       /* B hi again (from L1) */
          TILE_LOAD(7, b + 1024, 64);
          TILE_DP(0, 4, 6);
          TILE_DP(1, 4, 7);
          TILE_DP(2, 5, 6);
          TILE_DP(3, 5, 7);
        }
        AMX_FINISH_TILES(2, g, plain, tile, ic, t, jb, mc, cols, AMX_EPILOGUE_KERNEL);
      }
      for (; t * 16 < mc; t++) { /* a last single row of tiles: 1 x 2 */
        const uint16_t *ap = aw + t * kb_count * 1024;
        TILE_ZERO(0);
        TILE_ZERO(1);
        for (size_t kb = 0; kb < kb_count; kb++) {
          const uint16_t *a = ap + kb * 1024, *b = bp + kb * 2048;
          if (prefetch) AMX_PREFETCH(next, ((t / 2) * kb_count + kb) * per, per, lines);
          TILE_LOAD(2, a, 64);        /* A hi */
          TILE_LOAD(3, a + 512, 64);  /* A lo */
          TILE_LOAD(4, b, 64);        /* B hi, columns 0-15 */
          TILE_LOAD(5, b + 512, 64);  /* B lo, columns 0-15 */
          TILE_LOAD(6, b + 1024, 64); /* B hi, columns 16-31 */
          TILE_LOAD(7, b + 1536, 64); /* B lo, columns 16-31 */
          TILE_DP(0, 2, 4);
          TILE_DP(1, 2, 6);
          TILE_DP(0, 2, 5);
          TILE_DP(1, 2, 7);
          TILE_DP(0, 3, 4);
          TILE_DP(1, 3, 6);
        }
        AMX_FINISH_TILES(1, g, plain, tile, ic, t, jb, mc, cols, AMX_EPILOGUE_KERNEL);
      }
    }
  }
  TILE_RELEASE;
  return 0;
}
