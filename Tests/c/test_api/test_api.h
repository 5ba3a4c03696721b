/*
 * test_api.h — what the files of the C API test share (Tests/c/test_api/[a-z]*.c, linked into one
 * program that tests the C ABI of libsam3neck through include/sam3_neck.h only).
 *
 * Every file is valid C99 and C++17: the same sources are compiled both ways, to prove the header
 * works in both (Tests/c/run.sh):
 *
 *   cc  -std=c99   -Wall -Wextra -Werror -pedantic -I include Tests/c/test_api/[a-z]*.c \
 *       -L .build/release -lsam3neck -Wl,-rpath,$PWD/.build/release -lm -pthread
 *   c++ -std=c++17 -Wall -Wextra -Werror -pedantic -x c++ -I include Tests/c/test_api/[a-z]*.c -x none ...
 *
 * Usage: test_api FIXTURE_DIR   (fixtures written by Tests/c/make_fixtures.py)
 *
 * Prints one line per check and at the end exactly "N passed, M failed"; exits 1 if M > 0.
 *
 *   common.c    check bookkeeping, files and fixtures, shapes, references and comparisons
 *   main.c      reads the fixtures, loads the shared handles, runs the tests below in order
 *   versions.c  versions, status strings, default parameters
 *   load.c      load errors: bad arguments (SIZE_MAX), missing, malformed and hostile files; inspection
 *   compile.c   before compile, config, compile and its queries (shapes, position encodings), errors
 *   run.c       runs (layouts, precisions, threads, subsets, recompiles), run errors, checkpoint variants
 *   threads.c   last error per thread, concurrent runs, OpenBLAS's process-wide thread count and idle workers
 *   io.c        element types and output layouts (0.3.0), the experimental weight export
 *   memory.c    1,000 load/compile/run/free cycles with a flat heap
 */
#ifndef SAM3NECK_TEST_API_H
#define SAM3NECK_TEST_API_H

#if !defined(__cplusplus) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "sam3_neck.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Check bookkeeping (main thread only; worker threads record results that main checks later)
 * ------------------------------------------------------------------------------------------- */

/* Prints "PASS ..." or "FAIL ..." (printf format) and counts it; returns ok. */
int check(int ok, const char *fmt, ...);
/* Prints the closing "N passed, M failed"; returns the exit status (1 if any check failed). */
int checks_summary(void);

const char *status_name(sam3_neck_status s);
/* Checks a status that must be SAM3_NECK_OK (prints last_error otherwise). */
int check_ok(sam3_neck_status got, const char *what);
/* Checks a failing status: `want`, or `also` where the header leaves the choice open (pass `want`
 * twice otherwise); last_error non-empty and, if `needle` is not NULL, containing it. */
int check_err_any(sam3_neck_status got, sam3_neck_status want, sam3_neck_status also, const char *needle,
                  const char *what);
int check_err_msg(sam3_neck_status got, sam3_neck_status want, const char *needle, const char *what);
int check_err(sam3_neck_status got, sam3_neck_status want, const char *what);
int check_err2(sam3_neck_status got, sam3_neck_status want1, sam3_neck_status want2, const char *what);

/* Stores an arbitrary int into an enum-typed object, as a foreign caller (ctypes, another
 * language) could; keeps the C++ build free of out-of-range enum conversions. */
void set_enum_raw(void *field, int value);

/* ---------------------------------------------------------------------------------------------
 * Files and fixtures
 * ------------------------------------------------------------------------------------------- */

/* dir/name, malloc'd (exits on out of memory). */
char *join_path(const char *dir, const char *name);
/* Reads a whole file into a malloc'd buffer; NULL if it cannot be read. */
unsigned char *read_all(const char *path, size_t *size);
/* Reads a raw little-endian file of exactly `count` values of `elem_size` bytes each (float32,
 * float64: the host is checked to be little-endian); NULL if unreadable or of another size. */
void *read_values(const char *path, size_t count, size_t elem_size);
int host_is_little_endian(void);

/* meta.txt of the fixtures. */
typedef struct meta_t {
  int trunk_dim;
  int d_model;
  int batch;
  int height;
  int width;
  char missing_tensor_name[256];
  char bad_shape_tensor_name[256];
  char dtype_tensor_name[256];
} meta_t;

/* 1 if every key was present. */
int read_meta(const char *path, meta_t *m);

/* What main reads once and every test may use. */
typedef struct fixture_t {
  const char *dir;
  meta_t meta;
  const float *input;         /* input.f32, NCHW */
  size_t input_count;         /* B * trunk_dim * H * W */
  const unsigned char *bytes; /* tiny.safetensors */
  size_t size;
  double *const *refs; /* ref_level0..3.f64: the float64 reference of each level */
} fixture_t;

/* ---------------------------------------------------------------------------------------------
 * Shapes, references, comparisons
 * ------------------------------------------------------------------------------------------- */

void level_hw(int level, int h, int w, int *lh, int *lw);
size_t level_count(const meta_t *m, int level);
/* max |out - ref| over n values, `out` being `out_f` (floats) or, when that is NULL, `out_d`;
 * +inf if any difference is NaN or infinite. */
double max_abs_err(const float *out_f, const double *out_d, const double *ref, size_t n);
/* Normalised max error max|out - ref| / max|ref|; +inf on a NaN/inf output. */
double norm_err(const float *out, const double *ref, size_t n);
/* The position encoding of the spec for a [d, h, w] level, in double. */
void pos_formula(int d, int h, int w, double *out);
/* NCHW -> NHWC, malloc'd. */
float *to_nhwc(const float *x, int b, int c, int h, int w);

/* Output buffers for the four levels of one shape. */
typedef struct outs_t {
  float *ptr[SAM3_NECK_NUM_LEVELS];
  size_t count[SAM3_NECK_NUM_LEVELS];
} outs_t;

/* Zeroed buffers for the levels in `mask` (NULL and count 0 for the others). */
void outs_alloc(outs_t *o, const meta_t *m, unsigned mask);
void outs_free(outs_t *o);
sam3_neck_status run_outs(sam3_neck *neck, const float *in, size_t n, const outs_t *o);
/* 1 if every level of `a` equals `b`'s first a->count[i] floats bitwise. */
int outs_equal(const outs_t *a, const outs_t *b);
/* 1 if every level of `o` is within `tol` (normalised) of the reference. */
int outs_within(const outs_t *o, double *const refs[SAM3_NECK_NUM_LEVELS], double tol);
/* One check per level in `mask`: `o` within `tol` (normalised) of the float64 reference. */
void compare_refs(const outs_t *o, double *const refs[SAM3_NECK_NUM_LEVELS], unsigned mask, double tol,
                  const char *what);
/* Runs `neck` into fresh buffers of `m`'s shape (levels `mask`), checks the run is OK (`run_what`)
 * and compares with the references (`what`, tolerance `tol`); returns 1 if the run was OK. */
int run_compare(sam3_neck *neck, const meta_t *m, const float *in, size_t n, double *const refs[SAM3_NECK_NUM_LEVELS],
                unsigned mask, double tol, const char *run_what, const char *what);
/* dir/STEM0.f64 .. STEM3.f64 (a failing check for each unreadable one); free with free_refs. */
double **load_refs(const char *dir, const char *stem, const meta_t *m);
void free_refs(double **refs);
/* The fixture's shape with `layout` and `mask`, 2 threads, STRICT precision. */
sam3_neck_compile_params fixture_params(const meta_t *m, sam3_neck_layout layout, unsigned mask);

/* ---------------------------------------------------------------------------------------------
 * Refused loads: the status (`want`, or `also`), last_error (containing `needle` unless NULL),
 * then *out == NULL (the check named `out_what`, or "WHAT sets *out = NULL" when NULL). *out starts
 * as a non-NULL sentinel, so a call that leaves it alone fails.
 * ------------------------------------------------------------------------------------------- */

void expect_load_file_error(const char *path, const sam3_neck_load_params *lp, sam3_neck_status want,
                            sam3_neck_status also, const char *needle, const char *what, const char *out_what);
void expect_load_memory_error(const void *data, size_t size, const sam3_neck_load_params *lp, sam3_neck_status want,
                              sam3_neck_status also, const char *needle, const char *what, const char *out_what);

/* ---------------------------------------------------------------------------------------------
 * The tests, by file (main.c calls them in this order's spirit; see there)
 * ------------------------------------------------------------------------------------------- */

/* versions.c */
void test_versions_and_strings(void);
void test_defaults(void);
/* compile.c */
void test_config(sam3_neck *h, const meta_t *m, const char *what);
void test_before_compile(sam3_neck *h, const fixture_t *f);
void test_queries(sam3_neck *h, const meta_t *m);
void test_query_errors(sam3_neck *h);
void test_kernel_name(sam3_neck *h, const meta_t *m);
void test_compile_errors(sam3_neck *h, const fixture_t *f);
void test_compile_defaults(const fixture_t *f);
void test_pos_vs_python(const fixture_t *f);
/* run.c */
void test_run_errors(sam3_neck *h, const fixture_t *f);
void test_runs(sam3_neck *h, const fixture_t *f);
void test_variants(const fixture_t *f);
/* load.c */
void test_load_errors(const fixture_t *f);
void test_load_refusals(const fixture_t *f);
void test_inspect(const fixture_t *f);
/* threads.c */
void test_last_error_threads(void);
void test_threads(sam3_neck *h, sam3_neck *h2, const fixture_t *f);
void test_openblas_setting(sam3_neck *h, sam3_neck *h2, const fixture_t *f);
void test_openblas_idle_workers(const fixture_t *f);
/* memory.c */
void test_cycles(const fixture_t *f);

/* io.c: element types, output layouts and the weight export (0.3.0) */
void test_io(sam3_neck *h, const fixture_t *f);
void test_weight_export(sam3_neck *h, const fixture_t *f);

#endif
