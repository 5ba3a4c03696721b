/* Compile-time checks of the ABI's struct layouts: a change that would silently break callers
 * compiled against an earlier header fails the build instead. Defines no symbols. */
#include "sam3_neck.h"

#include <stddef.h>

_Static_assert(sizeof(sam3_neck_status) == 4, "enums are 32-bit");
_Static_assert(sizeof(sam3_neck_load_params) == 16, "sam3_neck_load_params layout");
_Static_assert(offsetof(sam3_neck_load_params, prefix) == 8, "sam3_neck_load_params.prefix");
_Static_assert(sizeof(sam3_neck_config) == 24, "sam3_neck_config layout");
_Static_assert(offsetof(sam3_neck_config, scales) == 8, "sam3_neck_config.scales");
_Static_assert(sizeof(sam3_neck_compile_params) == 28, "sam3_neck_compile_params layout");
_Static_assert(offsetof(sam3_neck_compile_params, levels_mask) == 16, "levels_mask");
_Static_assert(offsetof(sam3_neck_compile_params, precision) == 24, "precision");
