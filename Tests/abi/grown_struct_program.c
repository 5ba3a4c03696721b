/*
 * grown_struct_program.c — a program built against a later header, in which sam3_neck_io_params
 * has grown by two fields, run against this library: the rule of include/sam3_neck.h ("Structs")
 * for a struct versioned by size.
 *   - grown, its new fields zero: accepted, and the run gives the same bytes as the 16-byte struct;
 *   - a new field non-zero: INVALID_ARGUMENT naming sam3_neck_io_params and the first non-zero
 *     offset, and the handle is left uncompiled;
 *   - struct_size below the first version's 16 or above 4096: INVALID_ARGUMENT;
 *   - get_io_params keeps the caller's struct_size and leaves the bytes past this library's struct
 *     as they were.
 * Every struct the library reads or writes sits flush against a PROT_NONE page, so a read or a
 * write past struct_size (or past sizeof of a fixed-layout struct: compile_params, config) faults.
 *
 *   cc -std=c99 -I include Tests/abi/grown_struct_program.c -L .build/release -lsam3neck ...
 *   grown_struct_program FIXTURE_DIR     (prints "N passed, M failed"; exits 1 on a failure)
 */
#define _DEFAULT_SOURCE 1

#include "sam3_neck.h"
#include "abi_program.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* status == want, and the last error contains every non-NULL needle. */
static void check_refused(sam3_neck_status status, sam3_neck_status want, const char *needle1, const char *needle2,
                          const char *what) {
  const char *msg = sam3_neck_last_error();
  int ok = status == want && (needle1 == NULL || strstr(msg, needle1) != NULL) &&
           (needle2 == NULL || strstr(msg, needle2) != NULL);
  printf("%s %s (status %d, message: %s)\n", ok ? "PASS" : "FAIL", what, (int)status, msg);
  if (ok)
    passed++;
  else
    failed++;
}

/* `bytes` of writable memory ending exactly where a PROT_NONE page begins. Never freed. */
static void *flush_against_guard(size_t bytes) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), span = (bytes + page - 1) / page * page;
  unsigned char *base =
      (unsigned char *)mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED || mprotect(base + span, page, PROT_NONE) != 0) {
    perror("grown_struct_program: mmap");
    exit(2);
  }
  return base + span - bytes;
}

/* sam3_neck_io_params as a later header might declare it: two fields appended. */
typedef struct io_params_grown {
  sam3_neck_io_params v1;
  uint32_t future_a;
  uint32_t future_b;
} io_params_grown;

/* Runs the compiled plan on `input`, returning malloc'd copies of the four levels' outputs. */
static int run_all(sam3_neck *neck, const float *input, size_t n, float *outs[SAM3_NECK_NUM_LEVELS],
                   size_t counts[SAM3_NECK_NUM_LEVELS]) {
  int level;
  void *ptrs[SAM3_NECK_NUM_LEVELS];
  for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) {
    int64_t s[4];
    int32_t rank = 0;
    if (sam3_neck_output_shape(neck, level, s, &rank) != SAM3_NECK_OK) return 0;
    counts[level] = (size_t)(s[0] * s[1] * s[2] * (rank == 4 ? s[3] : 1));
    outs[level] = (float *)calloc(counts[level], sizeof(float));
    ptrs[level] = outs[level];
  }
  return sam3_neck_run_io(neck, input, n, ptrs, counts) == SAM3_NECK_OK;
}

int main(int argc, char **argv) {
  size_t n = 0;
  char *text, path[4096];
  float *input, *base_outs[SAM3_NECK_NUM_LEVELS], *outs[SAM3_NECK_NUM_LEVELS];
  size_t base_counts[SAM3_NECK_NUM_LEVELS], counts[SAM3_NECK_NUM_LEVELS];
  sam3_neck *neck = NULL;
  sam3_neck_compile_params *p;
  sam3_neck_io_params *io16;
  io_params_grown *grown;
  int level;

  if (load_fixture(argc, argv, "grown_struct_program", &text, &input, &n) != 0) return 2;
  n /= sizeof(float);

  snprintf(path, sizeof path, "%s/tiny.safetensors", argv[1]);
  check(sam3_neck_load_file(path, NULL, &neck) == SAM3_NECK_OK && neck != NULL, "load_file");
  {
    sam3_neck_config *config = (sam3_neck_config *)flush_against_guard(sizeof *config);
    check(sam3_neck_get_config(neck, config) == SAM3_NECK_OK && config->trunk_dim == meta(text, "trunk_dim "),
          "get_config writes sizeof(sam3_neck_config) and no more");
  }

  /* compile_params has a fixed layout: the library reads exactly its 28 bytes. */
  p = (sam3_neck_compile_params *)flush_against_guard(sizeof *p);
  *p = sam3_neck_compile_default_params();
  p->batch = (int32_t)meta(text, "batch ");
  p->height = (int32_t)meta(text, "height ");
  p->width = (int32_t)meta(text, "width ");
  p->precision = SAM3_NECK_PRECISION_STRICT;

  /* The first version (16 bytes), flush against the guard page: NHWC outputs, so io matters. */
  io16 = (sam3_neck_io_params *)flush_against_guard(sizeof *io16);
  *io16 = sam3_neck_io_default_params();
  check(io16->struct_size == 16, "io_default_params gives the first version's struct_size, 16");
  io16->output_layout = SAM3_NECK_OUTPUT_NHWC;
  check(sam3_neck_compile_io(neck, p, io16) == SAM3_NECK_OK, "compile_io with the 16-byte struct");
  check(run_all(neck, input, n, base_outs, base_counts), "run_io of the 16-byte struct's plan");
  {
    sam3_neck_compile_params *back = (sam3_neck_compile_params *)flush_against_guard(sizeof *back);
    check(sam3_neck_get_compile_params(neck, back) == SAM3_NECK_OK && back->batch == p->batch,
          "get_compile_params writes sizeof(sam3_neck_compile_params) and no more");
  }
  {
    sam3_neck_io_params *back = (sam3_neck_io_params *)flush_against_guard(sizeof *back);
    memset(back, 0, sizeof *back);
    back->struct_size = 16;
    check(sam3_neck_get_io_params(neck, back) == SAM3_NECK_OK && back->output_layout == SAM3_NECK_OUTPUT_NHWC,
          "get_io_params into a 16-byte struct at the guard page");
  }

  /* Grown by two zeroed fields: accepted, same bytes out. */
  grown = (io_params_grown *)flush_against_guard(sizeof *grown);
  memset(grown, 0, sizeof *grown);
  grown->v1 = *io16;
  grown->v1.struct_size = (uint32_t)sizeof *grown;
  check(sam3_neck_compile_io(neck, p, &grown->v1) == SAM3_NECK_OK, "compile_io with a grown struct, new fields zero");
  if (run_all(neck, input, n, outs, counts)) {
    int same = 1;
    for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++)
      same = same && counts[level] == base_counts[level] &&
             memcmp(outs[level], base_outs[level], counts[level] * sizeof(float)) == 0;
    check(same, "the grown struct's plan writes the same bytes as the 16-byte struct's");
  } else {
    check(0, "run_io of the grown struct's plan");
  }
  for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) free(outs[level]);

  /* An odd size whose extra byte is zero is a grown struct too. */
  grown->v1.struct_size = 17;
  check(sam3_neck_compile_io(neck, p, &grown->v1) == SAM3_NECK_OK, "compile_io with struct_size 17, byte 16 zero");

  /* get_io_params into the grown struct: struct_size kept, the unknown fields untouched. */
  grown->v1.struct_size = (uint32_t)sizeof *grown;
  grown->v1.output_layout = SAM3_NECK_OUTPUT_SEQUENCE;
  grown->future_a = 0xA5A5A5A5u;
  grown->future_b = 0x5A5A5A5Au;
  check(sam3_neck_get_io_params(neck, &grown->v1) == SAM3_NECK_OK && grown->v1.struct_size == sizeof *grown &&
            grown->v1.output_layout == SAM3_NECK_OUTPUT_NHWC && grown->future_a == 0xA5A5A5A5u &&
            grown->future_b == 0x5A5A5A5Au,
        "get_io_params into a grown struct: struct_size kept, its fields written, the unknown ones untouched");

  /* A new field set: refused, naming the struct and the first non-zero offset. */
  grown->v1 = *io16;
  grown->v1.struct_size = (uint32_t)sizeof *grown;
  grown->future_a = 0;
  grown->future_b = 1;
  check_refused(sam3_neck_compile_io(neck, p, &grown->v1), SAM3_NECK_ERR_INVALID_ARGUMENT, "sam3_neck_io_params",
                "offset 20", "compile_io refuses a non-zero unknown field at offset 20");
  {
    size_t count = 0;
    check(sam3_neck_input_count(neck, &count) == SAM3_NECK_ERR_NOT_COMPILED,
          "a refused compile_io leaves the handle uncompiled");
  }
  grown->future_a = 0x100u; /* little-endian: byte 16 zero, byte 17 not */
  check_refused(sam3_neck_compile_io(neck, p, &grown->v1), SAM3_NECK_ERR_INVALID_ARGUMENT, "sam3_neck_io_params",
                "offset 17", "the message gives the first non-zero offset (17)");
  /* ... but a caller whose struct_size says 16 has no such field: its bytes are not read. */
  grown->v1.struct_size = 16;
  check(sam3_neck_compile_io(neck, p, &grown->v1) == SAM3_NECK_OK,
        "struct_size 16: the bytes after the first version are not read");

  /* Sizes out of range. */
  grown->future_a = grown->future_b = 0;
  grown->v1.struct_size = 15;
  check_refused(sam3_neck_compile_io(neck, p, &grown->v1), SAM3_NECK_ERR_INVALID_ARGUMENT, "sam3_neck_io_params",
                "smaller than its first version's 16", "compile_io refuses struct_size 15");
  grown->v1.struct_size = 4097;
  check_refused(sam3_neck_compile_io(neck, p, &grown->v1), SAM3_NECK_ERR_INVALID_ARGUMENT, "sam3_neck_io_params",
                "4096", "compile_io refuses struct_size 4097");
  check_refused(sam3_neck_get_io_params(neck, &grown->v1), SAM3_NECK_ERR_NOT_COMPILED, NULL, NULL,
                "get_io_params on the uncompiled handle: NOT_COMPILED");
  check(sam3_neck_compile_io(neck, p, io16) == SAM3_NECK_OK, "compile_io again");
  check_refused(sam3_neck_get_io_params(neck, &grown->v1), SAM3_NECK_ERR_INVALID_ARGUMENT, "sam3_neck_io_params",
                "4096", "get_io_params refuses struct_size 4097");
  grown->v1.struct_size = 8;
  check_refused(sam3_neck_get_io_params(neck, &grown->v1), SAM3_NECK_ERR_INVALID_ARGUMENT, "sam3_neck_io_params",
                "smaller", "get_io_params refuses struct_size 8");

  for (level = 0; level < SAM3_NECK_NUM_LEVELS; level++) free(base_outs[level]);
  sam3_neck_free(neck);
  free(input);
  free(text);
  printf("%d passed, %d failed\n", passed, failed);
  return failed > 0;
}
