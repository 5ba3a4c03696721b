/*
 * sam3_neck.h — the C ABI of sam3neck: the detection neck of SAM 3 as a native library.
 *
 * This header is the single source of truth of the ABI. Every function below is implemented in
 * Swift with `@c @implementation`, so the compiler rejects an implementation whose signature
 * differs from this file, and the test suite checks that `libsam3neck.so` exports exactly the
 * functions declared here.
 *
 * The four verbs:
 *   load     sam3_neck_load_file / sam3_neck_load_memory   -> an opaque sam3_neck handle
 *   compile  sam3_neck_compile  (batch, grid, layout, levels, threads, precision) -> plan + workspace
 *            sam3_neck_compile_io (since 0.3.0: also element types and output layout)
 *   run      sam3_neck_run      (float32 input -> caller-provided float32 NCHW output buffers)
 *            sam3_neck_run_io   (since 0.3.0: the compiled element types and output layout)
 *   free     sam3_neck_free     (NULL is a no-op)
 *
 * Conventions
 *   - Every fallible function returns a sam3_neck_status. SAM3_NECK_OK (0) is success. On failure
 *     a human-readable message naming the cause (file, tensor name, expected vs found shape, ...)
 *     is available from sam3_neck_last_error() on the same thread.
 *   - Nothing returned to the caller needs to be freed, except the handle (sam3_neck_free).
 *   - Functions without a handle argument (versions, status strings, default parameters, the last
 *     error) cannot fail and may be called from any thread at any time, before or after loading.
 *   - No function keeps a pointer passed by the caller after it returns, except where stated.
 *   - Tensors are C-contiguous (row-major), native byte order; float32 unless a plan was compiled
 *     for float16 or bfloat16 input or outputs (sam3_neck_compile_io). Weights are float32 as held.
 *
 * Structs
 *   - sam3_neck_load_params, sam3_neck_compile_params and sam3_neck_config have a fixed layout
 *     for this ABI version: the library reads or writes exactly sizeof of each, never more. New
 *     options come in new structs (as sam3_neck_io_params did in 0.3.0), never appended to these.
 *   - A struct whose first field is `uint32_t struct_size` (sam3_neck_io_params) is versioned by
 *     size: a later version may append fields. The caller sets struct_size to sizeof(the struct)
 *     as its header declares it. The one rule, for every such struct:
 *       * struct_size below the struct's first version's size, or above 4096 (no version comes
 *         near it: an unset field), is INVALID_ARGUMENT. The library never reads or writes past
 *         struct_size bytes.
 *       * Passed in: the fields this library knows that struct_size covers are read; fields the
 *         caller's (older) header lacks take their defaults. Bytes past this library's struct (a
 *         newer header's fields) must all be zero, which means "not set": the call then behaves
 *         as with the smaller struct. Any non-zero byte there is INVALID_ARGUMENT whose message
 *         names the struct and the offset of the first non-zero byte (the library cannot honour a
 *         setting it does not know; as Linux's copy_struct_from_user). So fields appended later
 *         are defined so that zero keeps the earlier behaviour.
 *       * Written out (the get_ queries): the caller's struct_size is kept, the fields this
 *         library knows that struct_size covers are written, bytes past them are left untouched.
 *       * A function returning such a struct by value (sam3_neck_io_default_params) returns its
 *         first version for good: a by-value return cannot grow without breaking the programs
 *         built against the smaller one.
 *
 * Threads (the one rule)
 *   - One handle may be shared by many threads for sam3_neck_run and the read-only queries;
 *     concurrent sam3_neck_run calls on one handle are safe and are serialised by a lock inside the
 *     handle (they share its workspace). For parallel throughput use one handle per thread.
 *   - sam3_neck_compile and sam3_neck_free must not race with any other call on the same handle.
 *   - Different handles are fully independent; loading (sam3_neck_load_*) may run on any number
 *     of threads at once.
 *   - The last-error message is per thread.
 *   - A run's parallel work goes to libdispatch's shared pool of worker threads (the calling thread
 *     takes part), at most the compiled thread count of workers at once, and calls OpenBLAS
 *     single-threaded from them. The pool is one per process and sizes itself to the online cores:
 *     runs of different handles at the same time share it rather than each starting threads, so
 *     together they keep about one busy thread per core, plus the callers' own threads. OpenBLAS's thread count is a
 * process-wide setting: loading a neck sets it to 1 and the library leaves it there (a run sets it to 1 again if the
 *     application changed it; nothing is saved or restored), so concurrent runs of different
 *     handles never hand each other a multi-threaded OpenBLAS. An application that wants the same
 *     OpenBLAS threaded for its own products sets the count itself, not while a run is in progress.
 *     The first load in a process also stops the worker threads OpenBLAS started when it was
 *     loaded (they would spin for ~0.1 s, taking a core from the first compile); a later
 *     multi-threaded OpenBLAS call starts them again.
 *
 * Environment
 *   The library reads one variable, at every compile: SAM3NECK_SGEMM_KERNEL = generic | avx2 |
 *   avx512 runs every float32 product of the plan on that kernel (and so none as bf16x3 on AMX in
 *   the default precision): results then differ from the automatic choice in their last bits,
 *   within the precision's bound. Unset (the default): the best kernel this CPU runs. Any other
 *   value, or a kernel this CPU lacks, makes the compile fail with INVALID_ARGUMENT naming it. The
 *   fast precision's bfloat16 products are chosen by the CPU alone. sam3_neck_kernel_name tells
 *   which code a compiled plan chose.
 *
 * Untrusted checkpoints
 *   Loading a file someone else made is safe: a malformed or hostile file gives an error (IO,
 *   FORMAT or OUT_OF_MEMORY; past a limit the message names the limit and the number found), it
 *   never crashes, blocks or exhausts the memory of the calling process. What holds:
 *   - Only regular files are opened, and opening never blocks: a FIFO, device, socket or folder
 *     where a checkpoint or shard should be is an IO error.
 *   - A sharded index reads only shards whose resolved path (symbolic links followed) lies inside
 *     the index's folder; in the Hugging Face hub cache, where snapshots/REV/ holds links into the
 *     same repository's blobs/, the enclosing models--* folder is that root.
 *   - Every offset, stride, size and count read from a file is computed with checked arithmetic,
 *     and bounded before it sizes an allocation, a loop or a recursion: no tensor may claim more
 *     bytes than the file holds, and a strided PyTorch view at most 64 times the elements of its
 *     storage (expanded, stride-0 views).
 *   - Limits: safetensors header 100000000 bytes; sharded index 67108864 bytes; JSON nesting 64
 *     levels and 2097152 values per document, each key once per object; zip central directory
 *     33554432 bytes; data.pkl 67108864 bytes; pickle nesting 200 levels (a state dict needs fewer
 *     than 10), 4194304 items in tuples, lists and dicts, 1048576 values on the stack, 1048576
 *     memo entries; one tensor 134217728 elements; the neck's tensors 134217728 parameters in all
 *     (SAM 3's hold 7.8 M). So refusing a file costs a bounded amount of memory (a few hundred MB
 *     at worst, the header or pickle itself included), and a failed allocation is OUT_OF_MEMORY.
 *
 * Values
 *   - NaN and +-Inf in the input reach exactly the outputs they reach in PyTorch's direct
 *     convolutions and max pool (a max-pool window holding a NaN gives NaN); weights are not checked.
 *     One difference in kind, not in place: consecutive linear layers are folded (dconv_2x2_1 with
 *     conv_1x1, dconv_2x2 with conv_1x1), so where PyTorch's intermediate sums meet Inf - Inf and
 *     give NaN, the folded layers may give +-Inf instead (an Inf in the input is needed for this).
 */
#ifndef SAM3_NECK_H
#define SAM3_NECK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------------------------- */

/* The ABI version this header describes. It changes only when an existing declaration changes
 * incompatibly; additions keep it. Compare with sam3_neck_abi_version() at run time. */
#define SAM3_NECK_ABI_VERSION 1

#define SAM3_NECK_VERSION_MAJOR 0
#define SAM3_NECK_VERSION_MINOR 5
#define SAM3_NECK_VERSION_PATCH 0
#define SAM3_NECK_VERSION_NUMBER                                                                                       \
  (SAM3_NECK_VERSION_MAJOR * 10000 + SAM3_NECK_VERSION_MINOR * 100 + SAM3_NECK_VERSION_PATCH)

/* Number of pyramid levels of the neck (scales 4, 2, 1, 0.5, in this order). */
#define SAM3_NECK_NUM_LEVELS 4

/* Returns the ABI version of the loaded library (SAM3_NECK_ABI_VERSION when it was built). */
uint32_t sam3_neck_abi_version(void);

/* Returns the library version as "MAJOR.MINOR.PATCH". Static storage; never NULL; do not free. */
const char *sam3_neck_version_string(void);

/* ---------------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------------- */

typedef enum sam3_neck_status {
  SAM3_NECK_OK = 0,
  SAM3_NECK_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, value out of range, bad option */
  SAM3_NECK_ERR_IO = 2,               /* file cannot be opened or read */
  SAM3_NECK_ERR_FORMAT = 3,           /* malformed checkpoint (header, offsets, JSON, ...) */
  SAM3_NECK_ERR_MISSING_TENSOR = 4,   /* a tensor the neck needs is not in the file */
  SAM3_NECK_ERR_SHAPE = 5,            /* a tensor, input or buffer has the wrong shape or size */
  SAM3_NECK_ERR_DTYPE = 6,            /* a needed tensor has an unsupported dtype */
  SAM3_NECK_ERR_NOT_COMPILED = 7,     /* run/query before a successful sam3_neck_compile */
  SAM3_NECK_ERR_OUT_OF_MEMORY = 8,    /* an allocation failed or would be unreasonably large */
  SAM3_NECK_ERR_INTERNAL = 9          /* a bug: please report it with the message */
} sam3_neck_status;

/* Returns a short static description of a status code ("ok", "invalid argument", ...).
 * Unknown codes give "unknown status". Never NULL; do not free. */
const char *sam3_neck_status_string(sam3_neck_status status);

/* Returns the message of the most recent failed call made on the calling thread, or "" if no call
 * on this thread has failed yet. Successful calls leave it unchanged. The pointer is valid until
 * the next failing call on the same thread; never NULL; do not free. */
const char *sam3_neck_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Loading weights
 * ------------------------------------------------------------------------------------------- */

/* The opaque handle: the neck's weights, and after sam3_neck_compile a plan for one input shape. */
typedef struct sam3_neck sam3_neck;

/* Which neck of a checkpoint to load. The SAM 3 checkpoint holds the detection neck and, in video
 * checkpoints, the SAM 2 / tracker neck (same structure, own weights). Their names:
 *   original (sam3.pt)    detection "convs"        tracker "sam2_convs"
 *   Transformers port     detection "fpn_layers"   tracker "tracker_neck.fpn_layers"
 * (Transformers module names: scale_layers.0 / scale_layers.2 / proj1 / proj2.) */
typedef enum sam3_neck_kind {
  SAM3_NECK_KIND_SAM3 = 0, /* detection neck: "convs" / "fpn_layers" */
  SAM3_NECK_KIND_SAM2 = 1  /* tracker neck: "sam2_convs" / "tracker_neck.fpn_layers" */
} sam3_neck_kind;

typedef struct sam3_neck_load_params {
  /* Which neck to load. Default SAM3_NECK_KIND_SAM3. */
  sam3_neck_kind kind;
  /* NULL (default): find the neck under any known prefix — original names under
   * "detector.backbone.vision_backbone.", "backbone.vision_backbone.", "vision_backbone." or none;
   * Transformers names under "detector_model.vision_encoder.neck.", "vision_encoder.neck." or
   * none. Exactly one match must exist: several (e.g. two copies under different prefixes) is an
   * INVALID_ARGUMENT error listing them. Otherwise the exact prefix that precedes the group name,
   * e.g. "model.backbone." (may be ""), in either naming. Not kept. */
  const char *prefix;
} sam3_neck_load_params;

/* Returns the default load parameters: kind SAM3_NECK_KIND_SAM3, prefix NULL (any known prefix). */
sam3_neck_load_params sam3_neck_load_default_params(void);

/* Loads the neck's weights from a checkpoint, whose format is recognised by its content:
 *   - safetensors;
 *   - a PyTorch zip archive as torch.save writes it (PyTorch >= 1.6, e.g. the official sam3.pt),
 *     plain or wrapped as {"model": state_dict}. Read natively by a restricted unpickler that
 *     executes nothing: a pickle global outside the allow-list of what state dicts use
 *     (collections.OrderedDict, torch._utils._rebuild_tensor_v2, storage types, ...) is a FORMAT
 *     error naming it. The pre-1.6 (non-zip) format is a FORMAT error;
 *   - sharded safetensors: the path of a "*.safetensors.index.json", or of the folder holding one.
 * F32, F16 and BF16 tensors are accepted and converted to float32; tensors of other dtypes that
 * the neck does not need (e.g. complex64 freqs_cis) are skipped. Only the neck's tensors are read
 * (of a 3.4 GB sam3.pt, about 31 MB), so loading time follows the neck, not the file.
 *   path    NUL-terminated path (not kept).
 *   params  NULL for the defaults (not kept).
 *   out     receives a new handle on success, NULL on failure. Free it with sam3_neck_free.
 * The trunk width C and d_model are inferred from the tensor shapes and checked for consistency.
 * Errors: INVALID_ARGUMENT, IO, FORMAT, MISSING_TENSOR, SHAPE, DTYPE, OUT_OF_MEMORY. */
sam3_neck_status sam3_neck_load_file(const char *path, const sam3_neck_load_params *params, sam3_neck **out);

/* Same as sam3_neck_load_file, from a checkpoint image in memory: safetensors or a PyTorch zip
 * archive (not sharded).
 *   data    the file's bytes, size bytes long, any alignment. Only read during the call (the handle
 *           keeps its own converted copy of the weights): the caller may free them afterwards.
 *   params  NULL for the defaults (not kept).
 *   out     receives a new handle on success, NULL on failure. Free it with sam3_neck_free.
 * Error messages name the source as '<memory>'.
 * Errors: INVALID_ARGUMENT (NULL data or out, bad params), FORMAT (including a size too small to
 *         hold a header), MISSING_TENSOR, SHAPE, DTYPE, OUT_OF_MEMORY. */
sam3_neck_status sam3_neck_load_memory(const void *data, size_t size, const sam3_neck_load_params *params,
                                       sam3_neck **out);

/* Frees a handle and everything it owns. NULL is a no-op. Cannot fail. The handle must not be used
 * afterwards, and no other call on it may be in progress (nor start) on any thread. */
void sam3_neck_free(sam3_neck *neck);

/* The loaded configuration, inferred from the checkpoint. */
typedef struct sam3_neck_config {
  int32_t trunk_dim;                  /* C: input channels (1024 for SAM 3) */
  int32_t d_model;                    /* d: output channels of every level (256 for SAM 3) */
  float scales[SAM3_NECK_NUM_LEVELS]; /* 4.0, 2.0, 1.0, 0.5 */
} sam3_neck_config;

/* Writes the loaded configuration to *out (caller-owned, not kept). Available right after loading,
 * compiled or not. Read-only query: may run concurrently with runs and other queries.
 * Errors: INVALID_ARGUMENT (NULL neck or out). */
sam3_neck_status sam3_neck_get_config(const sam3_neck *neck, sam3_neck_config *out);

/* ---------------------------------------------------------------------------------------------
 * Compiling a plan for one input shape
 * ------------------------------------------------------------------------------------------- */

typedef enum sam3_neck_layout {
  SAM3_NECK_LAYOUT_NCHW = 0, /* input [B, C, H, W] */
  SAM3_NECK_LAYOUT_NHWC = 1  /* input [B, H, W, C] (the trunk's own channels-last order) */
} sam3_neck_layout;

/* The bound of each precision: the normalised max error of every level against the float64
 * reference (max |out - ref| / max |ref| over a level's outputs). */
#define SAM3_NECK_BOUND_DEFAULT 1e-4
#define SAM3_NECK_BOUND_STRICT 1e-5
#define SAM3_NECK_BOUND_FAST 1e-2

typedef enum sam3_neck_precision {
  /* Normalised max error <= SAM3_NECK_BOUND_DEFAULT. On CPUs with AMX-BF16 some products run as
   * three bfloat16 products per float32 one (each term within ~2^-16 relative), inside this bound. */
  SAM3_NECK_PRECISION_DEFAULT = 0,
  /* Normalised max error <= SAM3_NECK_BOUND_STRICT; float32 products only. */
  SAM3_NECK_PRECISION_STRICT = 1,
  /* Since 0.4.0. Normalised max error <= SAM3_NECK_BOUND_FAST (bfloat16's own level: upstream's
   * bf16 autocast measures ~5e-3): products of bfloat16 operands with float32 sums, on CPUs with
   * native bfloat16 products (AMX-BF16 tile products, else AVX512_BF16's VDPBF16PS; chosen at
   * run time). Elsewhere (e.g. AVX2-only CPUs) it computes exactly as SAM3_NECK_PRECISION_DEFAULT.
   * NaN and Inf propagate as in the other modes. */
  SAM3_NECK_PRECISION_FAST = 2
} sam3_neck_precision;

typedef struct sam3_neck_compile_params {
  int32_t batch;           /* 1 <= B <= 1048576. Default 1. */
  int32_t height;          /* 1 <= H <= 32768 (grid rows of the trunk's feature map). Default 72. */
  int32_t width;           /* 1 <= W <= 32768. Default 72. */
  sam3_neck_layout layout; /* Default SAM3_NECK_LAYOUT_NCHW. */
  /* Bit i set = compute level i. Any non-empty subset of 0xF. Default 0xF (all four).
   * Level 3 (scale 0.5) needs H >= 2 and W >= 2. */
  uint32_t levels_mask;
  /* Threads for run, 0..1024; 0 (default) = all online cores. A run uses at most the online cores
   * (a larger count runs, and sizes its workspace, as that many); get_compile_params returns the
   * count as passed. */
  int32_t threads;
  sam3_neck_precision precision; /* Default SAM3_NECK_PRECISION_DEFAULT. */
} sam3_neck_compile_params;

/* Returns the default compile parameters (batch 1, 72 x 72, NCHW, all levels, all cores, precision
 * SAM3_NECK_PRECISION_DEFAULT). */
sam3_neck_compile_params sam3_neck_compile_default_params(void);

/* Plans the neck for one input shape: prepares packed weights, position encodings and a workspace.
 * Compiling again replaces the previous plan (on failure the handle is left uncompiled), and with
 * it the workspace and the shapes the queries report.
 *   neck    the handle. No other call on it may be in progress on another thread (not even a run).
 *   params  NULL for the defaults (not kept).
 * Errors: INVALID_ARGUMENT (NULL handle, bad batch/size/layout/mask/threads),
 *         SHAPE (grid too small for a requested level), OUT_OF_MEMORY (the plan would need more
 *         memory than can be allocated; the message says how much). */
sam3_neck_status sam3_neck_compile(sam3_neck *neck, const sam3_neck_compile_params *params);

/* Writes the compiled parameters to *out (caller-owned, not kept), exactly as passed to
 * sam3_neck_compile (threads = 0 stays 0). Read-only query (see Threads).
 * Errors: INVALID_ARGUMENT (NULL neck or out), NOT_COMPILED. */
sam3_neck_status sam3_neck_get_compile_params(const sam3_neck *neck, sam3_neck_compile_params *out);

/* ---------------------------------------------------------------------------------------------
 * Element types and output layouts (since 0.3.0)
 *
 * A plan may take a float16 or bfloat16 input (in either input layout) and write float16 or
 * bfloat16 outputs, in NCHW, NHWC or as a sequence of tokens [h*w, B, d] (what SAM 3's transformer
 * encoder reads: features.flatten(2).permute(2, 0, 1)). The neck computes in float32 inside: a
 * half-precision input is widened block by block in its first pass (no converted copy of the
 * input), outputs are rounded to nearest even by the kernels' final store (float16 overflows to
 * +-Inf past 65504; NaN stays NaN). Compile with sam3_neck_compile_io, run with sam3_neck_run_io.
 * sam3_neck_compile is sam3_neck_compile_io with the defaults (float32 in and out, NCHW), so a
 * program written for 0.2.0 runs unchanged.
 *
 * Which verb takes which plan (every other combination is refused, nothing is written):
 *   plan compiled for                  sam3_neck_run              sam3_neck_run_io
 *   float32 in and out, NCHW outputs   yes                        yes
 *   another input or output type       DTYPE error                yes
 *   float32, NHWC or sequence outputs  INVALID_ARGUMENT           yes
 *   (either input layout, any precision, any levels: as compiled, for both)
 * The messages name sam3_neck_run_io. sam3_neck_position_encoding and sam3_neck_level_shape keep
 * their float32 [1, d, h, w] / [B, d, h, w] meaning for every plan (the _io query and
 * sam3_neck_output_shape give the compiled type and layout).
 * ------------------------------------------------------------------------------------------- */

typedef enum sam3_neck_dtype {
  SAM3_NECK_DTYPE_FLOAT32 = 0,
  SAM3_NECK_DTYPE_FLOAT16 = 1, /* IEEE binary16 */
  SAM3_NECK_DTYPE_BFLOAT16 = 2 /* the upper 16 bits of a float32 */
} sam3_neck_dtype;

typedef enum sam3_neck_output_layout {
  SAM3_NECK_OUTPUT_NCHW = 0,    /* [B, d, h, w] */
  SAM3_NECK_OUTPUT_NHWC = 1,    /* [B, h, w, d] */
  SAM3_NECK_OUTPUT_SEQUENCE = 2 /* [h*w, B, d] */
} sam3_neck_output_layout;

/* Versioned by size (see "Structs" at the top for the rule): set struct_size to
 * sizeof(sam3_neck_io_params) as your program sees it (sam3_neck_io_default_params does). The first
 * version, 0.3.0's, is 16 bytes. */
typedef struct sam3_neck_io_params {
  uint32_t struct_size;
  sam3_neck_dtype input_dtype;           /* Default SAM3_NECK_DTYPE_FLOAT32. */
  sam3_neck_dtype output_dtype;          /* Default SAM3_NECK_DTYPE_FLOAT32. */
  sam3_neck_output_layout output_layout; /* Default SAM3_NECK_OUTPUT_NCHW. */
} sam3_neck_io_params;

/* Returns the default I/O parameters (struct_size 16, float32 in and out, NCHW output): the first
 * version of the struct, whatever later versions append. */
sam3_neck_io_params sam3_neck_io_default_params(void);

/* sam3_neck_compile, with the input and output element types and the output layout.
 *   io      NULL for the defaults (not kept).
 * Errors: as sam3_neck_compile; INVALID_ARGUMENT also for an unknown dtype or layout, a
 *         struct_size out of range, or a non-zero byte past this library's struct (see "Structs"). */
sam3_neck_status sam3_neck_compile_io(sam3_neck *neck, const sam3_neck_compile_params *params,
                                      const sam3_neck_io_params *io);

/* Writes the compiled I/O parameters to *out (caller-owned, not kept; out->struct_size must be set
 * and is kept: fields beyond it, or beyond this library's struct, are not written). Read-only query.
 * Errors: INVALID_ARGUMENT (NULL, struct_size out of range), NOT_COMPILED. */
sam3_neck_status sam3_neck_get_io_params(const sam3_neck *neck, sam3_neck_io_params *out);

/* Writes the stored shape of compiled level `level` in the compiled output layout to shape[0..3]
 * and its rank to *rank: [B, d, h, w] or [B, h, w, d] (rank 4), or [h*w, B, d] (rank 3, shape[3]
 * = 0). A level's position encoding has the same shape with B = 1. Read-only query.
 * Errors: INVALID_ARGUMENT (NULL, level out of range or not compiled), NOT_COMPILED. */
sam3_neck_status sam3_neck_output_shape(const sam3_neck *neck, int32_t level, int64_t shape[4], int32_t *rank);

/* Runs the plan on `input`: input_count elements (B*C*H*W) of the compiled input type in the
 * compiled input layout; outputs[i] receives level i in the compiled output type and layout,
 * output_counts[i] (in elements) at least B*d*h_i*w_i for compiled levels. Buffers need the
 * alignment of their element type; otherwise as sam3_neck_run (same threads rule, nothing
 * allocated). Errors: as sam3_neck_run. */
sam3_neck_status sam3_neck_run_io(sam3_neck *neck, const void *input, size_t input_count,
                                  void *const outputs[SAM3_NECK_NUM_LEVELS],
                                  const size_t output_counts[SAM3_NECK_NUM_LEVELS]);

/* Writes the position encoding of compiled level `level` in the compiled output type and layout
 * (as an output of batch 1) to out, which holds count elements (at least d*h*w). Read-only query.
 * Errors: INVALID_ARGUMENT (NULL, level), NOT_COMPILED, SHAPE (count too small). */
sam3_neck_status sam3_neck_position_encoding_io(const sam3_neck *neck, int32_t level, void *out, size_t count);

/* ---------------------------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------------------------- */

/* Writes the output shape of compiled level `level` (0..3) as [B, d, h, w] to shape[0..3]
 * (caller-owned, not kept). Read-only query (see Threads).
 * Errors: INVALID_ARGUMENT (NULL, level out of range or not in the compiled mask), NOT_COMPILED. */
sam3_neck_status sam3_neck_level_shape(const sam3_neck *neck, int32_t level, int64_t shape[4]);

/* Writes the number of input floats the compiled plan expects (B*C*H*W) to *count. Read-only
 * query (see Threads). Errors: INVALID_ARGUMENT (NULL neck or count), NOT_COMPILED. */
sam3_neck_status sam3_neck_input_count(const sam3_neck *neck, size_t *count);

/* Writes the size in bytes of the workspace the compiled plan owns (memory beyond the weights and
 * the caller's buffers that a run uses) to *bytes. Read-only query (see Threads).
 * Errors: INVALID_ARGUMENT (NULL neck or bytes), NOT_COMPILED. */
sam3_neck_status sam3_neck_workspace_size(const sam3_neck *neck, size_t *bytes);

/* Writes to *name the name of the code that runs the compiled plan's widest products (phase 1 of
 * levels 0-1 and the 3x3 Winograd convs), since 0.5.0:
 *   "avx512", "avx2", "generic"  the library's float32 micro-kernels (SAM3NECK_SGEMM_KERNEL, when
 *                                set, names the one every float32 product runs on)
 *   "openblas"                   OpenBLAS's sgemm (float32)
 *   "amx_bf16x3"                 default precision on CPUs with AMX-BF16: those products as three
 *                                bfloat16 products on AMX tiles (narrower ones on "avx512")
 *   "amx_bf16", "avx512_bf16"    SAM3_NECK_PRECISION_FAST's bfloat16 products
 * Later versions may add names. The plan's choice is made at compile, from the CPU, the precision
 * and SAM3NECK_SGEMM_KERNEL (see Environment); it decides the results' last bits.
 *   name  receives a NUL-terminated string in static storage: valid for the life of the process,
 *         whatever later compiles or frees do; never free it. Unchanged on failure.
 * Read-only query (see Threads).
 * Errors: INVALID_ARGUMENT (NULL neck or name), NOT_COMPILED. */
sam3_neck_status sam3_neck_kernel_name(const sam3_neck *neck, const char **name);

/* Writes the position encoding of compiled level `level`, shape [1, d, h, w], into out[0 .. count).
 * count must be at least d*h*w. Its sines and cosines are computed once, at compile time (one table
 * per axis, d/2 x h and d/2 x w); this call only lays them out, so call it once per compile and keep
 * the result: it does not depend on the input. out is caller-owned and not kept. Read-only query
 * (see Threads).
 * Errors: INVALID_ARGUMENT (NULL, level out of range or not compiled), NOT_COMPILED,
 *         SHAPE (count too small; the message gives the floats needed). */
sam3_neck_status sam3_neck_position_encoding(const sam3_neck *neck, int32_t level, float *out, size_t count);

/* ---------------------------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------------------------- */

/* Runs the compiled plan.
 *   input         float32 input in the compiled layout (not kept); input_count must equal
 *                 sam3_neck_input_count exactly (B*C*H*W).
 *   outputs       array of SAM3_NECK_NUM_LEVELS pointers; outputs[i] must be non-NULL for every
 *                 compiled level i and receives its features [B, d, h_i, w_i] (NCHW); entries of
 *                 levels not compiled are ignored and may be NULL. Not kept.
 *   output_counts array of SAM3_NECK_NUM_LEVELS capacities in floats of outputs[i]; each must be at
 *                 least B*d*h_i*w_i for compiled levels.
 * The plan must be float32 with NCHW outputs (see "Which verb takes which plan" above).
 * Every buffer must be aligned to its element type, and the elements a run writes must not overlap
 * the input or each other: both are checked (INVALID_ARGUMENT, nothing written). Nothing is
 * allocated per run.
 * Threads: runs on one handle from several threads are safe and take turns (one workspace per
 * handle); a run must not overlap sam3_neck_compile or sam3_neck_free on the same handle. Each run
 * uses the compiled number of worker threads and keeps OpenBLAS on one thread (see Threads).
 * Errors: INVALID_ARGUMENT (NULL neck, input, outputs, output_counts, or a NULL outputs[i] of a
 *         compiled level; a misaligned or overlapping buffer), NOT_COMPILED, SHAPE (input_count or a capacity wrong;
 * the message gives both sizes), DTYPE (the plan was compiled for another input or output type: use sam3_neck_run_io);
 * INVALID_ARGUMENT also for a plan compiled for NHWC or sequence outputs (use sam3_neck_run_io). */
sam3_neck_status sam3_neck_run(sam3_neck *neck, const float *input, size_t input_count,
                               float *const outputs[SAM3_NECK_NUM_LEVELS],
                               const size_t output_counts[SAM3_NECK_NUM_LEVELS]);

/* ---------------------------------------------------------------------------------------------
 * Experimental: may change in a minor version until 1.0
 * ------------------------------------------------------------------------------------------- */

/* Describes what the checkpoint at `path` holds for the neck, as UTF-8 JSON text: the format, the
 * tensor count, and every neck found (both kinds, every naming scheme and known prefix) with its
 * tensors (name, dtype, shape, NaN and Inf counts), the tensors missing, and either the
 * configuration it loads as ("trunk_dim", "d_model") or the error loading it would give. Reads the
 * neck's tensors only, and not those of a neck past the loader's parameter limit; a tensor whose
 * data is not read or cannot be read carries an "error" instead of its counts.
 * `python -m sam3neck inspect FILE` prints it for people.
 *   path    NUL-terminated path, as for sam3_neck_load_file (not kept).
 *   buf     receives the text and a terminating NUL when it fits in `size` bytes; may be NULL when
 *           size is 0 (to ask for the length).
 *   needed  required: receives the length of the text plus 1 (the NUL), also when it did not fit.
 * Errors: INVALID_ARGUMENT (NULL path or needed, or size < *needed: nothing written, call again
 * with a buffer of *needed bytes), IO, FORMAT. A file holding no neck is not an error: the list of
 * necks is empty. Thread-safe (uses no handle). */
sam3_neck_status sam3_neck_inspect_file(const char *path, char *buf, size_t size, size_t *needed);

/* The tensors a neck is made of, by name: "<level>.<module>.<weight|bias>" with upstream's module
 * names ("0.dconv_2x2_0.weight", "0.dconv_2x2_0.bias", ..., "3.conv_3x3.bias"): levels in order,
 * modules in the order they are applied, weight before bias. Returns the index-th name, or NULL
 * when index is outside 0..count-1 (22 tensors). Static storage; never free. Thread-safe. */
const char *sam3_neck_experimental_tensor_name(int32_t index);

/* Copies one tensor of the loaded neck, as the library holds it (float32, PyTorch's layout:
 * ConvTranspose2d [in, out, 2, 2], Conv2d [out, in, kh, kw], bias [out]), so that a caller can
 * check or reuse exactly the weights that were loaded, whatever the checkpoint's format.
 *   neck      the handle (compiled or not). Read-only query.
 *   name      a name from sam3_neck_experimental_tensor_name (not kept).
 *   out       receives the values, row-major, when capacity is enough; may be NULL when capacity
 *             is 0 (to ask for the shape).
 *   capacity  floats available at out.
 *   shape     required: receives the dimensions (4 for weights, 1 for biases; unused entries 0).
 *   rank      required: receives the number of dimensions.
 * Errors: INVALID_ARGUMENT (NULL neck, name, shape or rank; an unknown name: the message lists the
 * form), SHAPE (capacity smaller than the tensor: shape and rank are still written). */
sam3_neck_status sam3_neck_experimental_get_tensor(const sam3_neck *neck, const char *name, float *out, size_t capacity,
                                                   int64_t shape[4], int32_t *rank);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SAM3_NECK_H */
