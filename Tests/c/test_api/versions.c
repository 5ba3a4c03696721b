/*
 * versions.c — versions, status strings and the default parameters.
 */
#include "test_api.h"

#include <stdio.h>
#include <string.h>

void test_versions_and_strings(void) {
  char expect[64];
  const char *v = sam3_neck_version_string();
  static const sam3_neck_status codes[] = {
      SAM3_NECK_OK,          SAM3_NECK_ERR_INVALID_ARGUMENT, SAM3_NECK_ERR_IO,
      SAM3_NECK_ERR_FORMAT,  SAM3_NECK_ERR_MISSING_TENSOR,   SAM3_NECK_ERR_SHAPE,
      SAM3_NECK_ERR_DTYPE,   SAM3_NECK_ERR_NOT_COMPILED,     SAM3_NECK_ERR_OUT_OF_MEMORY,
      SAM3_NECK_ERR_INTERNAL};
  const int ncodes = (int)(sizeof codes / sizeof codes[0]);
  const char *strs[16];
  int i, j, distinct = 1, nonempty = 1;
  sam3_neck_status unknown1, unknown2;

  check(sam3_neck_abi_version() == SAM3_NECK_ABI_VERSION, "abi_version() %u == %d", (unsigned)sam3_neck_abi_version(),
        SAM3_NECK_ABI_VERSION);
  snprintf(expect, sizeof expect, "%d.%d.%d", SAM3_NECK_VERSION_MAJOR, SAM3_NECK_VERSION_MINOR,
           SAM3_NECK_VERSION_PATCH);
  check(v != NULL && strcmp(v, expect) == 0, "version_string() \"%s\" == \"%s\"", v ? v : "(NULL)", expect);
  check(sam3_neck_version_string() == v, "version_string() is static (same pointer twice)");

  check(sizeof(sam3_neck_status) == sizeof(int) && sizeof(sam3_neck_layout) == sizeof(int) &&
            sizeof(sam3_neck_precision) == sizeof(int) && sizeof(sam3_neck_kind) == sizeof(int),
        "enums are int-sized (raw enum values below are meaningful)");

  for (i = 0; i < ncodes; i++) {
    strs[i] = sam3_neck_status_string(codes[i]);
    if (strs[i] == NULL || strs[i][0] == '\0') {
      nonempty = 0;
    }
    check(strs[i] != NULL && strs[i][0] != '\0', "status_string(%s) = \"%s\"", status_name(codes[i]),
          strs[i] ? strs[i] : "(NULL)");
  }
  set_enum_raw(&unknown1, 15);
  set_enum_raw(&unknown2, 12345);
  strs[ncodes] = sam3_neck_status_string(unknown1);
  strs[ncodes + 1] = sam3_neck_status_string(unknown2);
  check(strs[ncodes] != NULL && strcmp(strs[ncodes], "unknown status") == 0,
        "status_string(15) = \"%s\" == \"unknown status\"", strs[ncodes] ? strs[ncodes] : "(NULL)");
  check(strs[ncodes + 1] != NULL && strcmp(strs[ncodes + 1], "unknown status") == 0,
        "status_string(12345) = \"%s\" == \"unknown status\"", strs[ncodes + 1] ? strs[ncodes + 1] : "(NULL)");
  for (i = 0; i <= ncodes && nonempty; i++) {
    for (j = i + 1; j <= ncodes; j++) {
      if (strs[i] == NULL || strs[j] == NULL || strcmp(strs[i], strs[j]) == 0) {
        distinct = 0;
      }
    }
  }
  check(nonempty && distinct, "status strings of the 10 codes and an unknown one are distinct");
  check(strs[0] != NULL && strcmp(strs[0], "ok") == 0, "status_string(OK) == \"ok\"");
  check(strs[1] != NULL && strcmp(strs[1], "invalid argument") == 0,
        "status_string(INVALID_ARGUMENT) == \"invalid argument\"");
}

void test_defaults(void) {
  sam3_neck_load_params lp = sam3_neck_load_default_params();
  sam3_neck_compile_params cp = sam3_neck_compile_default_params();
  check(lp.kind == SAM3_NECK_KIND_SAM3, "load_default_params().kind == SAM3 (%d)", (int)lp.kind);
  check(lp.prefix == NULL, "load_default_params().prefix == NULL");
  check(cp.batch == 1, "compile_default_params().batch == 1 (%d)", (int)cp.batch);
  check(cp.height == 72, "compile_default_params().height == 72 (%d)", (int)cp.height);
  check(cp.width == 72, "compile_default_params().width == 72 (%d)", (int)cp.width);
  check(cp.layout == SAM3_NECK_LAYOUT_NCHW, "compile_default_params().layout == NCHW (%d)", (int)cp.layout);
  check(cp.levels_mask == 0xFu, "compile_default_params().levels_mask == 0xF (0x%x)", (unsigned)cp.levels_mask);
  check(cp.threads == 0, "compile_default_params().threads == 0 (%d)", (int)cp.threads);
  check(cp.precision == SAM3_NECK_PRECISION_DEFAULT, "compile_default_params().precision == DEFAULT (%d)",
        (int)cp.precision);
}
