/* The AMX tile operations the kernels use (load, store, zero, TDPBF16PS), emulated in portable C
 * for the builds of the AMX drivers that run on any CPU (sgemm_bf16.c, sgemm_amx.c). Internal.
 * TDPBF16PS follows Intel's pseudo-code: per element, acc += a[2k] b[2k], then acc += a[2k+1]
 * b[2k+1], each a float32 FMA with denormals as zero in and out, nearest even
 * (sam3neck_bf16_dot_step). */
#ifndef SAM3NECK_AMX_EMULATION_H
#define SAM3NECK_AMX_EMULATION_H

#include "sam3neck_kernels.h"

#include <stdint.h>
#include <string.h>

static inline float amx_emu_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t amx_emu_bits(float f) {
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
        float acc = amx_emu_float(s->reg[c][m][n]);
        acc = sam3neck_bf16_dot_step(acc, (uint16_t)x, (uint16_t)y);
        acc = sam3neck_bf16_dot_step(acc, (uint16_t)(x >> 16), (uint16_t)(y >> 16));
        s->reg[c][m][n] = amx_emu_bits(acc);
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

#endif
