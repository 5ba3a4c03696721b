/*
 * compile.c — a handle before compile, its config, compile and the queries of a compiled handle
 * (parameters, level shapes, input count, workspace, kernel name, position encodings against the spec's formula
 * and the Python reference's), their argument errors, compile's errors, compile(NULL)'s defaults.
 */
#include "test_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The compile parameters that describe the plan; `with_threads`: the thread count too. */
static int same_compile_params(const sam3_neck_compile_params *a, const sam3_neck_compile_params *b, int with_threads) {
  return a->batch == b->batch && a->height == b->height && a->width == b->width && a->layout == b->layout &&
         a->levels_mask == b->levels_mask && a->precision == b->precision &&
         (!with_threads || a->threads == b->threads);
}

void test_before_compile(sam3_neck *h, const fixture_t *f) {
  sam3_neck_compile_params cp;
  int64_t shape[4];
  size_t n = 0;
  float pe[16];
  outs_t o;
  outs_alloc(&o, &f->meta, 0xF);
  check_err(run_outs(h, f->input, f->input_count, &o), SAM3_NECK_ERR_NOT_COMPILED, "run before compile");
  check_err(sam3_neck_get_compile_params(h, &cp), SAM3_NECK_ERR_NOT_COMPILED, "get_compile_params before compile");
  check_err(sam3_neck_level_shape(h, 0, shape), SAM3_NECK_ERR_NOT_COMPILED, "level_shape before compile");
  check_err(sam3_neck_input_count(h, &n), SAM3_NECK_ERR_NOT_COMPILED, "input_count before compile");
  check_err(sam3_neck_workspace_size(h, &n), SAM3_NECK_ERR_NOT_COMPILED, "workspace_size before compile");
  check_err(sam3_neck_position_encoding(h, 0, pe, 16), SAM3_NECK_ERR_NOT_COMPILED, "position_encoding before compile");
  {
    const char *name = "untouched";
    check_err(sam3_neck_kernel_name(h, &name), SAM3_NECK_ERR_NOT_COMPILED, "kernel_name before compile");
    check(strcmp(name, "untouched") == 0, "kernel_name leaves *name unchanged on failure");
  }
  outs_free(&o);
}

void test_config(sam3_neck *h, const meta_t *m, const char *what) {
  sam3_neck_config c;
  char label[160];
  memset(&c, 0, sizeof c);
  snprintf(label, sizeof label, "%s: get_config", what);
  if (check_ok(sam3_neck_get_config(h, &c), label)) {
    check(c.trunk_dim == m->trunk_dim, "%s: config.trunk_dim %d == %d", what, (int)c.trunk_dim, m->trunk_dim);
    check(c.d_model == m->d_model, "%s: config.d_model %d == %d", what, (int)c.d_model, m->d_model);
    check(c.scales[0] == 4.0f && c.scales[1] == 2.0f && c.scales[2] == 1.0f && c.scales[3] == 0.5f,
          "%s: config.scales == {4, 2, 1, 0.5} (got {%g, %g, %g, %g})", what, (double)c.scales[0], (double)c.scales[1],
          (double)c.scales[2], (double)c.scales[3]);
  }
}

/* position_encoding(level) against the spec's formula in double; nothing written past d*h*w; one
 * float too few is SHAPE. */
static void check_position_encoding(sam3_neck *h, const meta_t *m, int level) {
  int lh, lw;
  size_t cnt, n;
  float *pe;
  double *ref;
  char label[96];
  level_hw(level, m->height, m->width, &lh, &lw);
  cnt = (size_t)m->d_model * lh * lw;
  pe = (float *)malloc((cnt + 4) * sizeof(float));
  ref = (double *)malloc(cnt * sizeof(double));
  for (n = 0; n < cnt + 4; n++) {
    pe[n] = -12345.0f;
  }
  pos_formula(m->d_model, lh, lw, ref);
  snprintf(label, sizeof label, "position_encoding(%d) into %zu + 4 floats", level, cnt);
  if (check_ok(sam3_neck_position_encoding(h, level, pe, cnt + 4), label)) {
    double maxerr = max_abs_err(pe, NULL, ref, cnt);
    check(maxerr <= 1e-5, "position_encoding(%d) vs spec formula (double): max abs err %.3g <= 1e-5", level, maxerr);
    check(pe[cnt] == -12345.0f && pe[cnt + 3] == -12345.0f, "position_encoding(%d) writes nothing past d*h*w", level);
  }
  snprintf(label, sizeof label, "position_encoding(%d, count d*h*w - 1)", level);
  check_err(sam3_neck_position_encoding(h, level, pe, cnt - 1), SAM3_NECK_ERR_SHAPE, label);
  free(pe);
  free(ref);
}

void test_queries(sam3_neck *h, const meta_t *m) {
  sam3_neck_compile_params cp = fixture_params(m, SAM3_NECK_LAYOUT_NCHW, 0xF);
  sam3_neck_compile_params back;
  size_t n = 0, ws = 0;
  int64_t shape[4];
  int i;

  if (!check_ok(sam3_neck_compile(h, &cp), "compile(fixture shape, NCHW, 0xF, 2 threads, STRICT)")) {
    return;
  }
  memset(&back, 0, sizeof back);
  if (check_ok(sam3_neck_get_compile_params(h, &back), "get_compile_params")) {
    check(same_compile_params(&back, &cp, 1),
          "get_compile_params round trip (got B=%d H=%d W=%d layout=%d mask=0x%x threads=%d "
          "precision=%d)",
          (int)back.batch, (int)back.height, (int)back.width, (int)back.layout, (unsigned)back.levels_mask,
          (int)back.threads, (int)back.precision);
  }
  /* every precision comes back as compiled (the handle ends compiled as `cp`, STRICT) */
  {
    static const sam3_neck_precision precisions[] = {SAM3_NECK_PRECISION_DEFAULT, SAM3_NECK_PRECISION_FAST,
                                                     SAM3_NECK_PRECISION_STRICT};
    size_t k;
    for (k = 0; k < sizeof precisions / sizeof precisions[0]; k++) {
      sam3_neck_compile_params q = cp;
      char label[96];
      q.precision = precisions[k];
      snprintf(label, sizeof label, "compile(precision %d)", (int)precisions[k]);
      memset(&back, 0, sizeof back);
      if (check_ok(sam3_neck_compile(h, &q), label) &&
          check_ok(sam3_neck_get_compile_params(h, &back), "get_compile_params")) {
        check(same_compile_params(&back, &q, 1) && back.precision == precisions[k],
              "get_compile_params returns precision %d as compiled (got %d)", (int)precisions[k], (int)back.precision);
      }
    }
  }
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    int lh, lw;
    char label[64];
    level_hw(i, m->height, m->width, &lh, &lw);
    memset(shape, 0, sizeof shape);
    snprintf(label, sizeof label, "level_shape(%d)", i);
    if (check_ok(sam3_neck_level_shape(h, i, shape), label)) {
      check(shape[0] == m->batch && shape[1] == m->d_model && shape[2] == lh && shape[3] == lw,
            "level_shape(%d) == [%d, %d, %d, %d] (got [%lld, %lld, %lld, %lld])", i, m->batch, m->d_model, lh, lw,
            (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    }
  }
  if (check_ok(sam3_neck_input_count(h, &n), "input_count")) {
    size_t want = (size_t)m->batch * m->trunk_dim * m->height * m->width;
    check(n == want, "input_count == B*C*H*W = %zu (got %zu)", want, n);
  }
  if (check_ok(sam3_neck_workspace_size(h, &ws), "workspace_size")) {
    check(ws > 0, "workspace_size > 0 (%zu bytes)", ws);
  }
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    check_position_encoding(h, m, i);
  }
}

/* Cross-check of the test's own formula against the Python reference's encodings. */
void test_pos_vs_python(const fixture_t *f) {
  const meta_t *m = &f->meta;
  int i;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    int lh, lw;
    size_t cnt;
    double *mine, *py;
    char name[64];
    char *p;
    level_hw(i, m->height, m->width, &lh, &lw);
    cnt = (size_t)m->d_model * lh * lw;
    snprintf(name, sizeof name, "pos_level%d.f64", i);
    p = join_path(f->dir, name);
    py = (double *)read_values(p, cnt, sizeof(double));
    mine = (double *)malloc(cnt * sizeof(double));
    if (check(py != NULL, "read fixture %s", name)) {
      double maxerr;
      pos_formula(m->d_model, lh, lw, mine);
      maxerr = max_abs_err(NULL, mine, py, cnt);
      check(maxerr <= 1e-5, "test's formula vs Python reference pos level %d: max abs err %.3g", i, maxerr);
    }
    free(mine);
    free(py);
    free(p);
  }
}

void test_query_errors(sam3_neck *h) {
  int64_t shape[4];
  size_t n;
  sam3_neck_config c;
  sam3_neck_compile_params cp;
  float pe[4];
  check_err(sam3_neck_get_config(NULL, &c), SAM3_NECK_ERR_INVALID_ARGUMENT, "get_config(NULL, out)");
  check_err(sam3_neck_get_config(h, NULL), SAM3_NECK_ERR_INVALID_ARGUMENT, "get_config(h, NULL)");
  check_err(sam3_neck_get_compile_params(NULL, &cp), SAM3_NECK_ERR_INVALID_ARGUMENT, "get_compile_params(NULL, out)");
  check_err(sam3_neck_get_compile_params(h, NULL), SAM3_NECK_ERR_INVALID_ARGUMENT, "get_compile_params(h, NULL)");
  check_err(sam3_neck_level_shape(NULL, 0, shape), SAM3_NECK_ERR_INVALID_ARGUMENT, "level_shape(NULL handle)");
  check_err(sam3_neck_level_shape(h, 0, NULL), SAM3_NECK_ERR_INVALID_ARGUMENT, "level_shape(shape NULL)");
  check_err(sam3_neck_level_shape(h, -1, shape), SAM3_NECK_ERR_INVALID_ARGUMENT, "level_shape(level -1)");
  check_err(sam3_neck_level_shape(h, 4, shape), SAM3_NECK_ERR_INVALID_ARGUMENT, "level_shape(level 4)");
  check_err(sam3_neck_input_count(NULL, &n), SAM3_NECK_ERR_INVALID_ARGUMENT, "input_count(NULL handle)");
  check_err(sam3_neck_input_count(h, NULL), SAM3_NECK_ERR_INVALID_ARGUMENT, "input_count(count NULL)");
  check_err(sam3_neck_workspace_size(NULL, &n), SAM3_NECK_ERR_INVALID_ARGUMENT, "workspace_size(NULL handle)");
  check_err(sam3_neck_workspace_size(h, NULL), SAM3_NECK_ERR_INVALID_ARGUMENT, "workspace_size(bytes NULL)");
  check_err(sam3_neck_position_encoding(NULL, 0, pe, 4), SAM3_NECK_ERR_INVALID_ARGUMENT,
            "position_encoding(NULL handle)");
  check_err(sam3_neck_position_encoding(h, 0, NULL, 1000000), SAM3_NECK_ERR_INVALID_ARGUMENT,
            "position_encoding(out NULL)");
  check_err(sam3_neck_position_encoding(h, -1, pe, 4), SAM3_NECK_ERR_INVALID_ARGUMENT, "position_encoding(level -1)");
  check_err(sam3_neck_position_encoding(h, 4, pe, 4), SAM3_NECK_ERR_INVALID_ARGUMENT, "position_encoding(level 4)");
}

void test_compile_errors(sam3_neck *h, const fixture_t *f) {
  sam3_neck_compile_params good = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
  sam3_neck_compile_params p;
  outs_t o;

  check_err(sam3_neck_compile(NULL, &good), SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(NULL handle)");

#define BAD_COMPILE(field_stmt, want, label)                                                                           \
  do {                                                                                                                 \
    p = good;                                                                                                          \
    field_stmt;                                                                                                        \
    check_err(sam3_neck_compile(h, &p), want, label);                                                                  \
  } while (0)

  BAD_COMPILE(p.batch = 0, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(batch 0)");
  BAD_COMPILE(p.batch = -1, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(batch -1)");
  BAD_COMPILE(p.height = -1, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(height -1)");
  BAD_COMPILE(p.height = 0, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(height 0)");
  BAD_COMPILE(p.width = 0, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(width 0)");
  BAD_COMPILE(p.width = -5, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(width -5)");
  BAD_COMPILE(set_enum_raw(&p.layout, 7), SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(layout 7)");
  BAD_COMPILE(set_enum_raw(&p.layout, -1), SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(layout -1)");
  BAD_COMPILE(p.levels_mask = 0, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(levels_mask 0)");
  BAD_COMPILE(p.levels_mask = 0x10, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(levels_mask 0x10)");
  BAD_COMPILE(p.levels_mask = 0x1F, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(levels_mask 0x1F)");
  BAD_COMPILE(p.levels_mask = 0x80000000u, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(levels_mask 0x80000000)");
  BAD_COMPILE(p.threads = -1, SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(threads -1)");
  /* an unknown precision: the message names the three accepted values and the one given */
  {
    static const int bad_precisions[] = {3, 9, -1, INT32_MAX, INT32_MIN};
    size_t k;
    for (k = 0; k < sizeof bad_precisions / sizeof bad_precisions[0]; k++) {
      char want[200], label[64];
      snprintf(want, sizeof want,
               "precision must be SAM3_NECK_PRECISION_DEFAULT (%d), SAM3_NECK_PRECISION_STRICT (%d) or "
               "SAM3_NECK_PRECISION_FAST (%d), got %d",
               (int)SAM3_NECK_PRECISION_DEFAULT, (int)SAM3_NECK_PRECISION_STRICT, (int)SAM3_NECK_PRECISION_FAST,
               bad_precisions[k]);
      snprintf(label, sizeof label, "compile(precision %d)", bad_precisions[k]);
      p = good;
      set_enum_raw(&p.precision, bad_precisions[k]);
      check_err_msg(sam3_neck_compile(h, &p), SAM3_NECK_ERR_INVALID_ARGUMENT, want, label);
    }
  }
  BAD_COMPILE((p.height = 1, p.levels_mask = 0xF), SAM3_NECK_ERR_SHAPE, "compile(H 1 with level 3)");
  BAD_COMPILE((p.width = 1, p.levels_mask = 0x8), SAM3_NECK_ERR_SHAPE, "compile(W 1 with level 3 only)");
  /* the header documents no upper bound of H and W: a library may cap them (INVALID_ARGUMENT) or
   * find the plan too large (OUT_OF_MEMORY) */
  p = good;
  p.batch = 1;
  p.height = 100000;
  p.width = 100000;
  check_err2(sam3_neck_compile(h, &p), SAM3_NECK_ERR_OUT_OF_MEMORY, SAM3_NECK_ERR_INVALID_ARGUMENT,
             "compile(1 x 100000 x 100000) -> OUT_OF_MEMORY or INVALID_ARGUMENT");
  /* 32768 x 32768: level 0 alone is 131072 x 131072 x d floats (about 550 GB for d = 8) */
  BAD_COMPILE((p.batch = 1, p.height = 32768, p.width = 32768), SAM3_NECK_ERR_OUT_OF_MEMORY,
              "compile(1 x 32768 x 32768: hundreds of GB)");
  p = good;
  p.batch = INT32_MAX;
  p.height = INT32_MAX;
  p.width = INT32_MAX;
  check_err2(sam3_neck_compile(h, &p), SAM3_NECK_ERR_OUT_OF_MEMORY, SAM3_NECK_ERR_INVALID_ARGUMENT,
             "compile(INT32_MAX^3: sizes overflow) -> OUT_OF_MEMORY or INVALID_ARGUMENT");
#undef BAD_COMPILE

  /* a failed compile leaves the handle uncompiled */
  check_ok(sam3_neck_compile(h, &good), "compile(good) again");
  p = good;
  p.batch = 0;
  check_err(sam3_neck_compile(h, &p), SAM3_NECK_ERR_INVALID_ARGUMENT, "compile(batch 0) after a good one");
  outs_alloc(&o, &f->meta, 0xF);
  check_err(run_outs(h, f->input, f->input_count, &o), SAM3_NECK_ERR_NOT_COMPILED,
            "run after a failed compile (handle left uncompiled)");
  {
    size_t n;
    check_err(sam3_neck_input_count(h, &n), SAM3_NECK_ERR_NOT_COMPILED, "input_count after a failed compile");
  }
  outs_free(&o);

  /* H = W = 1 without level 3 is fine */
  p = good;
  p.height = 1;
  p.width = 1;
  p.levels_mask = 0x7;
  check_ok(sam3_neck_compile(h, &p), "compile(1 x 1 grid, levels 0..2)");
  p.height = 2;
  p.width = 3;
  p.levels_mask = 0x8;
  check_ok(sam3_neck_compile(h, &p), "compile(2 x 3 grid, level 3 only)");
}

/* default compile parameters (NULL): batch 1, 72 x 72, all levels, on a fresh handle */
void test_compile_defaults(const fixture_t *f) {
  const meta_t *m = &f->meta;
  sam3_neck *hd = NULL;
  char *p = join_path(f->dir, "tiny.safetensors");
  sam3_neck_status st = sam3_neck_load_file(p, NULL, &hd);
  free(p);
  if (check_ok(st, "load_file for the default-compile test") &&
      check_ok(sam3_neck_compile(hd, NULL), "compile(params NULL = defaults)")) {
    sam3_neck_compile_params back, def = sam3_neck_compile_default_params();
    int64_t shape[4];
    size_t n = 0;
    if (check_ok(sam3_neck_get_compile_params(hd, &back), "get_compile_params after compile(NULL)")) {
      check(same_compile_params(&back, &def, 0),
            "compile(NULL) used the defaults (B=%d H=%d W=%d layout=%d mask=0x%x precision=%d)", (int)back.batch,
            (int)back.height, (int)back.width, (int)back.layout, (unsigned)back.levels_mask, (int)back.precision);
      check(back.threads == 0, "get_compile_params after compile(NULL): threads as passed, 0 (got %d)",
            (int)back.threads);
    }
    if (check_ok(sam3_neck_level_shape(hd, 0, shape), "defaults: level_shape(0)")) {
      check(shape[0] == 1 && shape[1] == m->d_model && shape[2] == 288 && shape[3] == 288,
            "defaults: level 0 is [1, %d, 288, 288] (got [%lld, %lld, %lld, %lld])", m->d_model, (long long)shape[0],
            (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    }
    if (check_ok(sam3_neck_level_shape(hd, 3, shape), "defaults: level_shape(3)")) {
      check(shape[2] == 36 && shape[3] == 36, "defaults: level 3 is 36 x 36");
    }
    if (check_ok(sam3_neck_input_count(hd, &n), "defaults: input_count")) {
      check(n == (size_t)m->trunk_dim * 72 * 72, "defaults: input_count == C*72*72 (%zu)", n);
    }
  }
  sam3_neck_free(hd);
}

/* kernel_name (0.5.0): one of the documented names, the precision's rule, SAM3NECK_SGEMM_KERNEL
 * named (setenv here: the library reads it at every compile), static storage. Leaves h compiled as
 * test_queries did. */
static int is_one_of(const char *name, const char *const *names) {
  for (; *names != NULL; names++)
    if (strcmp(name, *names) == 0) return 1;
  return 0;
}

static const char *kernel_of(sam3_neck *h, sam3_neck_compile_params cp, sam3_neck_precision precision,
                             const char *what) {
  const char *name = NULL;
  cp.precision = precision;
  if (!check_ok(sam3_neck_compile(h, &cp), what)) return "";
  if (!check_ok(sam3_neck_kernel_name(h, &name), what) || !check(name != NULL, "%s: name set", what)) return "";
  return name;
}

void test_kernel_name(sam3_neck *h, const meta_t *m) {
  static const char *const f32[] = {"avx512", "avx2", "generic", "openblas", NULL};
  static const char *const documented[] = {"avx512",     "avx2",     "generic",     "openblas",
                                           "amx_bf16x3", "amx_bf16", "avx512_bf16", NULL};
  static const char *const bf16[] = {"amx_bf16", "avx512_bf16", NULL};
  sam3_neck_compile_params cp = fixture_params(m, SAM3_NECK_LAYOUT_NCHW, 0xF);
  const char *name = NULL, *def, *strict, *fast, *saved = getenv("SAM3NECK_SGEMM_KERNEL");
  char saved_copy[64] = "";

  if (saved != NULL) snprintf(saved_copy, sizeof saved_copy, "%s", saved);
  check_err(sam3_neck_kernel_name(NULL, &name), SAM3_NECK_ERR_INVALID_ARGUMENT, "kernel_name(NULL handle)");

  unsetenv("SAM3NECK_SGEMM_KERNEL");
  def = kernel_of(h, cp, SAM3_NECK_PRECISION_DEFAULT, "kernel_name: default precision");
  check_err(sam3_neck_kernel_name(h, NULL), SAM3_NECK_ERR_INVALID_ARGUMENT, "kernel_name(name NULL)");
  strict = kernel_of(h, cp, SAM3_NECK_PRECISION_STRICT, "kernel_name: strict precision");
  fast = kernel_of(h, cp, SAM3_NECK_PRECISION_FAST, "kernel_name: fast precision");
  check(is_one_of(def, documented) && !is_one_of(def, bf16),
        "kernel_name: the default precision's '%s' is a float32 or bf16x3 code", def);
  check(is_one_of(strict, f32), "kernel_name: strict precision runs float32 products ('%s')", strict);
  check(strcmp(def, "amx_bf16x3") == 0 || strcmp(def, strict) == 0,
        "kernel_name: default '%s' is strict's '%s' unless on AMX", def, strict);
  check(is_one_of(fast, bf16) || strcmp(fast, def) == 0,
        "kernel_name: fast '%s' is a bfloat16 code, or the default's '%s' (no bfloat16 products here)", fast, def);
  /* Static storage: still readable, and unchanged, after the plans that gave them are replaced. */
  check(is_one_of(def, documented) && is_one_of(strict, documented),
        "kernel_name: earlier names stay valid after recompiling");

  /* SAM3NECK_SGEMM_KERNEL=generic (every CPU runs it): every float32 product, no bf16x3. */
  setenv("SAM3NECK_SGEMM_KERNEL", "generic", 1);
  name = kernel_of(h, cp, SAM3_NECK_PRECISION_DEFAULT, "kernel_name: SAM3NECK_SGEMM_KERNEL=generic");
  check(strcmp(name, "generic") == 0, "kernel_name: SAM3NECK_SGEMM_KERNEL=generic gives 'generic' (got '%s')", name);
  if (saved != NULL)
    setenv("SAM3NECK_SGEMM_KERNEL", saved_copy, 1);
  else
    unsetenv("SAM3NECK_SGEMM_KERNEL");

  check_ok(sam3_neck_compile(h, &cp), "kernel_name: compile as test_queries did");
}
