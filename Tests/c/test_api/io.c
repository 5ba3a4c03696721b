/*
 * io.c — the 0.3.0 additions: element types and output layouts (compile_io, get_io_params,
 * output_shape, run_io, position_encoding_io; every output type and layout, a bfloat16 input; in
 * the STRICT and the FAST precision),
 * and the experimental export of the loaded weights.
 * The oracle is the float32 plan: a float16 or bfloat16 output is its output rounded to nearest
 * even (decoded here independently of the library), a sequence or NHWC output its permutation.
 */
#include "test_api.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float half_to_float(uint16_t h) {
  int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (e == 0) return sign * ldexpf((float)m, -24);
  if (e == 31) return m ? NAN : sign * INFINITY;
  return sign * ldexpf((float)(1024 + m), e - 25);
}

static float bf16_to_float(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* Element (n, c, y, x) of a [B, d, h, w] output stored in `layout`. */
static size_t stored_index(sam3_neck_output_layout layout, int64_t b, int64_t d, int64_t h, int64_t w, int64_t n,
                           int64_t c, int64_t y, int64_t x) {
  switch (layout) {
  case SAM3_NECK_OUTPUT_NHWC: return (size_t)(((n * h + y) * w + x) * d + c);
  case SAM3_NECK_OUTPUT_SEQUENCE: return (size_t)(((y * w + x) * b + n) * d + c);
  default: return (size_t)(((n * d + c) * h + y) * w + x);
  }
}

/* The bound on the normalised error of a `precision` plan's outputs of type `dtype` against the
 * float64 reference: the precision's (SAM3_NECK_BOUND_*) plus, for a half-precision output, its
 * rounding to nearest (half an ulp: a relative 2^-11 for float16, 2^-8 for bfloat16), as
 * sam3neck.reference.tolerance states it for the fast mode. */
static double io_bound(sam3_neck_precision precision, sam3_neck_dtype dtype) {
  double b = precision == SAM3_NECK_PRECISION_FAST     ? SAM3_NECK_BOUND_FAST
             : precision == SAM3_NECK_PRECISION_STRICT ? SAM3_NECK_BOUND_STRICT
                                                       : SAM3_NECK_BOUND_DEFAULT;
  return b + (dtype == SAM3_NECK_DTYPE_FLOAT16 ? 0x1p-11 : dtype == SAM3_NECK_DTYPE_BFLOAT16 ? 0x1p-8 : 0.0);
}

/* `want`: the float32 NCHW outputs of a `precision` plan on f->input. Every output type and
 * layout of a `precision` plan is that output rounded and permuted; for the FAST precision each
 * output (unpermuted, widened) is also checked against the float64 reference with io_bound. */
static void check_io_combination(const fixture_t *f, sam3_neck *h, const outs_t *want, sam3_neck_dtype dtype,
                                 sam3_neck_output_layout layout, sam3_neck_precision precision) {
  sam3_neck_compile_params cp = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
  sam3_neck_io_params io = sam3_neck_io_default_params(), back;
  sam3_neck_compile_params cback;
  void *outs[SAM3_NECK_NUM_LEVELS];
  size_t counts[SAM3_NECK_NUM_LEVELS];
  size_t elem = dtype == SAM3_NECK_DTYPE_FLOAT32 ? 4 : 2;
  char what[160];
  int level, ok = 1;
  cp.precision = precision;
  io.output_dtype = dtype;
  io.output_layout = layout;
  snprintf(what, sizeof what, "io: compile_io(precision %d, float32 in, dtype %d out, layout %d)", (int)precision,
           (int)dtype, (int)layout);
  if (!check_ok(sam3_neck_compile_io(h, &cp, &io), what)) return;
  memset(&back, 0, sizeof back);
  back.struct_size = (uint32_t)sizeof back;
  check(sam3_neck_get_io_params(h, &back) == SAM3_NECK_OK && back.output_dtype == dtype &&
            back.output_layout == layout && back.input_dtype == SAM3_NECK_DTYPE_FLOAT32,
        "io: get_io_params returns what compile_io got (dtype %d, layout %d)", (int)dtype, (int)layout);
  check(sam3_neck_get_compile_params(h, &cback) == SAM3_NECK_OK && cback.precision == precision,
        "io: get_compile_params after compile_io returns precision %d", (int)precision);
  for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) {
    counts[level] = want->count[level];
    outs[level] = malloc(counts[level] * elem);
  }
  check_ok(sam3_neck_run_io(h, f->input, f->input_count, outs, counts), "io: run_io");
  for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) {
    int64_t s[4], shape[4];
    int32_t rank = 0;
    int64_t n, c, y, x;
    double diff = 0, scale = 0;
    sam3_neck_level_shape(h, level, s);
    sam3_neck_output_shape(h, level, shape, &rank);
    if (layout == SAM3_NECK_OUTPUT_SEQUENCE)
      ok = ok && rank == 3 && shape[0] == s[2] * s[3] && shape[1] == s[0] && shape[2] == s[1] && shape[3] == 0;
    else if (layout == SAM3_NECK_OUTPUT_NHWC)
      ok = ok && rank == 4 && shape[0] == s[0] && shape[1] == s[2] && shape[2] == s[3] && shape[3] == s[1];
    else
      ok = ok && rank == 4 && memcmp(shape, s, sizeof s) == 0;
    for (n = 0; n < s[0]; n++)
      for (c = 0; c < s[1]; c++)
        for (y = 0; y < s[2]; y++)
          for (x = 0; x < s[3]; x++) {
            float ref = want->ptr[level][(size_t)(((n * s[1] + c) * s[2] + y) * s[3] + x)];
            size_t at = stored_index(layout, s[0], s[1], s[2], s[3], n, c, y, x);
            float got = dtype == SAM3_NECK_DTYPE_FLOAT32   ? ((float *)outs[level])[at]
                        : dtype == SAM3_NECK_DTYPE_FLOAT16 ? half_to_float(((uint16_t *)outs[level])[at])
                                                           : bf16_to_float(((uint16_t *)outs[level])[at]);
            /* Rounded to nearest: within half a unit of the last place (2^-11 or 2^-8 relative). */
            double bound = dtype == SAM3_NECK_DTYPE_FLOAT32
                               ? 0
                               : fabs(ref) * (dtype == SAM3_NECK_DTYPE_FLOAT16 ? 0x1p-11 : 0x1p-8);
            if (dtype == SAM3_NECK_DTYPE_FLOAT16 && fabs(ref) < 0x1p-14) bound = 0x1p-25; /* subnormal step / 2 */
            if (!(fabs((double)got - ref) <= bound)) ok = 0;
            if (f->refs[level] != NULL) {
              /* against the float64 reference (NCHW), as norm_err computes it */
              double r = f->refs[level][(size_t)(((n * s[1] + c) * s[2] + y) * s[3] + x)];
              double e = fabs((double)got - r);
              diff = (e > diff || e != e) ? e : diff;
              scale = fabs(r) > scale ? fabs(r) : scale;
            }
          }
    free(outs[level]);
    if (precision == SAM3_NECK_PRECISION_FAST) {
      double e = scale > 0 ? diff / scale : diff;
      check(e <= io_bound(precision, dtype),
            "io: FAST, dtype %d, layout %d: level %d normalised max error %.3g <= %.3g (the bound plus the rounding)",
            (int)dtype, (int)layout, level, e, io_bound(precision, dtype));
    }
  }
  check(ok,
        "io: precision %d, dtype %d, layout %d: output_shape is the layout's, every element the float32 output rounded "
        "and permuted",
        (int)precision, (int)dtype, (int)layout);
  if (dtype != SAM3_NECK_DTYPE_FLOAT32) {
    check_err_msg(run_outs(h, f->input, f->input_count, want), SAM3_NECK_ERR_DTYPE, "sam3_neck_run_io",
                  "io: sam3_neck_run of a half-precision plan");
  }
  {
    int64_t s[4];
    size_t count;
    void *pos;
    sam3_neck_level_shape(h, 2, s);
    count = (size_t)(s[1] * s[2] * s[3]);
    pos = malloc(count * elem);
    check_err(sam3_neck_position_encoding_io(h, 2, pos, count - 1), SAM3_NECK_ERR_SHAPE,
              "io: position_encoding_io, count too small");
    check_ok(sam3_neck_position_encoding_io(h, 2, pos, count), "io: position_encoding_io(2)");
    free(pos);
  }
}

/* A bfloat16 input: the fixture's input cut to bfloat16 (its upper 16 bits, a value bfloat16
 * holds exactly) gives bit for bit what the float32 plan gives on the same values widened. */
static void check_bfloat16_input(const fixture_t *f, sam3_neck *h, sam3_neck_precision precision) {
  sam3_neck_compile_params cp = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
  sam3_neck_io_params io = sam3_neck_io_default_params();
  uint16_t *bits = (uint16_t *)malloc(f->input_count * sizeof *bits);
  float *widened = (float *)malloc(f->input_count * sizeof *widened);
  outs_t want, got;
  void *ptrs[SAM3_NECK_NUM_LEVELS];
  size_t i;
  int level;
  for (i = 0; i < f->input_count; i++) {
    uint32_t b;
    memcpy(&b, &f->input[i], sizeof b);
    bits[i] = (uint16_t)(b >> 16);
    widened[i] = bf16_to_float(bits[i]);
  }
  cp.precision = precision;
  outs_alloc(&want, &f->meta, 0xF);
  outs_alloc(&got, &f->meta, 0xF);
  if (check_ok(sam3_neck_compile(h, &cp), "io: compile float32 for the bfloat16-input oracle") &&
      check_ok(run_outs(h, widened, f->input_count, &want), "io: float32 run on the bfloat16 values")) {
    io.input_dtype = SAM3_NECK_DTYPE_BFLOAT16;
    if (check_ok(sam3_neck_compile_io(h, &cp, &io), "io: compile_io(bfloat16 input)")) {
      for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) ptrs[level] = got.ptr[level];
      check_ok(sam3_neck_run_io(h, bits, f->input_count, ptrs, got.count), "io: run_io(bfloat16 input)");
      check(outs_equal(&got, &want),
            "io: precision %d: a bfloat16 input gives bit for bit the float32 plan's outputs on its values",
            (int)precision);
    }
  }
  outs_free(&want);
  outs_free(&got);
  free(bits);
  free(widened);
}

/* The header's table of which verb takes which plan, one cell at a time: for every output type and
 * layout (input float32, both input layouts, strict and fast), sam3_neck_run is OK only for a
 * float32 NCHW plan; another output type is a DTYPE error, NHWC or sequence float32 outputs an
 * INVALID_ARGUMENT naming sam3_neck_run_io, and a refused run writes nothing (the outputs keep a
 * canary); sam3_neck_run_io takes every plan. */
static void check_verbs_against_plans(const fixture_t *f, sam3_neck *h) {
  const sam3_neck_precision precisions[2] = {SAM3_NECK_PRECISION_STRICT, SAM3_NECK_PRECISION_FAST};
  int d, l, p, lay, i;
  size_t j;
  for (p = 0; p < 2; p++)
    for (lay = 0; lay < 2; lay++)
      for (d = 0; d < 3; d++)
        for (l = 0; l < 3; l++) {
          sam3_neck_compile_params cp = fixture_params(&f->meta, (sam3_neck_layout)lay, 0xF);
          sam3_neck_io_params io = sam3_neck_io_default_params();
          outs_t o;
          float *in = lay == SAM3_NECK_LAYOUT_NHWC
                          ? to_nhwc(f->input, f->meta.batch, f->meta.trunk_dim, f->meta.height, f->meta.width)
                          : NULL;
          char what[200];
          sam3_neck_status st, want = d != SAM3_NECK_DTYPE_FLOAT32 ? SAM3_NECK_ERR_DTYPE
                                      : l != SAM3_NECK_OUTPUT_NCHW ? SAM3_NECK_ERR_INVALID_ARGUMENT
                                                                   : SAM3_NECK_OK;
          int untouched = 1;
          cp.precision = precisions[p];
          io.output_dtype = (sam3_neck_dtype)d;
          io.output_layout = (sam3_neck_output_layout)l;
          snprintf(what, sizeof what,
                   "verbs: sam3_neck_run on a plan of precision %d, input layout %d, output dtype %d, layout %d",
                   (int)precisions[p], lay, d, l);
          if (!check_ok(sam3_neck_compile_io(h, &cp, &io), what)) {
            free(in);
            continue;
          }
          outs_alloc(&o, &f->meta, 0xF);
          for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++)
            for (j = 0; j < o.count[i]; j++) o.ptr[i][j] = -7.0f;
          st = run_outs(h, in ? in : f->input, f->input_count, &o);
          if (want == SAM3_NECK_OK) {
            check_ok(st, what);
          } else {
            check_err_msg(st, want, "sam3_neck_run_io", what);
            for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++)
              for (j = 0; j < o.count[i]; j++) untouched &= o.ptr[i][j] == -7.0f;
            check(untouched, "verbs: a refused sam3_neck_run writes nothing");
          }
          outs_free(&o);
          free(in);
        }
}

void test_io(sam3_neck *h, const fixture_t *f) {
  sam3_neck_compile_params cp = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
  sam3_neck_io_params io = sam3_neck_io_default_params();
  outs_t want;
  int d, l;
  check(io.struct_size == sizeof io && io.input_dtype == SAM3_NECK_DTYPE_FLOAT32 &&
            io.output_dtype == SAM3_NECK_DTYPE_FLOAT32 && io.output_layout == SAM3_NECK_OUTPUT_NCHW,
        "io: io_default_params is float32 in and out, NCHW, struct_size = sizeof");
  if (!check_ok(sam3_neck_compile_io(h, &cp, NULL), "io: compile_io(io NULL) = the defaults")) return;
  outs_alloc(&want, &f->meta, 0xF);
  if (check_ok(run_outs(h, f->input, f->input_count, &want), "io: float32 run as the oracle")) {
    for (d = 0; d < 3; d++)
      for (l = 0; l < 3; l++)
        check_io_combination(f, h, &want, (sam3_neck_dtype)d, (sam3_neck_output_layout)l, SAM3_NECK_PRECISION_STRICT);
  }
  outs_free(&want);
  check_bfloat16_input(f, h, SAM3_NECK_PRECISION_STRICT);
  /* the same in the FAST precision: its float32 NCHW plan is the oracle, and every output meets
   * SAM3_NECK_BOUND_FAST (plus its rounding) against the float64 reference */
  cp.precision = SAM3_NECK_PRECISION_FAST;
  if (check_ok(sam3_neck_compile_io(h, &cp, NULL), "io: compile_io(FAST precision, io NULL)")) {
    outs_alloc(&want, &f->meta, 0xF);
    if (check_ok(run_outs(h, f->input, f->input_count, &want), "io: FAST float32 run as the oracle")) {
      compare_refs(&want, f->refs, 0xF, SAM3_NECK_BOUND_FAST, "io: FAST float32 NCHW vs float64 reference");
      for (d = 0; d < 3; d++)
        for (l = 0; l < 3; l++)
          check_io_combination(f, h, &want, (sam3_neck_dtype)d, (sam3_neck_output_layout)l, SAM3_NECK_PRECISION_FAST);
    }
    outs_free(&want);
  }
  check_bfloat16_input(f, h, SAM3_NECK_PRECISION_FAST);
  check_verbs_against_plans(f, h);
  cp.precision = SAM3_NECK_PRECISION_STRICT;
  io.struct_size = 4;
  check_err_msg(sam3_neck_compile_io(h, &cp, &io), SAM3_NECK_ERR_INVALID_ARGUMENT, "struct_size",
                "io: struct_size too small");
  io = sam3_neck_io_default_params();
  set_enum_raw(&io.output_layout, 7);
  check_err_msg(sam3_neck_compile_io(h, &cp, &io), SAM3_NECK_ERR_INVALID_ARGUMENT, "output_layout",
                "io: unknown output layout");
  io = sam3_neck_io_default_params();
  set_enum_raw(&io.input_dtype, 3);
  check_err_msg(sam3_neck_compile_io(h, &cp, &io), SAM3_NECK_ERR_INVALID_ARGUMENT, "input_dtype",
                "io: unknown input dtype");
  /* Leave the handle compiled as the tests after this one expect (float32, NCHW). */
  check_ok(sam3_neck_compile(h, &cp), "io: compile again with the float32 defaults");
}

void test_weight_export(sam3_neck *h, const fixture_t *f) {
  int32_t i, rank = 0;
  int64_t shape[4];
  float *out;
  size_t n;
  for (i = 0; sam3_neck_experimental_tensor_name(i) != NULL; i++) {
  }
  check(i == 22 && strcmp(sam3_neck_experimental_tensor_name(0), "0.dconv_2x2_0.weight") == 0 &&
            strcmp(sam3_neck_experimental_tensor_name(21), "3.conv_3x3.bias") == 0 &&
            sam3_neck_experimental_tensor_name(-1) == NULL,
        "export: 22 tensor names, levels in order, weight before bias (%d)", (int)i);
  check_err_msg(sam3_neck_experimental_get_tensor(h, "2.conv_1x1.weight", NULL, 0, shape, &rank), SAM3_NECK_ERR_SHAPE,
                "capacity", "export: capacity 0 asks for the shape");
  check(rank == 4 && shape[0] == f->meta.d_model && shape[1] == f->meta.trunk_dim && shape[2] == 1 && shape[3] == 1,
        "export: 2.conv_1x1.weight is [d_model, trunk_dim, 1, 1]");
  n = (size_t)(shape[0] * shape[1]);
  out = (float *)malloc(n * sizeof(float));
  check_ok(sam3_neck_experimental_get_tensor(h, "2.conv_1x1.weight", out, n, shape, &rank), "export: get_tensor");
  {
    size_t k, finite = 0;
    for (k = 0; k < n; k++) finite += isfinite(out[k]) && out[k] != 0;
    check(finite == n, "export: the weights are finite, nonzero values (%zu of %zu)", finite, n);
  }
  free(out);
  check_err_msg(sam3_neck_experimental_get_tensor(h, "2.conv_9x9.weight", NULL, 0, shape, &rank),
                SAM3_NECK_ERR_INVALID_ARGUMENT, "no tensor '2.conv_9x9.weight'", "export: an unknown name");
  check_err(sam3_neck_experimental_get_tensor(h, "0.dconv_2x2_0.bias", NULL, 0, NULL, &rank),
            SAM3_NECK_ERR_INVALID_ARGUMENT, "export: NULL shape");
}
