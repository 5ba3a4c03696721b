/*
 * load.c — loads that must be refused, each with a status and a message naming the cause and
 * *out == NULL: bad arguments (size SIZE_MAX), missing files, a folder, missing tensors, wrong
 * shapes and dtypes, garbage, truncated and corrupted images, prefixes and kinds absent from the
 * file, the legacy PyTorch format; and inspection (sam3_neck_inspect_file).
 */
#include "test_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK SAM3_NECK_OK
#define INVALID SAM3_NECK_ERR_INVALID_ARGUMENT
#define IO SAM3_NECK_ERR_IO
#define FORMAT SAM3_NECK_ERR_FORMAT
#define MISSING SAM3_NECK_ERR_MISSING_TENSOR

/* expect_load_file_error on dir/name. */
static void expect_fixture_error(const char *dir, const char *name, const sam3_neck_load_params *lp,
                                 sam3_neck_status want, sam3_neck_status also, const char *needle, const char *what,
                                 const char *out_what) {
  char *p = join_path(dir, name);
  expect_load_file_error(p, lp, want, also, needle, what, out_what);
  free(p);
}

/* NULL arguments and an impossible size. */
static void test_load_arguments(const fixture_t *f) {
  char *p = join_path(f->dir, "tiny.safetensors");
  expect_load_file_error(NULL, NULL, INVALID, INVALID, NULL, "load_file(path NULL)", NULL);
  check_err(sam3_neck_load_file(p, NULL, NULL), INVALID, "load_file(out NULL)");
  expect_load_memory_error(NULL, 100, NULL, INVALID, INVALID, NULL, "load_memory(data NULL, size 100)",
                           "load_memory(data NULL) sets *out = NULL");
  check_err(sam3_neck_load_memory(f->bytes, f->size, NULL, NULL), INVALID, "load_memory(out NULL)");
  expect_load_memory_error(f->bytes, SIZE_MAX, NULL, INVALID, INVALID, "18446744073709551615",
                           "load_memory(size SIZE_MAX): refused, naming the size (not a negative "
                           "file size)",
                           "load_memory(size SIZE_MAX) sets *out = NULL");
  free(p);
}

/* Files that are missing, not checkpoints, or not this neck's. */
static void test_load_bad_files(const fixture_t *f) {
  const meta_t *m = &f->meta;
  char *p = join_path(f->dir, "does_not_exist.safetensors");
  /* missing file: IO, message contains the path */
  expect_load_file_error(p, NULL, IO, IO, p, "load_file(missing file)", NULL);
  free(p);
  expect_load_file_error(f->dir, NULL, IO, FORMAT, NULL, "load_file(a directory) -> IO or FORMAT",
                         "load_file(a directory) sets *out = NULL");
  expect_fixture_error(f->dir, "missing_tensor.safetensors", NULL, MISSING, MISSING, m->missing_tensor_name,
                       "load_file(missing_tensor.safetensors)", "load_file(missing tensor) sets *out = NULL");
  expect_fixture_error(f->dir, "bad_shape.safetensors", NULL, SAM3_NECK_ERR_SHAPE, SAM3_NECK_ERR_SHAPE,
                       m->bad_shape_tensor_name, "load_file(bad_shape.safetensors)",
                       "load_file(bad shape) sets *out = NULL");
  expect_fixture_error(f->dir, "bad_dtype.safetensors", NULL, SAM3_NECK_ERR_DTYPE, SAM3_NECK_ERR_DTYPE,
                       m->dtype_tensor_name, "load_file(bad_dtype.safetensors)",
                       "load_file(bad dtype) sets *out = NULL");
  expect_fixture_error(f->dir, "garbage.safetensors", NULL, FORMAT, FORMAT, NULL, "load_file(garbage.safetensors)",
                       "load_file(garbage) sets *out = NULL");
  expect_fixture_error(f->dir, "truncated.safetensors", NULL, FORMAT, IO, NULL,
                       "load_file(truncated.safetensors) -> FORMAT or IO", "load_file(truncated) sets *out = NULL");
}

/* Truncated and corrupted images of tiny.safetensors in memory. */
static void test_load_hostile_images(const fixture_t *f) {
  const unsigned char *bytes = f->bytes;
  size_t size = f->size, i;
  uint64_t hdr = 0;
  unsigned char *copy;
  size_t cuts[6];
  const char *names[6] = {
      "0 bytes", "5 bytes", "8 bytes (length only)", "half the JSON header", "header without data", "all but one byte"};
  int k;

  if (size >= 8) {
    for (i = 0; i < 8; i++) {
      hdr |= (uint64_t)bytes[i] << (8 * i);
    }
  }
  cuts[0] = 0;
  cuts[1] = 5;
  cuts[2] = 8;
  cuts[3] = 8 + (size_t)(hdr / 2);
  cuts[4] = 8 + (size_t)hdr;
  cuts[5] = size - 1;
  for (k = 0; k < 6; k++) {
    char what[128];
    if (cuts[k] >= size) {
      continue;
    }
    snprintf(what, sizeof what, "load_memory(truncated image: %s)", names[k]);
    expect_load_memory_error(bytes, cuts[k], NULL, FORMAT, IO, NULL, what, NULL);
  }

  copy = (unsigned char *)malloc(size);
  if (copy != NULL && size > 16) {
    memcpy(copy, bytes, size);
    memset(copy, 0xFF, 8); /* header length far beyond the image */
    expect_load_memory_error(copy, size, NULL, FORMAT, FORMAT, NULL, "load_memory(header length 2^64-1)",
                             "load_memory(huge header length) sets *out = NULL");
    memcpy(copy, bytes, size);
    copy[8] = 'x'; /* the JSON's opening brace */
    expect_load_memory_error(copy, size, NULL, FORMAT, FORMAT, NULL, "load_memory(JSON header corrupted)",
                             "load_memory(bad JSON) sets *out = NULL");
  }
  free(copy);
}

/* Prefixes and kinds that are absent from the file, and a kind that does not exist. */
static void test_load_params_errors(const fixture_t *f) {
  sam3_neck_load_params lp = sam3_neck_load_default_params();
  lp.prefix = "no.such.prefix.";
  expect_fixture_error(f->dir, "tiny.safetensors", &lp, MISSING, MISSING, NULL,
                       "load_file(tiny, prefix \"no.such.prefix.\")", "load_file(wrong prefix) sets *out = NULL");
  lp.prefix = "";
  expect_fixture_error(f->dir, "tiny.safetensors", &lp, MISSING, MISSING, NULL,
                       "load_file(tiny (prefixed), prefix \"\")",
                       "load_file(prefix \"\" on a prefixed file) sets *out = NULL");
  lp = sam3_neck_load_default_params();
  lp.kind = SAM3_NECK_KIND_SAM2;
  expect_fixture_error(f->dir, "noprefix.safetensors", &lp, MISSING, MISSING, "sam2_convs",
                       "load_file(noprefix.safetensors (no sam2_convs), kind SAM2)",
                       "load_file(absent kind) sets *out = NULL");
  lp = sam3_neck_load_default_params();
  set_enum_raw(&lp.kind, 7);
  expect_fixture_error(f->dir, "tiny.safetensors", &lp, INVALID, INVALID, NULL, "load_file(kind 7)", NULL);
}

void test_load_errors(const fixture_t *f) {
  test_load_arguments(f);
  test_load_bad_files(f);
  test_load_hostile_images(f);
  test_load_params_errors(f);
}

/* Files of the checkpoint-variant fixtures that the default parameters refuse. */
void test_load_refusals(const fixture_t *f) {
  expect_fixture_error(f->dir, "torch_legacy.pt", NULL, FORMAT, FORMAT, "legacy PyTorch format",
                       "load_file(torch_legacy.pt)", "... sets *out = NULL");
  expect_fixture_error(f->dir, "sam2_only.safetensors", NULL, MISSING, MISSING, "convs",
                       "load_file(sam2_only.safetensors) with kind SAM3 (default)", "... sets *out = NULL");
  expect_fixture_error(f->dir, "custom_prefix.safetensors", NULL, MISSING, MISSING, NULL,
                       "load_file(custom_prefix.safetensors) with the default (known prefixes) "
                       "search",
                       "... sets *out = NULL");
}

/* Inspection: ask for the length, refuse a short buffer, then the report. */
void test_inspect(const fixture_t *f) {
  char *p = join_path(f->dir, "hf_neck.safetensors");
  size_t needed = 0, again = 0;
  char small[8];
  check_ok(sam3_neck_inspect_file(p, NULL, 0, &needed) == INVALID ? OK : SAM3_NECK_ERR_INTERNAL,
           "inspect_file(size 0) answers INVALID_ARGUMENT with the length");
  check(needed > 100, "inspect_file reports a length (%zu)", needed);
  check_err_msg(sam3_neck_inspect_file(p, small, sizeof small, &again), INVALID, "needs",
                "inspect_file(8-byte buffer)");
  check(again == needed, "... and the same length again");
  if (needed > 0) {
    char *text = (char *)malloc(needed);
    if (check_ok(sam3_neck_inspect_file(p, text, needed, &again), "inspect_file(full buffer)")) {
      check(strlen(text) + 1 == needed, "report is NUL-terminated at *needed - 1");
      check(strstr(text, "\"scheme\": \"transformers\"") != NULL &&
                strstr(text, "\"prefix\": \"detector_model.vision_encoder.neck.\"") != NULL &&
                strstr(text, "\"trunk_dim\": 16") != NULL,
            "report names the scheme, prefix and trunk_dim");
    }
    free(text);
  }
  check_err(sam3_neck_inspect_file(NULL, NULL, 0, &needed), INVALID, "inspect_file(NULL path)");
  check_err(sam3_neck_inspect_file(p, NULL, 0, NULL), INVALID, "inspect_file(NULL needed)");
  free(p);
  p = join_path(f->dir, "garbage.safetensors");
  check_err(sam3_neck_inspect_file(p, NULL, 0, &needed), FORMAT, "inspect_file(garbage)");
  free(p);
}
