/* What the programs of Tests/abi share: the PASS/FAIL tally and reading the C test's fixtures.
 * Included after the header the program is built against (whichever version it is), so it uses
 * only what every version of sam3_neck.h declares. */
#ifndef SAM3NECK_ABI_PROGRAM_H
#define SAM3NECK_ABI_PROGRAM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0, failed = 0;

/* Prints PASS or FAIL and `what` (with the library's last error on a failure) and counts it. */
static void check(int ok, const char *what) {
  printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, ok ? "" : ": ", ok ? "" : sam3_neck_last_error());
  if (ok)
    passed++;
  else
    failed++;
}

/* The whole file at dir/name (malloc'd, its size in *size), or NULL. */
static void *slurp(const char *dir, const char *name, size_t *size) {
  char path[4096];
  FILE *f;
  void *data;
  long n;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = malloc(n > 0 ? (size_t)n : 1);
  if (data != NULL && fread(data, 1, (size_t)n, f) != (size_t)n) {
    free(data);
    data = NULL;
  }
  fclose(f);
  *size = (size_t)n;
  return data;
}

/* The integer after `key` in the fixtures' meta.txt text, or -1. */
static long meta(const char *text, const char *key) {
  const char *p = strstr(text, key);
  return p == NULL ? -1 : strtol(p + strlen(key), NULL, 10);
}

/* Reads the C test's fixture folder named by the one argument: meta.txt (into *text, a
 * NUL-terminated string) and input.f32 (into *input, its size in bytes in *input_bytes). Returns 0,
 * or 2 (the exit status) after a message on stderr naming `program` and the cause. */
static int load_fixture(int argc, char **argv, const char *program, char **text, float **input, size_t *input_bytes) {
  size_t size = 0;
  if (argc != 2) {
    fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  *text = (char *)slurp(argv[1], "meta.txt", &size);
  *input = (float *)slurp(argv[1], "input.f32", input_bytes);
  if (*text == NULL || *input == NULL) {
    fprintf(stderr, "%s: cannot read the fixtures in %s\n", program, argv[1]);
    return 2;
  }
  *text = (char *)realloc(*text, size + 1);
  if (*text == NULL) return 2;
  (*text)[size] = '\0';
  return 0;
}

#endif
