/*
 * main.c — the C API test's program: reads the fixtures, loads the handles the tests share and
 * runs the tests of the other files (see test_api.h), then prints "N passed, M failed".
 *
 * Usage: test_api FIXTURE_DIR   (fixtures written by Tests/c/make_fixtures.py)
 */
#include "test_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* load_file and load_memory of tiny.safetensors; the rest of the tests run on these two handles. */
static void load_shared_handles(const fixture_t *f, sam3_neck **h, sam3_neck **hm) {
  char *p = join_path(f->dir, "tiny.safetensors");
  sam3_neck_status st = sam3_neck_load_file(p, NULL, h);
  free(p);
  check_ok(st, "load_file(tiny.safetensors, params NULL)");
  check(*h != NULL, "load_file gives a non-NULL handle");

  /* load_memory from a malloc'd copy freed right after the load */
  {
    unsigned char *copy = (unsigned char *)malloc(f->size);
    sam3_neck_load_params lp = sam3_neck_load_default_params();
    memcpy(copy, f->bytes, f->size);
    st = sam3_neck_load_memory(copy, f->size, &lp, hm);
    memset(copy, 0xAB, f->size);
    free(copy);
    check_ok(st, "load_memory(copy of tiny.safetensors, default params), buffer freed after");
    check(*hm != NULL, "load_memory gives a non-NULL handle");
  }
}

/* A successful call leaves last_error unchanged (test_before_compile has just failed some). */
static void test_last_error_kept(sam3_neck *h) {
  char saved[1024];
  sam3_neck_config c;
  snprintf(saved, sizeof saved, "%s", sam3_neck_last_error());
  check(saved[0] != '\0', "last_error() non-empty after a failure (\"%s\")", saved);
  sam3_neck_get_config(h, &c);
  check(strcmp(saved, sam3_neck_last_error()) == 0, "a successful call leaves last_error() unchanged");
}

/* The load_memory handle gives the reference too. */
static void test_memory_handle(sam3_neck *hm, const fixture_t *f) {
  sam3_neck_compile_params cp = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
  test_config(hm, &f->meta, "load_memory handle");
  if (check_ok(sam3_neck_compile(hm, &cp), "load_memory handle: compile")) {
    run_compare(hm, &f->meta, f->input, f->input_count, f->refs, 0xF, SAM3_NECK_BOUND_STRICT, "load_memory handle: run",
                "load_memory handle vs float64 reference");
  }
}

int main(int argc, char **argv) {
  fixture_t f;
  char *p;
  float *input;
  unsigned char *bytes;
  double **refs;
  sam3_neck *h = NULL, *hm = NULL;

  if (argc != 2) {
    fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  memset(&f, 0, sizeof f);
  f.dir = argv[1];
  if (!host_is_little_endian()) {
    fprintf(stderr, "fixtures are little-endian; this host is not\n");
    return 2;
  }
  {
    const char *e = sam3_neck_last_error();
    check(e != NULL && e[0] == '\0', "last_error() == \"\" on the main thread before any failure");
  }

  test_versions_and_strings();
  test_defaults();

  /* the fixtures */
  p = join_path(f.dir, "meta.txt");
  if (!check(read_meta(p, &f.meta), "read %s (all keys present)", p)) {
    free(p);
    checks_summary();
    return 1;
  }
  free(p);
  f.input_count = (size_t)f.meta.batch * f.meta.trunk_dim * f.meta.height * f.meta.width;
  p = join_path(f.dir, "input.f32");
  input = (float *)read_values(p, f.input_count, sizeof(float));
  check(input != NULL, "read %s (%zu floats)", p, f.input_count);
  free(p);
  refs = load_refs(f.dir, "ref_level", &f.meta);
  p = join_path(f.dir, "tiny.safetensors");
  bytes = read_all(p, &f.size);
  check(bytes != NULL && f.size > 8, "read %s (%zu bytes)", p, f.size);
  free(p);
  if (input == NULL || bytes == NULL) {
    free(input);
    free(bytes);
    free_refs(refs);
    checks_summary();
    return 1;
  }
  f.input = input;
  f.bytes = bytes;
  f.refs = refs;

  test_openblas_idle_workers(&f); /* before any other load */
  load_shared_handles(&f, &h, &hm);
  if (h != NULL) {
    test_config(h, &f.meta, "load_file handle");
    test_before_compile(h, &f);
    test_last_error_kept(h);
    test_queries(h, &f.meta);
    test_query_errors(h);
    test_kernel_name(h, &f.meta);
    test_run_errors(h, &f);
    test_runs(h, &f);
    test_compile_errors(h, &f);
    test_io(h, &f);
    test_weight_export(h, &f);
  }
  if (hm != NULL) {
    test_memory_handle(hm, &f);
  }
  if (h != NULL) {
    test_threads(h, hm, &f);
    if (hm != NULL) {
      test_openblas_setting(h, hm, &f);
    }
  }
  test_compile_defaults(&f);

  /* loading errors and last_error across threads */
  test_load_errors(&f);
  test_last_error_threads();

  /* checkpoint variants: dtypes, prefixes, kinds, real PyTorch files; refusals; inspection */
  test_variants(&f);
  test_load_refusals(&f);
  test_inspect(&f);
  test_pos_vs_python(&f);

  /* memory stays flat over many cycles */
  test_cycles(&f);

  /* free */
  sam3_neck_free(h);
  sam3_neck_free(hm);
  sam3_neck_free(NULL);
  check(1, "sam3_neck_free(NULL) is a no-op");

  free(bytes);
  free(input);
  free_refs(refs);
  return checks_summary();
}
