/* Compile-time checks of the ABI's struct layouts: a change that would silently break callers
 * compiled against an earlier header fails the build instead. Every field offset and the size of
 * every struct passed by pointer or by value is pinned. Defines no symbols. */
#include "sam3_neck.h"

#include <stddef.h>

/* Enums are 32-bit. */
_Static_assert(sizeof(sam3_neck_status) == 4, "sam3_neck_status is 32-bit");
_Static_assert(sizeof(sam3_neck_kind) == 4, "sam3_neck_kind is 32-bit");
_Static_assert(sizeof(sam3_neck_layout) == 4, "sam3_neck_layout is 32-bit");
_Static_assert(sizeof(sam3_neck_precision) == 4, "sam3_neck_precision is 32-bit");
_Static_assert(sizeof(sam3_neck_dtype) == 4, "sam3_neck_dtype is 32-bit");
_Static_assert(sizeof(sam3_neck_output_layout) == 4, "sam3_neck_output_layout is 32-bit");

/* sam3_neck_load_params (0.2.0; fixed layout, returned by value). */
_Static_assert(sizeof(sam3_neck_load_params) == 16, "sam3_neck_load_params size");
_Static_assert(offsetof(sam3_neck_load_params, kind) == 0, "sam3_neck_load_params.kind");
_Static_assert(offsetof(sam3_neck_load_params, prefix) == 8, "sam3_neck_load_params.prefix");

/* sam3_neck_config (0.2.0; fixed layout). */
_Static_assert(sizeof(sam3_neck_config) == 24, "sam3_neck_config size");
_Static_assert(offsetof(sam3_neck_config, trunk_dim) == 0, "sam3_neck_config.trunk_dim");
_Static_assert(offsetof(sam3_neck_config, d_model) == 4, "sam3_neck_config.d_model");
_Static_assert(offsetof(sam3_neck_config, scales) == 8, "sam3_neck_config.scales");

/* sam3_neck_compile_params (0.2.0; fixed layout, returned by value). */
_Static_assert(sizeof(sam3_neck_compile_params) == 28, "sam3_neck_compile_params size");
_Static_assert(offsetof(sam3_neck_compile_params, batch) == 0, "sam3_neck_compile_params.batch");
_Static_assert(offsetof(sam3_neck_compile_params, height) == 4, "sam3_neck_compile_params.height");
_Static_assert(offsetof(sam3_neck_compile_params, width) == 8, "sam3_neck_compile_params.width");
_Static_assert(offsetof(sam3_neck_compile_params, layout) == 12, "sam3_neck_compile_params.layout");
_Static_assert(offsetof(sam3_neck_compile_params, levels_mask) == 16, "sam3_neck_compile_params.levels_mask");
_Static_assert(offsetof(sam3_neck_compile_params, threads) == 20, "sam3_neck_compile_params.threads");
_Static_assert(offsetof(sam3_neck_compile_params, precision) == 24, "sam3_neck_compile_params.precision");

/* sam3_neck_io_params (0.3.0; versioned by struct_size, first version 16 bytes: Exports.swift's
 * ioParamsV1Size). Appending a field changes the size assert here; the offsets below never change,
 * and sam3_neck_io_default_params must keep returning this first version by value. */
_Static_assert(sizeof(sam3_neck_io_params) == 16, "sam3_neck_io_params size (this version's)");
_Static_assert(offsetof(sam3_neck_io_params, struct_size) == 0, "sam3_neck_io_params.struct_size comes first");
_Static_assert(sizeof(((sam3_neck_io_params *)0)->struct_size) == 4, "sam3_neck_io_params.struct_size is 32-bit");
_Static_assert(offsetof(sam3_neck_io_params, input_dtype) == 4, "sam3_neck_io_params.input_dtype");
_Static_assert(offsetof(sam3_neck_io_params, output_dtype) == 8, "sam3_neck_io_params.output_dtype");
_Static_assert(offsetof(sam3_neck_io_params, output_layout) == 12, "sam3_neck_io_params.output_layout");
