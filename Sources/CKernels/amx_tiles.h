/* The AMX tile operations the drivers use (configure, zero, load, store, TDPBF16PS, release) as
 * TILE_* operations of two sets, for the two builds of each AMX driver (sgemm_bf16.c,
 * sgemm_amx.c): the instructions (NATIVE_TILE_*) and a portable emulation (EMU_TILE_*) that runs
 * on any CPU. Internal. The emulated TDPBF16PS follows Intel's pseudo-code: per element, acc +=
 * a[2k] b[2k], then acc += a[2k+1] b[2k+1], each a float32 FMA with denormals as zero in and out,
 * nearest even (sam3neck_bf16_dot_step). Also the drivers' common end of a block of tiles. */
#ifndef SAM3NECK_AMX_TILES_H
#define SAM3NECK_AMX_TILES_H

#include "sam3neck_kernels.h"

#include <stdint.h>
#include <string.h>

static inline float f32_of_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t bits_of_f32(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* AMX tiles, as palette 1 configures them here: 8 tiles of 16 rows x 64 bytes. */
typedef struct {
  uint32_t reg[8][16][16];
} emu_tiles;

static inline void emu_tile_load(emu_tiles *s, int t, const void *base, size_t stride) {
  for (int r = 0; r < 16; r++) memcpy(s->reg[t][r], (const char *)base + (size_t)r * stride, 64);
}
static inline void emu_tile_store(const emu_tiles *s, int t, void *base, size_t stride) {
  for (int r = 0; r < 16; r++) memcpy((char *)base + (size_t)r * stride, s->reg[t][r], 64);
}
static inline void emu_tile_dp(emu_tiles *s, int c, int a, int b) {
  for (int m = 0; m < 16; m++)
    for (int kq = 0; kq < 16; kq++) {
      const uint32_t x = s->reg[a][m][kq];
      for (int n = 0; n < 16; n++) {
        const uint32_t y = s->reg[b][kq][n];
        float acc = f32_of_bits(s->reg[c][m][n]);
        acc = sam3neck_bf16_dot_step(acc, (uint16_t)x, (uint16_t)y);
        acc = sam3neck_bf16_dot_step(acc, (uint16_t)(x >> 16), (uint16_t)(y >> 16));
        s->reg[c][m][n] = bits_of_f32(acc);
      }
    }
}

/* The TILE_* operations of the drivers, on a local emu_tiles. */
#define EMU_TILE_STATE emu_tiles tiles_
#define EMU_TILE_CONFIG ((void)0)
#define EMU_TILE_ZERO(t) memset(tiles_.reg[t], 0, sizeof tiles_.reg[t])
#define EMU_TILE_LOAD(t, p, stride) emu_tile_load(&tiles_, t, p, (size_t)(stride))
#define EMU_TILE_STORE(t, p, stride) emu_tile_store(&tiles_, t, p, (size_t)(stride))
#define EMU_TILE_DP(c, a, b) emu_tile_dp(&tiles_, c, a, b)
#define EMU_TILE_RELEASE ((void)0)

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

/* Palette 1: eight tiles of 16 rows x 64 bytes. */
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_tile_config;

#define NATIVE_TILE_STATE amx_tile_config cfg_
#define NATIVE_TILE_CONFIG                                                                                             \
  do {                                                                                                                 \
    memset(&cfg_, 0, sizeof cfg_);                                                                                     \
    cfg_.palette = 1;                                                                                                  \
    for (int t_ = 0; t_ < 8; t_++) {                                                                                   \
      cfg_.rows[t_] = 16;                                                                                              \
      cfg_.colsb[t_] = 64;                                                                                             \
    }                                                                                                                  \
    _tile_loadconfig(&cfg_);                                                                                           \
  } while (0)
#define NATIVE_TILE_ZERO(t) _tile_zero(t)
#define NATIVE_TILE_LOAD(t, p, stride) _tile_loadd(t, p, stride)
#define NATIVE_TILE_STORE(t, p, stride) _tile_stored(t, p, stride)
#define NATIVE_TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#define NATIVE_TILE_RELEASE _tile_release()
#endif

/* The end of a block of tile products, accumulators 0-1 (ROWS 1) or 0-3 (ROWS 2: tile rows t, t + 1)
 * for C's rows ic + 16t .. and columns 32jb .. 32jb + cols - 1 (cols <= 32) of mc rows: with
 * nothing to add (plain) and whole tiles, stored from the tile registers straight into C (row-major,
 * rs_c); else through the tile buffer (16 x 32 floats per tile row) and the float32 epilogue
 * (sam3neck_sgemm_finish_tile, its GELU as KERNEL's). Uses the including build's TILE_STORE. */
#define AMX_FINISH_TILES(ROWS, g, plain, tile, ic, t, jb, mc, cols, KERNEL)                                            \
  do {                                                                                                                 \
    if ((plain) && (cols) == 32 && ((t) + (ROWS)) * 16 <= (mc)) {                                                      \
      float *c_ = (g)->c + (ptrdiff_t)((ic) + (t)*16) * (g)->rs_c + (ptrdiff_t)(jb)*32;                                \
      TILE_STORE(0, c_, (g)->rs_c * 4);                                                                                \
      TILE_STORE(1, c_ + 16, (g)->rs_c * 4);                                                                           \
      if ((ROWS) == 2) {                                                                                               \
        TILE_STORE(2, c_ + 16 * (g)->rs_c, (g)->rs_c * 4);                                                             \
        TILE_STORE(3, c_ + 16 * (g)->rs_c + 16, (g)->rs_c * 4);                                                        \
      }                                                                                                                \
    } else {                                                                                                           \
      TILE_STORE(0, (tile), 128);                                                                                      \
      TILE_STORE(1, (tile) + 16, 128);                                                                                 \
      if ((ROWS) == 2) {                                                                                               \
        TILE_STORE(2, (tile) + 512, 128);                                                                              \
        TILE_STORE(3, (tile) + 528, 128);                                                                              \
      }                                                                                                                \
      for (size_t h_ = 0; h_ < (ROWS); h_++) {                                                                         \
        const size_t r0_ = ((t) + h_) * 16;                                                                            \
        if (r0_ < (mc))                                                                                                \
          sam3neck_sgemm_finish_tile(g, KERNEL, (tile) + h_ * 512, 32, (ic) + r0_, (jb)*32,                            \
                                     (mc)-r0_ < 16 ? (mc)-r0_ : 16, cols, 0);                                          \
      }                                                                                                                \
    }                                                                                                                  \
  } while (0)

#endif
