/*
 * run.c — runs against the float64 references: NCHW and NHWC, STRICT, DEFAULT and FAST precision
 * (each within its bound, SAM3_NECK_BOUND_STRICT / _DEFAULT / _FAST),
 * 0, 1 and 2 threads, larger output capacities, a level subset, recompiles with other shapes;
 * run's argument errors; checkpoint variants (dtypes, prefixes, kinds, files written by real
 * PyTorch, a PyTorch archive from memory).
 */
#include "test_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_run_errors(sam3_neck *h, const fixture_t *f) {
  const float *input = f->input;
  size_t in_n = f->input_count;
  outs_t o;
  float *saved;
  size_t saved_count;
  int i;
  outs_alloc(&o, &f->meta, 0xF);
  check_err(sam3_neck_run(NULL, input, in_n, o.ptr, o.count), SAM3_NECK_ERR_INVALID_ARGUMENT, "run(NULL handle)");
  check_err(sam3_neck_run(h, NULL, in_n, o.ptr, o.count), SAM3_NECK_ERR_INVALID_ARGUMENT, "run(input NULL)");
  check_err(sam3_neck_run(h, input, in_n, NULL, o.count), SAM3_NECK_ERR_INVALID_ARGUMENT, "run(outputs NULL)");
  check_err(sam3_neck_run(h, input, in_n, o.ptr, NULL), SAM3_NECK_ERR_INVALID_ARGUMENT, "run(output_counts NULL)");
  check_err(sam3_neck_run(h, input, in_n - 1, o.ptr, o.count), SAM3_NECK_ERR_SHAPE, "run(input_count - 1)");
  check_err(sam3_neck_run(h, input, in_n + 1, o.ptr, o.count), SAM3_NECK_ERR_SHAPE, "run(input_count + 1)");
  check_err(sam3_neck_run(h, input, 0, o.ptr, o.count), SAM3_NECK_ERR_SHAPE, "run(input_count 0)");
  /* counts past 2^63 are numbers, not negative ones: in the message, and SIZE_MAX is a capacity
   * at least as large as any level needs */
  check_err_msg(sam3_neck_run(h, input, SIZE_MAX, o.ptr, o.count), SAM3_NECK_ERR_SHAPE, "18446744073709551615",
                "run(input_count SIZE_MAX): the message gives it as 18446744073709551615");
  {
    outs_t huge = o;
    for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) huge.count[i] = SIZE_MAX;
    check_ok(run_outs(h, input, in_n, &huge), "run(output_counts SIZE_MAX): at least what every level needs");
  }
  /* Alignment and overlap are checked, and a refused run writes nothing. */
  {
    float *shifted = (float *)malloc((in_n + 1) * sizeof(float));
    outs_t overlap = o;
    int untouched = 1;
    size_t k;
    if (shifted != NULL) {
      memcpy((char *)shifted + 1, input, in_n * sizeof(float));
      check_err_msg(sam3_neck_run(h, (const float *)(const void *)((char *)shifted + 1), in_n, o.ptr, o.count),
                    SAM3_NECK_ERR_INVALID_ARGUMENT, "aligned", "run(input one byte off float alignment)");
      free(shifted);
    }
    for (k = 0; k < o.count[2]; k++) o.ptr[2][k] = -3.0f;
    overlap.ptr[3] = (float *)(void *)((char *)o.ptr[1] + 2);
    check_err_msg(run_outs(h, input, in_n, &overlap), SAM3_NECK_ERR_INVALID_ARGUMENT, "aligned",
                  "run(outputs[3] one byte-pair off float alignment)");
    overlap.ptr[3] = o.ptr[1] + 1;
    check_err_msg(run_outs(h, input, in_n, &overlap), SAM3_NECK_ERR_INVALID_ARGUMENT, "overlaps",
                  "run(outputs[3] inside outputs[1])");
    for (k = 0; k < o.count[2]; k++) untouched &= o.ptr[2][k] == -3.0f;
    check(untouched, "run: a refused run (overlapping outputs) writes nothing");
    overlap = o;
    overlap.ptr[0] = (float *)(void *)input;
    check_err_msg(run_outs(h, input, in_n, &overlap), SAM3_NECK_ERR_INVALID_ARGUMENT, "overlaps",
                  "run(outputs[0] is the input)");
  }
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    char label[96];
    o.count[i] -= 1;
    snprintf(label, sizeof label, "run(output_counts[%d] one too small)", i);
    check_err(run_outs(h, input, in_n, &o), SAM3_NECK_ERR_SHAPE, label);
    o.count[i] += 1;

    saved = o.ptr[i];
    o.ptr[i] = NULL;
    snprintf(label, sizeof label, "run(outputs[%d] NULL for a compiled level)", i);
    check_err(run_outs(h, input, in_n, &o), SAM3_NECK_ERR_INVALID_ARGUMENT, label);
    o.ptr[i] = saved;
  }
  saved_count = o.count[0];
  o.count[0] = 0;
  check_err(run_outs(h, input, in_n, &o), SAM3_NECK_ERR_SHAPE, "run(output_counts[0] == 0)");
  o.count[0] = saved_count;
  outs_free(&o);
}

/* Capacities larger than needed are accepted; nothing is written past B*d*h*w. `o`: the outputs
 * of the same run with exact capacities. */
static void test_larger_capacities(sam3_neck *h, const fixture_t *f, const outs_t *o) {
  outs_t big;
  int untouched = 1, i, k;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    big.count[i] = o->count[i] + 8;
    big.ptr[i] = (float *)malloc(big.count[i] * sizeof(float));
    for (k = 0; k < 8; k++) {
      big.ptr[i][o->count[i] + k] = 777.0f;
    }
  }
  if (check_ok(run_outs(h, f->input, f->input_count, &big), "run(output capacities 8 floats larger)")) {
    for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
      for (k = 0; k < 8; k++) {
        untouched = untouched && big.ptr[i][o->count[i] + k] == 777.0f;
      }
    }
    check(outs_equal(o, &big), "larger capacities: same outputs");
    check(untouched, "larger capacities: nothing written past B*d*h*w");
  }
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    free(big.ptr[i]);
  }
}

/* levels_mask 0x5: levels 0 and 2 only, NULL for 1 and 3; the other levels are not queryable. */
static void test_level_subset(sam3_neck *h, const fixture_t *f) {
  const meta_t *m = &f->meta;
  sam3_neck_compile_params cp = fixture_params(m, SAM3_NECK_LAYOUT_NCHW, 0x5);
  int64_t shape[4];
  float pe[8];
  size_t ws = 0;
  outs_t o;
  if (!check_ok(sam3_neck_compile(h, &cp), "compile(levels_mask 0x5)")) {
    return;
  }
  outs_alloc(&o, m, 0x5);
  check(o.ptr[1] == NULL && o.ptr[3] == NULL, "subset: outputs[1], outputs[3] are NULL");
  outs_free(&o);
  run_compare(h, m, f->input, f->input_count, f->refs, 0x5, SAM3_NECK_BOUND_STRICT,
              "run(levels 0x5, outputs[1] = outputs[3] = NULL)", "subset 0x5 vs float64 reference");
  check_ok(sam3_neck_level_shape(h, 0, shape), "subset: level_shape(0)");
  check_ok(sam3_neck_level_shape(h, 2, shape), "subset: level_shape(2)");
  check_err(sam3_neck_level_shape(h, 1, shape), SAM3_NECK_ERR_INVALID_ARGUMENT, "subset: level_shape(1) (not in mask)");
  check_err(sam3_neck_level_shape(h, 3, shape), SAM3_NECK_ERR_INVALID_ARGUMENT, "subset: level_shape(3) (not in mask)");
  check_err(sam3_neck_position_encoding(h, 1, pe, 8), SAM3_NECK_ERR_INVALID_ARGUMENT,
            "subset: position_encoding(1) (not in mask)");
  check_err(sam3_neck_position_encoding(h, 3, pe, 8), SAM3_NECK_ERR_INVALID_ARGUMENT,
            "subset: position_encoding(3) (not in mask)");
  check_ok(sam3_neck_workspace_size(h, &ws), "subset: workspace_size");
  check(ws > 0, "subset: workspace_size > 0 (%zu)", ws);
}

/* Compile again with another shape (batch 1, same grid) and run: sample 0 of the batch's run;
 * another grid (larger, odd sizes); then back to the fixture's shape. */
static void test_recompiles(sam3_neck *h, const fixture_t *f) {
  const meta_t *m = &f->meta;
  meta_t m1 = *m;
  size_t per = (size_t)m->trunk_dim * m->height * m->width;
  sam3_neck_compile_params cp;
  outs_t o;
  int i;
  m1.batch = 1;
  cp = fixture_params(&m1, SAM3_NECK_LAYOUT_NCHW, 0xF);
  if (check_ok(sam3_neck_compile(h, &cp), "recompile(batch 1)")) {
    outs_alloc(&o, &m1, 0xF);
    if (check_ok(run_outs(h, f->input, per, &o), "run(batch 1, sample 0)")) {
      for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
        double e = norm_err(o.ptr[i], f->refs[i], o.count[i]);
        check(e <= SAM3_NECK_BOUND_STRICT, "batch 1: level %d equals sample 0 of the reference (err %.3g)", i, e);
      }
    }
    outs_free(&o);
  }
  cp.height = m->height + 3;
  cp.width = m->width + 5;
  if (check_ok(sam3_neck_compile(h, &cp), "recompile(another grid)")) {
    size_t n = 0;
    float *in2;
    int finite = 1;
    sam3_neck_input_count(h, &n);
    in2 = (float *)calloc(n, sizeof(float));
    m1.height = cp.height;
    m1.width = cp.width;
    outs_alloc(&o, &m1, 0xF);
    if (check_ok(run_outs(h, in2, n, &o), "run(another grid, zero input)")) {
      size_t k;
      for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
        for (k = 0; k < o.count[i]; k++) {
          finite = finite && (o.ptr[i][k] == o.ptr[i][k]) && fabs(o.ptr[i][k]) < 1e30;
        }
      }
      check(finite, "another grid: outputs finite");
    }
    outs_free(&o);
    free(in2);
  }
  cp = fixture_params(m, SAM3_NECK_LAYOUT_NCHW, 0xF);
  if (check_ok(sam3_neck_compile(h, &cp), "recompile(fixture shape) again")) {
    run_compare(h, m, f->input, f->input_count, f->refs, 0xF, SAM3_NECK_BOUND_STRICT, "run after recompiles",
                "after recompiles vs float64 reference");
  }
}

void test_runs(sam3_neck *h, const fixture_t *f) {
  const meta_t *m = &f->meta;
  const float *input = f->input;
  size_t in_n = f->input_count;
  sam3_neck_compile_params cp = fixture_params(m, SAM3_NECK_LAYOUT_NCHW, 0xF);
  outs_t o, o2;
  float *nhwc;

  /* NCHW, strict */
  check_ok(sam3_neck_compile(h, &cp), "compile(NCHW, STRICT)");
  outs_alloc(&o, m, 0xF);
  if (check_ok(run_outs(h, input, in_n, &o), "run(NCHW, STRICT)")) {
    compare_refs(&o, f->refs, 0xF, SAM3_NECK_BOUND_STRICT, "NCHW STRICT vs float64 reference");
  }
  /* a second run gives bitwise the same */
  outs_alloc(&o2, m, 0xF);
  if (check_ok(run_outs(h, input, in_n, &o2), "run again")) {
    check(outs_equal(&o, &o2), "two runs on one handle are bitwise equal");
  }
  outs_free(&o2);
  test_larger_capacities(h, f, &o);
  outs_free(&o);

  /* default precision: documented bound SAM3_NECK_BOUND_DEFAULT */
  cp.precision = SAM3_NECK_PRECISION_DEFAULT;
  if (check_ok(sam3_neck_compile(h, &cp), "compile(NCHW, DEFAULT precision)")) {
    run_compare(h, m, input, in_n, f->refs, 0xF, SAM3_NECK_BOUND_DEFAULT, "run(NCHW, DEFAULT precision)",
                "NCHW DEFAULT precision vs float64 reference");
  }
  /* fast precision (bfloat16 products where the CPU has them): SAM3_NECK_BOUND_FAST; its runs are
   * deterministic like the others' */
  cp.precision = SAM3_NECK_PRECISION_FAST;
  if (check_ok(sam3_neck_compile(h, &cp), "compile(NCHW, FAST precision)")) {
    outs_alloc(&o, m, 0xF);
    outs_alloc(&o2, m, 0xF);
    if (check_ok(run_outs(h, input, in_n, &o), "run(NCHW, FAST precision)")) {
      compare_refs(&o, f->refs, 0xF, SAM3_NECK_BOUND_FAST, "NCHW FAST precision vs float64 reference");
      if (check_ok(run_outs(h, input, in_n, &o2), "run(NCHW, FAST precision) again")) {
        check(outs_equal(&o, &o2), "FAST: two runs on one handle are bitwise equal");
      }
    }
    outs_free(&o);
    outs_free(&o2);
  }
  cp.threads = 1;
  if (check_ok(sam3_neck_compile(h, &cp), "compile(NCHW, FAST precision, threads 1)")) {
    run_compare(h, m, input, in_n, f->refs, 0xF, SAM3_NECK_BOUND_FAST, "run(FAST, threads 1)",
                "FAST threads 1 vs float64 reference");
  }
  cp.threads = 2;
  cp.levels_mask = 0x5;
  if (check_ok(sam3_neck_compile(h, &cp), "compile(NCHW, FAST precision, levels 0x5)")) {
    run_compare(h, m, input, in_n, f->refs, 0x5, SAM3_NECK_BOUND_FAST, "run(FAST, levels 0x5)",
                "FAST subset 0x5 vs float64 reference");
  }
  cp.levels_mask = 0xF;
  /* threads 0 (all cores) and threads 1 */
  cp.precision = SAM3_NECK_PRECISION_STRICT;
  cp.threads = 0;
  if (check_ok(sam3_neck_compile(h, &cp), "compile(threads 0 = all cores)")) {
    run_compare(h, m, input, in_n, f->refs, 0xF, SAM3_NECK_BOUND_STRICT, "run(threads 0)",
                "threads 0 vs float64 reference");
  }
  cp.threads = 1;
  if (check_ok(sam3_neck_compile(h, &cp), "compile(threads 1)")) {
    run_compare(h, m, input, in_n, f->refs, 0xF, SAM3_NECK_BOUND_STRICT, "run(threads 1)",
                "threads 1 vs float64 reference");
  }

  /* NHWC */
  nhwc = to_nhwc(input, m->batch, m->trunk_dim, m->height, m->width);
  cp = fixture_params(m, SAM3_NECK_LAYOUT_NHWC, 0xF);
  if (check_ok(sam3_neck_compile(h, &cp), "compile(NHWC)")) {
    size_t n = 0;
    sam3_neck_input_count(h, &n);
    check(n == in_n, "NHWC input_count == B*C*H*W (%zu)", n);
    run_compare(h, m, nhwc, in_n, f->refs, 0xF, SAM3_NECK_BOUND_STRICT, "run(NHWC, transposed input)",
                "NHWC vs float64 reference");
  }
  cp.precision = SAM3_NECK_PRECISION_FAST;
  if (check_ok(sam3_neck_compile(h, &cp), "compile(NHWC, FAST precision)")) {
    run_compare(h, m, nhwc, in_n, f->refs, 0xF, SAM3_NECK_BOUND_FAST, "run(NHWC, FAST precision)",
                "NHWC FAST precision vs float64 reference");
  }
  free(nhwc);

  test_level_subset(h, f);
  test_recompiles(h, f);
}

/* Loads `name` with `lp` (NULL: defaults), compiles the fixture's shape, runs and compares with
 * the references STEM0..3. */
static void check_variant(const fixture_t *f, const char *name, const sam3_neck_load_params *lp, const char *stem,
                          const char *what) {
  sam3_neck *h = NULL;
  char *p = join_path(f->dir, name);
  sam3_neck_status st = sam3_neck_load_file(p, lp, &h);
  char label[256], run_label[256];
  snprintf(label, sizeof label, "%s: load_file(%s)", what, name);
  if (check_ok(st, label) && check(h != NULL, "%s: handle non-NULL", what)) {
    sam3_neck_compile_params cp = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
    snprintf(label, sizeof label, "%s: compile", what);
    if (check_ok(sam3_neck_compile(h, &cp), label)) {
      double **refs = load_refs(f->dir, stem, &f->meta);
      snprintf(run_label, sizeof run_label, "%s: run", what);
      run_compare(h, &f->meta, f->input, f->input_count, refs, 0xF, SAM3_NECK_BOUND_STRICT, run_label, what);
      free_refs(refs);
    }
  }
  sam3_neck_free(h);
  free(p);
}

void test_variants(const fixture_t *f) {
  /* Safetensors files: dtypes, prefixes, kinds, Transformers names. */
  static const struct {
    const char *file;
    int with_params; /* 0: load parameters NULL (kind and prefix are then the defaults) */
    sam3_neck_kind kind;
    const char *prefix; /* NULL: the default search */
    const char *stem;
    const char *what;
  } variants[] = {
      {"tiny_f16.safetensors", 0, SAM3_NECK_KIND_SAM3, NULL, "ref_f16_level", "F16 file"},
      {"tiny_bf16.safetensors", 0, SAM3_NECK_KIND_SAM3, NULL, "ref_bf16_level", "BF16 file"},
      {"tiny.safetensors", 1, SAM3_NECK_KIND_SAM3, "detector.backbone.vision_backbone.", "ref_level",
       "explicit prefix detector.backbone.vision_backbone."},
      {"noprefix.safetensors", 0, SAM3_NECK_KIND_SAM3, NULL, "ref_level", "no prefix, default search"},
      {"noprefix.safetensors", 1, SAM3_NECK_KIND_SAM3, "", "ref_level", "no prefix, prefix \"\""},
      {"short_prefix.safetensors", 0, SAM3_NECK_KIND_SAM3, NULL, "ref_level",
       "prefix vision_backbone., default search"},
      {"custom_prefix.safetensors", 1, SAM3_NECK_KIND_SAM3, "model.backbone.", "ref_level",
       "custom prefix model.backbone."},
      {"tiny.safetensors", 1, SAM3_NECK_KIND_SAM2, NULL, "ref_sam2_level", "kind SAM2 in a file with both necks"},
      {"sam2_only.safetensors", 1, SAM3_NECK_KIND_SAM2, NULL, "ref_sam2_level",
       "kind SAM2, file with only sam2_convs under backbone.vision_backbone."},
      {"tiny.safetensors", 1, SAM3_NECK_KIND_SAM2, "detector.backbone.vision_backbone.", "ref_sam2_level",
       "kind SAM2 with explicit prefix"},
      {"tiny.safetensors", 1, SAM3_NECK_KIND_SAM3, NULL, "ref_level", "kind SAM3 (explicit) in a file with both necks"},
      {"hf_neck.safetensors", 1, SAM3_NECK_KIND_SAM3, "detector_model.vision_encoder.neck.", "ref_pt_f32_level",
       "Transformers names, explicit prefix"},
  };
  /* Checkpoints written by real PyTorch: zip archives, Transformers names, shards. */
  static const struct {
    const char *file;
    sam3_neck_kind kind;
    const char *stem;
  } real[] = {
      {"torch_plain_f32.pt", SAM3_NECK_KIND_SAM3, "ref_pt_f32_level"},
      {"torch_plain_f32.pt", SAM3_NECK_KIND_SAM2, "ref_pt_sam2_f32_level"},
      {"torch_model_bf16.pt", SAM3_NECK_KIND_SAM3, "ref_pt_bf16_level"},
      {"torch_model_bf16.pt", SAM3_NECK_KIND_SAM2, "ref_pt_sam2_bf16_level"},
      {"hf_neck.safetensors", SAM3_NECK_KIND_SAM3, "ref_pt_f32_level"},
      {"hf_neck.safetensors", SAM3_NECK_KIND_SAM2, "ref_pt_sam2_f32_level"},
      {"sharded", SAM3_NECK_KIND_SAM3, "ref_pt_f32_level"},
      {"sharded/model.safetensors.index.json", SAM3_NECK_KIND_SAM2, "ref_pt_sam2_f32_level"},
  };
  size_t k;
  for (k = 0; k < sizeof variants / sizeof variants[0]; k++) {
    sam3_neck_load_params lp = sam3_neck_load_default_params();
    lp.kind = variants[k].kind;
    lp.prefix = variants[k].prefix;
    check_variant(f, variants[k].file, variants[k].with_params ? &lp : NULL, variants[k].stem, variants[k].what);
  }
  for (k = 0; k < sizeof real / sizeof real[0]; k++) {
    sam3_neck_load_params lp = sam3_neck_load_default_params();
    char what[160];
    lp.kind = real[k].kind;
    snprintf(what, sizeof what, "real-PyTorch fixture %s, kind %s", real[k].file,
             real[k].kind == SAM3_NECK_KIND_SAM3 ? "SAM3" : "SAM2");
    check_variant(f, real[k].file, &lp, real[k].stem, what);
  }
  {
    /* A PyTorch archive from memory gives the same neck as from the file. */
    size_t size = 0;
    char *p = join_path(f->dir, "torch_model_bf16.pt");
    unsigned char *bytes = read_all(p, &size);
    sam3_neck *h = NULL;
    if (check(bytes != NULL, "read torch_model_bf16.pt") &&
        check_ok(sam3_neck_load_memory(bytes, size, NULL, &h), "load_memory(torch_model_bf16.pt)")) {
      sam3_neck_compile_params cp = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
      if (check_ok(sam3_neck_compile(h, &cp), "compile (PyTorch archive from memory)")) {
        double **refs = load_refs(f->dir, "ref_pt_bf16_level", &f->meta);
        run_compare(h, &f->meta, f->input, f->input_count, refs, 0xF, SAM3_NECK_BOUND_STRICT,
                    "run (PyTorch archive from memory)", "PyTorch archive from memory");
        free_refs(refs);
      }
    }
    sam3_neck_free(h);
    free(bytes);
    free(p);
  }
}
