/* The C example (docs/c-cpp.md): load, compile, run, free. Build against the header and the library,
 * from the repository root (after make lib), recording where the library is for run time:
 *   cc -std=c99 -I include examples/example.c -L .build/release -lsam3neck -Wl,-rpath,"$PWD/.build/release" -o example
 *   ./example WEIGHTS.safetensors
 * (without -rpath: LD_LIBRARY_PATH=.build/release ./example WEIGHTS.safetensors) */
#include <stdio.h>
#include <stdlib.h>

#include "sam3_neck.h"

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: %s WEIGHTS.safetensors\n", argv[0]); return 2; }
  sam3_neck *neck = NULL;
  if (sam3_neck_load_file(argv[1], NULL, &neck) != SAM3_NECK_OK) {
    fprintf(stderr, "load: %s\n", sam3_neck_last_error());
    return 1;
  }
  sam3_neck_config config;
  sam3_neck_get_config(neck, &config);

  sam3_neck_compile_params params = sam3_neck_compile_default_params(); /* 1 x 72 x 72, NCHW */
  params.levels_mask = 0x7;                                              /* levels 0, 1, 2 */
  if (sam3_neck_compile(neck, &params) != SAM3_NECK_OK) {
    fprintf(stderr, "compile: %s\n", sam3_neck_last_error());
    sam3_neck_free(neck);
    return 1;
  }
  size_t input_count = 0;
  sam3_neck_input_count(neck, &input_count);
  float *input = calloc(input_count, sizeof(float));   /* the trunk's features go here */
  float *outputs[SAM3_NECK_NUM_LEVELS] = {NULL, NULL, NULL, NULL};
  size_t counts[SAM3_NECK_NUM_LEVELS] = {0, 0, 0, 0};
  for (int level = 0; level < 3; level++) {
    int64_t shape[4];
    sam3_neck_level_shape(neck, level, shape);
    counts[level] = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    outputs[level] = malloc(counts[level] * sizeof(float));
    printf("level %d: [%lld, %lld, %lld, %lld]\n", level, (long long)shape[0], (long long)shape[1],
           (long long)shape[2], (long long)shape[3]);
  }
  sam3_neck_status status = sam3_neck_run(neck, input, input_count, outputs, counts);
  if (status != SAM3_NECK_OK) fprintf(stderr, "run: %s\n", sam3_neck_last_error());
  else printf("ran: trunk_dim %d, d_model %d\n", config.trunk_dim, config.d_model);

  for (int level = 0; level < 3; level++) free(outputs[level]);
  free(input);
  sam3_neck_free(neck);
  return status == SAM3_NECK_OK ? 0 : 1;
}
