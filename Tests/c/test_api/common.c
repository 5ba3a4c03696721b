/*
 * common.c — the C API test's shared helpers (declared in test_api.h): check bookkeeping, files and
 * fixtures, shapes, references and comparisons, refused loads.
 */
#include "test_api.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Check bookkeeping
 * ------------------------------------------------------------------------------------------- */

static int g_passed = 0;
static int g_failed = 0;

int check(int ok, const char *fmt, ...) {
  va_list ap;
  printf("%s ", ok ? "PASS" : "FAIL");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  if (ok) {
    g_passed++;
  } else {
    g_failed++;
  }
  return ok;
}

int checks_summary(void) {
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed > 0 ? 1 : 0;
}

const char *status_name(sam3_neck_status s) {
  switch (s) {
  case SAM3_NECK_OK: return "OK";
  case SAM3_NECK_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
  case SAM3_NECK_ERR_IO: return "IO";
  case SAM3_NECK_ERR_FORMAT: return "FORMAT";
  case SAM3_NECK_ERR_MISSING_TENSOR: return "MISSING_TENSOR";
  case SAM3_NECK_ERR_SHAPE: return "SHAPE";
  case SAM3_NECK_ERR_DTYPE: return "DTYPE";
  case SAM3_NECK_ERR_NOT_COMPILED: return "NOT_COMPILED";
  case SAM3_NECK_ERR_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
  case SAM3_NECK_ERR_INTERNAL: return "INTERNAL";
  }
  return "?";
}

int check_ok(sam3_neck_status got, const char *what) {
  if (got == SAM3_NECK_OK) {
    return check(1, "%s -> OK", what);
  }
  return check(0, "%s -> expected OK, got %s (%d): \"%s\"", what, status_name(got), (int)got, sam3_neck_last_error());
}

int check_err_any(sam3_neck_status got, sam3_neck_status want, sam3_neck_status also, const char *needle,
                  const char *what) {
  const char *msg = sam3_neck_last_error();
  int ok_msg = (msg != NULL && msg[0] != '\0');
  int ok_needle = (needle == NULL || (msg != NULL && strstr(msg, needle) != NULL));
  if (got == also) {
    want = also;
  }
  if (got == want && ok_msg && ok_needle) {
    return check(1, "%s -> %s, last_error \"%s\"", what, status_name(want), msg);
  }
  if (got != want) {
    return check(0, "%s -> expected %s, got %s (%d); last_error \"%s\"", what, status_name(want), status_name(got),
                 (int)got, msg ? msg : "(NULL)");
  }
  if (!ok_msg) {
    return check(0, "%s -> %s but last_error is empty", what, status_name(want));
  }
  return check(0, "%s -> %s but last_error \"%s\" does not contain \"%s\"", what, status_name(want), msg, needle);
}

int check_err_msg(sam3_neck_status got, sam3_neck_status want, const char *needle, const char *what) {
  return check_err_any(got, want, want, needle, what);
}

int check_err(sam3_neck_status got, sam3_neck_status want, const char *what) {
  return check_err_any(got, want, want, NULL, what);
}

int check_err2(sam3_neck_status got, sam3_neck_status want1, sam3_neck_status want2, const char *what) {
  return check_err_any(got, want1, want2, NULL, what);
}

void set_enum_raw(void *field, int value) { memcpy(field, &value, sizeof value); }

/* ---------------------------------------------------------------------------------------------
 * Files and fixtures
 * ------------------------------------------------------------------------------------------- */

char *join_path(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = (char *)malloc(n);
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

unsigned char *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  size_t cap = 0, len = 0;
  if (f == NULL) {
    return NULL;
  }
  for (;;) {
    size_t got;
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 65536;
      unsigned char *nb = (unsigned char *)realloc(buf, ncap);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
      cap = ncap;
    }
    got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      break;
    }
  }
  if (ferror(f)) {
    free(buf);
    fclose(f);
    return NULL;
  }
  fclose(f);
  *size = len;
  return buf;
}

void *read_values(const char *path, size_t count, size_t elem_size) {
  size_t size = 0;
  unsigned char *bytes = read_all(path, &size);
  if (bytes == NULL) {
    return NULL;
  }
  if (size != count * elem_size) {
    fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, size, count * elem_size);
    free(bytes);
    return NULL;
  }
  {
    /* an exact-size copy: read_all's buffer is larger (it doubles as it reads) */
    void *out = malloc(size ? size : 1);
    if (out != NULL) {
      memcpy(out, bytes, size);
    }
    free(bytes);
    return out;
  }
}

int host_is_little_endian(void) {
  uint32_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

int read_meta(const char *path, meta_t *m) {
  /* each key: an int field, or a string field (exactly one of the two is set) */
  const struct {
    const char *key;
    int *number;
    char *text;
  } keys[] = {
      {"trunk_dim", &m->trunk_dim, NULL},
      {"d_model", &m->d_model, NULL},
      {"batch", &m->batch, NULL},
      {"height", &m->height, NULL},
      {"width", &m->width, NULL},
      {"missing_tensor_name", NULL, m->missing_tensor_name},
      {"bad_shape_tensor_name", NULL, m->bad_shape_tensor_name},
      {"dtype_tensor_name", NULL, m->dtype_tensor_name},
  };
  const size_t nkeys = sizeof keys / sizeof keys[0];
  FILE *f = fopen(path, "r");
  char line[512];
  unsigned seen = 0;
  memset(m, 0, sizeof *m);
  if (f == NULL) {
    return 0;
  }
  while (fgets(line, sizeof line, f) != NULL) {
    char key[128], val[256];
    size_t k;
    if (sscanf(line, "%127s %255s", key, val) != 2) {
      continue;
    }
    for (k = 0; k < nkeys; k++) {
      if (strcmp(key, keys[k].key) != 0) {
        continue;
      }
      if (keys[k].number != NULL) {
        *keys[k].number = atoi(val);
      } else {
        memcpy(keys[k].text, val, sizeof val); /* the fields are as large as val */
      }
      seen |= 1u << k;
    }
  }
  fclose(f);
  return seen == (1u << nkeys) - 1;
}

/* ---------------------------------------------------------------------------------------------
 * Shapes, references, comparisons
 * ------------------------------------------------------------------------------------------- */

void level_hw(int level, int h, int w, int *lh, int *lw) {
  switch (level) {
  case 0:
    *lh = 4 * h;
    *lw = 4 * w;
    break;
  case 1:
    *lh = 2 * h;
    *lw = 2 * w;
    break;
  case 2:
    *lh = h;
    *lw = w;
    break;
  default:
    *lh = h / 2;
    *lw = w / 2;
    break;
  }
}

size_t level_count(const meta_t *m, int level) {
  int lh, lw;
  level_hw(level, m->height, m->width, &lh, &lw);
  return (size_t)m->batch * (size_t)m->d_model * (size_t)lh * (size_t)lw;
}

double max_abs_err(const float *out_f, const double *out_d, const double *ref, size_t n) {
  double maxd = 0.0;
  size_t i;
  for (i = 0; i < n; i++) {
    double out = out_f != NULL ? (double)out_f[i] : out_d[i];
    double d = fabs(out - ref[i]);
    if (!(d <= HUGE_VAL) || d != d) {
      return HUGE_VAL;
    }
    if (d > maxd) {
      maxd = d;
    }
  }
  return maxd;
}

double norm_err(const float *out, const double *ref, size_t n) {
  double maxd = max_abs_err(out, NULL, ref, n), maxr = 0.0;
  size_t i;
  if (maxd == HUGE_VAL) {
    return HUGE_VAL;
  }
  for (i = 0; i < n; i++) {
    if (fabs(ref[i]) > maxr) {
      maxr = fabs(ref[i]);
    }
  }
  if (maxr == 0.0) {
    return maxd == 0.0 ? 0.0 : HUGE_VAL;
  }
  return maxd / maxr;
}

void pos_formula(int d, int h, int w, double *out) {
  const double two_pi = 6.283185307179586476925286766559;
  const double eps = 1e-6;
  const double temperature = 10000.0;
  int feats = d / 2;
  int c, r, col;
  for (c = 0; c < d; c++) {
    int k = c % feats;
    int is_x = c >= feats;
    double dim_t = pow(temperature, (double)(2 * (k / 2)) / (double)feats);
    for (r = 0; r < h; r++) {
      for (col = 0; col < w; col++) {
        double v =
            is_x ? ((double)(col + 1) / ((double)w + eps) * two_pi) : ((double)(r + 1) / ((double)h + eps) * two_pi);
        double a = v / dim_t;
        out[((size_t)c * (size_t)h + (size_t)r) * (size_t)w + (size_t)col] = (k % 2 == 0) ? sin(a) : cos(a);
      }
    }
  }
}

float *to_nhwc(const float *x, int b, int c, int h, int w) {
  size_t n = (size_t)b * (size_t)c * (size_t)h * (size_t)w;
  float *y = (float *)malloc(n * sizeof(float));
  int ib, ic, ih, iw;
  if (y == NULL) {
    return NULL;
  }
  for (ib = 0; ib < b; ib++) {
    for (ic = 0; ic < c; ic++) {
      for (ih = 0; ih < h; ih++) {
        for (iw = 0; iw < w; iw++) {
          size_t src = (((size_t)ib * c + ic) * h + ih) * w + iw;
          size_t dst = (((size_t)ib * h + ih) * w + iw) * c + ic;
          y[dst] = x[src];
        }
      }
    }
  }
  return y;
}

void outs_alloc(outs_t *o, const meta_t *m, unsigned mask) {
  int i;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    if (mask & (1u << i)) {
      o->count[i] = level_count(m, i);
      o->ptr[i] = (float *)calloc(o->count[i] ? o->count[i] : 1, sizeof(float));
    } else {
      o->count[i] = 0;
      o->ptr[i] = NULL;
    }
  }
}

void outs_free(outs_t *o) {
  int i;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    free(o->ptr[i]);
    o->ptr[i] = NULL;
    o->count[i] = 0;
  }
}

sam3_neck_status run_outs(sam3_neck *neck, const float *in, size_t n, const outs_t *o) {
  return sam3_neck_run(neck, in, n, o->ptr, o->count);
}

int outs_equal(const outs_t *a, const outs_t *b) {
  int i;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    if (a->count[i] > 0 && memcmp(a->ptr[i], b->ptr[i], a->count[i] * sizeof(float)) != 0) {
      return 0;
    }
  }
  return 1;
}

int outs_within(const outs_t *o, double *const refs[SAM3_NECK_NUM_LEVELS], double tol) {
  int i;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    if (!(norm_err(o->ptr[i], refs[i], o->count[i]) <= tol)) {
      return 0;
    }
  }
  return 1;
}

void compare_refs(const outs_t *o, double *const refs[SAM3_NECK_NUM_LEVELS], unsigned mask, double tol,
                  const char *what) {
  int i;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    double e;
    if (!(mask & (1u << i))) {
      continue;
    }
    if (refs[i] == NULL || o->ptr[i] == NULL) {
      check(0, "%s: level %d: reference or output missing", what, i);
      continue;
    }
    e = norm_err(o->ptr[i], refs[i], o->count[i]);
    check(e <= tol, "%s: level %d normalised max error %.3g <= %.0e", what, i, e, tol);
  }
}

int run_compare(sam3_neck *neck, const meta_t *m, const float *in, size_t n, double *const refs[SAM3_NECK_NUM_LEVELS],
                unsigned mask, double tol, const char *run_what, const char *what) {
  outs_t o;
  int ran;
  outs_alloc(&o, m, mask);
  ran = check_ok(run_outs(neck, in, n, &o), run_what);
  if (ran) {
    compare_refs(&o, refs, mask, tol, what);
  }
  outs_free(&o);
  return ran;
}

double **load_refs(const char *dir, const char *stem, const meta_t *m) {
  double **refs = (double **)calloc(SAM3_NECK_NUM_LEVELS, sizeof(double *));
  int i;
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    char name[128];
    char *p;
    snprintf(name, sizeof name, "%s%d.f64", stem, i);
    p = join_path(dir, name);
    refs[i] = (double *)read_values(p, level_count(m, i), sizeof(double));
    if (refs[i] == NULL) {
      check(0, "read fixture %s", p);
    }
    free(p);
  }
  return refs;
}

void free_refs(double **refs) {
  int i;
  if (refs == NULL) {
    return;
  }
  for (i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    free(refs[i]);
  }
  free(refs);
}

sam3_neck_compile_params fixture_params(const meta_t *m, sam3_neck_layout layout, unsigned mask) {
  sam3_neck_compile_params p = sam3_neck_compile_default_params();
  p.batch = m->batch;
  p.height = m->height;
  p.width = m->width;
  p.layout = layout;
  p.levels_mask = mask;
  p.threads = 2;
  p.precision = SAM3_NECK_PRECISION_STRICT;
  return p;
}

/* ---------------------------------------------------------------------------------------------
 * Refused loads
 * ------------------------------------------------------------------------------------------- */

static int g_sentinel_object;
#define SENTINEL ((sam3_neck *)(void *)&g_sentinel_object) /* any non-NULL value */

static void check_refused(sam3_neck_status st, sam3_neck *h, sam3_neck_status want, sam3_neck_status also,
                          const char *needle, const char *what, const char *out_what) {
  check_err_any(st, want, also, needle, what);
  if (out_what != NULL) {
    check(h == NULL, "%s", out_what);
  } else {
    check(h == NULL, "%s sets *out = NULL", what);
  }
  if (h != SENTINEL) {
    sam3_neck_free(h); /* a load that should have failed but did not */
  }
}

void expect_load_file_error(const char *path, const sam3_neck_load_params *lp, sam3_neck_status want,
                            sam3_neck_status also, const char *needle, const char *what, const char *out_what) {
  sam3_neck *h = SENTINEL;
  sam3_neck_status st = sam3_neck_load_file(path, lp, &h);
  check_refused(st, h, want, also, needle, what, out_what);
}

void expect_load_memory_error(const void *data, size_t size, const sam3_neck_load_params *lp, sam3_neck_status want,
                              sam3_neck_status also, const char *needle, const char *what, const char *out_what) {
  sam3_neck *h = SENTINEL;
  sam3_neck_status st = sam3_neck_load_memory(data, size, lp, &h);
  check_refused(st, h, want, also, needle, what, out_what);
}
