/*
 * old_header_program.c — a program written against the 0.2.0 header and compiled against each
 * kept release header (Tests/abi/sam3_neck-0.2.0.h, -0.3.0.h, -0.4.0.h, verbatim copies; -DOLD_HEADER picks
 * one), run against the current library: the ABI rules
 * of include/sam3_neck.h promise it works unchanged. It loads the C test's fixture, compiles with
 * and without parameters, runs, reads the queries and position encodings, and compares every
 * level with the float64 reference of Tests/c/make_fixtures.py (strict mode: 1e-5).
 *
 *   cc -std=c99 -I Tests/abi Tests/abi/old_header_program.c -L .build/release -lsam3neck ...
 *   old_header_program FIXTURE_DIR     (prints "N passed, M failed"; exits 1 on a failure)
 */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#ifndef OLD_HEADER
#define OLD_HEADER "sam3_neck-0.2.0.h"
#endif
#include OLD_HEADER
#include "abi_program.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  size_t n = 0;
  char *text;
  float *input;
  sam3_neck *neck = NULL;
  sam3_neck_compile_params p;
  long b, h, w;
  int level;

  if (load_fixture(argc, argv, "old_header_program", &text, &input, &n) != 0) return 2;
  b = meta(text, "batch "), h = meta(text, "height "), w = meta(text, "width ");

  check(sam3_neck_abi_version() == SAM3_NECK_ABI_VERSION, "the library's ABI version is the old header's");
  {
    char path[4096];
    snprintf(path, sizeof path, "%s/tiny.safetensors", argv[1]);
    check(sam3_neck_load_file(path, NULL, &neck) == SAM3_NECK_OK && neck != NULL, "load_file");
  }
  check(sam3_neck_compile(neck, NULL) == SAM3_NECK_OK, "compile(NULL): the old defaults");
  p = sam3_neck_compile_default_params();
  p.batch = (int32_t)b;
  p.height = (int32_t)h;
  p.width = (int32_t)w;
  p.precision = SAM3_NECK_PRECISION_STRICT;
  check(sam3_neck_compile(neck, &p) == SAM3_NECK_OK, "compile(the fixture's shape, strict)");
  {
    size_t count = 0;
    check(sam3_neck_input_count(neck, &count) == SAM3_NECK_OK && count * sizeof(float) == n,
          "input_count matches the fixture's input");
  }
  {
    float *outs[SAM3_NECK_NUM_LEVELS];
    size_t counts[SAM3_NECK_NUM_LEVELS];
    for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) {
      int64_t s[4];
      sam3_neck_level_shape(neck, level, s);
      counts[level] = (size_t)(s[0] * s[1] * s[2] * s[3]);
      outs[level] = (float *)malloc(counts[level] * sizeof(float));
    }
    check(sam3_neck_run(neck, input, n / sizeof(float), outs, counts) == SAM3_NECK_OK, "run");
    for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) {
      char name[64], what[128];
      size_t bytes = 0, i;
      double *ref, err = 0, scale = 0;
      snprintf(name, sizeof name, "ref_level%d.f64", level);
      ref = (double *)slurp(argv[1], name, &bytes);
      if (ref == NULL || bytes != counts[level] * sizeof(double)) {
        check(0, name);
        free(ref);
        continue;
      }
      for (i = 0; i < counts[level]; i++) {
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
        if (fabs(outs[level][i] - ref[i]) > err) err = fabs(outs[level][i] - ref[i]);
      }
      snprintf(what, sizeof what, "level %d within 1e-5 of the float64 reference (normalised %.2g)", level,
               scale > 0 ? err / scale : err);
      check(scale > 0 && err / scale <= 1e-5, what);
      free(ref);
      free(outs[level]);
    }
  }
  {
    int64_t s[4];
    float *pos;
    sam3_neck_level_shape(neck, 2, s);
    pos = (float *)malloc((size_t)(s[1] * s[2] * s[3]) * sizeof(float));
    check(sam3_neck_position_encoding(neck, 2, pos, (size_t)(s[1] * s[2] * s[3])) == SAM3_NECK_OK && pos[0] == pos[0],
          "position_encoding(2)");
    free(pos);
  }
  check(sam3_neck_run(neck, input, 3, NULL, NULL) == SAM3_NECK_ERR_INVALID_ARGUMENT,
        "run with NULL outputs is refused");
  sam3_neck_free(neck);
  free(input);
  free(text);
  printf("%d passed, %d failed\n", passed, failed);
  return failed > 0;
}
