/*
 * sam3_neck.hpp — a header-only C++17 wrapper of the C ABI in sam3_neck.h.
 *
 * Nothing here adds behaviour: every member calls the C function of the same name, and every
 * status other than SAM3_NECK_OK becomes a thrown sam3neck::Error carrying that status and the
 * library's message (sam3_neck_last_error(), copied at once). Link with -lsam3neck as for C
 * (`pkg-config --cflags --libs sam3neck`); C++17 or later.
 *
 *   sam3neck::Neck neck = sam3neck::Neck::load("sam3.pt");  // or safetensors, a sharded index
 *   sam3neck::CompileOptions options;              // the C defaults: 1 x 72 x 72, NCHW, all levels
 *   options.levels_mask = 0x7;
 *   neck.compile(options);
 *   std::vector<float> input(neck.input_count());  // the trunk's features go here
 *   std::vector<std::vector<float>> levels = neck.run(input);
 *
 * Ownership
 *   - A Neck owns one sam3_neck handle and frees it in its destructor. It is move-only: moving
 *     transfers the handle and leaves the source empty (as a default-constructed Neck). Destroying
 *     or assigning to an empty Neck does nothing; any other member called on an empty Neck throws
 *     Error with SAM3_NECK_ERR_INVALID_ARGUMENT ("neck is NULL"), as the C function reports it.
 *   - Every std::vector or std::array returned is the caller's; the wrapper keeps no pointer the
 *     caller passed in, and the library copies what it needs (path, prefix, checkpoint bytes).
 *
 * Errors
 *   - Error (a std::runtime_error): status() is the C status code, message() the library's
 *     message naming the cause (file, tensor, expected vs found sizes, ...), what() both. The
 *     message starts with the C function that failed, which for a member that makes several C
 *     calls may be a helper's (e.g. run() before compile() reports sam3_neck_get_compile_params).
 *   - std::bad_alloc may come from the vectors the convenience overloads allocate.
 *
 * Threads (the C header's rule, unchanged)
 *   - One Neck may be shared by many threads for run() and the const queries; concurrent run()
 *     calls on one Neck are safe but serialised by a lock inside the handle (they share its
 *     workspace). For parallel throughput use one Neck per thread.
 *   - compile(), move-assignment and destruction must not race with any other call on the same Neck.
 *   - Different Necks are fully independent. The library's last-error message is per thread, and
 *     Error copies it on the thread that failed, so an Error may be passed to any thread.
 */
#ifndef SAM3_NECK_HPP
#define SAM3_NECK_HPP

/* SwiftPM builds include/ as a C module (the Sam3NeckABI target) whose module map takes every header
 * in the folder, so this file is also read as C there: it has no C content. */
#ifdef __cplusplus

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "sam3_neck.hpp needs C++17 or later"
#endif

#include "sam3_neck.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sam3neck {

/* Number of pyramid levels (scales 4, 2, 1, 0.5, in this order). */
inline constexpr int num_levels = SAM3_NECK_NUM_LEVELS;

/* ---------------------------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------------------------- */

/* The ABI version of the loaded library; compare with SAM3_NECK_ABI_VERSION (the header's). */
inline std::uint32_t abi_version() noexcept { return sam3_neck_abi_version(); }

/* The loaded library's version, "MAJOR.MINOR.PATCH". */
inline std::string version() { return sam3_neck_version_string(); }

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* A short static description of a status code ("ok", "invalid argument", ...). */
inline const char *status_string(sam3_neck_status status) noexcept { return sam3_neck_status_string(status); }

/* Thrown by every member whose C call failed. */
class Error : public std::runtime_error {
public:
  /* status: the C status; message: the library's message (may be empty). what() is
   * "MESSAGE (STATUS STRING)", or just the status string when the message is empty. */
  Error(sam3_neck_status status, const std::string &message)
      : std::runtime_error(message.empty() ? std::string(status_string(status))
                                           : message + " (" + status_string(status) + ")"),
        status_(status), message_(message) {}

  /* The status the C function returned (never SAM3_NECK_OK). */
  sam3_neck_status status() const noexcept { return status_; }
  /* The library's message for the failure (sam3_neck_last_error() at the time of the throw). */
  const std::string &message() const noexcept { return message_; }

private:
  sam3_neck_status status_;
  std::string message_;
};

namespace detail {
/* Throws Error(status, sam3_neck_last_error()) when status is not SAM3_NECK_OK. */
inline void check(sam3_neck_status status) {
  if (status != SAM3_NECK_OK) {
    throw Error(status, sam3_neck_last_error());
  }
}
} // namespace detail

/* ---------------------------------------------------------------------------------------------
 * Options (the C enums, class-wrapped; defaults are the C library's)
 * ------------------------------------------------------------------------------------------- */

/* Which neck of a checkpoint to load (sam3_neck_kind). */
enum class Kind : int {
  Sam3 = SAM3_NECK_KIND_SAM3, /* detection neck: "convs" */
  Sam2 = SAM3_NECK_KIND_SAM2  /* tracker neck: "sam2_convs" */
};

/* Memory order of the input (sam3_neck_layout). */
enum class Layout : int {
  NCHW = SAM3_NECK_LAYOUT_NCHW, /* [B, C, H, W] */
  NHWC = SAM3_NECK_LAYOUT_NHWC  /* [B, H, W, C] (the trunk's own channels-last order) */
};

/* Accuracy mode (sam3_neck_precision). Each mode's bound on the normalised max error of every
 * level against the float64 reference is the C header's macro (also bound() below). */
enum class Precision : int {
  Default = SAM3_NECK_PRECISION_DEFAULT, /* error <= SAM3_NECK_BOUND_DEFAULT */
  Strict = SAM3_NECK_PRECISION_STRICT,   /* error <= SAM3_NECK_BOUND_STRICT; float32 products only */
  /* Since 0.4.0: error <= SAM3_NECK_BOUND_FAST. bfloat16 products with float32 sums on CPUs with
   * native bfloat16 products (AMX-BF16, else AVX512_BF16; chosen at run time), elsewhere exactly
   * the Default mode's arithmetic. */
  Fast = SAM3_NECK_PRECISION_FAST
};

/* The bound of a precision: SAM3_NECK_BOUND_DEFAULT, _STRICT or _FAST (NaN, which no error
 * meets, for a value that is none of them). */
constexpr double bound(Precision precision) noexcept {
  return precision == Precision::Default  ? SAM3_NECK_BOUND_DEFAULT
         : precision == Precision::Strict ? SAM3_NECK_BOUND_STRICT
         : precision == Precision::Fast   ? SAM3_NECK_BOUND_FAST
                                          : std::numeric_limits<double>::quiet_NaN();
}

/* Element type of the input or the outputs (sam3_neck_dtype, since 0.3.0). */
enum class DType : int {
  Float32 = SAM3_NECK_DTYPE_FLOAT32,
  Float16 = SAM3_NECK_DTYPE_FLOAT16,  /* IEEE binary16, as std::uint16_t bits */
  BFloat16 = SAM3_NECK_DTYPE_BFLOAT16 /* the upper 16 bits of a float32, as std::uint16_t */
};

/* How the outputs and position encodings are stored (sam3_neck_output_layout, since 0.3.0). */
enum class OutputLayout : int {
  NCHW = SAM3_NECK_OUTPUT_NCHW,        /* [B, d, h, w] */
  NHWC = SAM3_NECK_OUTPUT_NHWC,        /* [B, h, w, d] */
  Sequence = SAM3_NECK_OUTPUT_SEQUENCE /* [h*w, B, d] */
};

/* sam3_neck_load_params. A default-constructed LoadOptions holds sam3_neck_load_default_params(). */
struct LoadOptions {
  /* Which neck to load. */
  Kind kind = static_cast<Kind>(sam3_neck_load_default_params().kind);
  /* No value (default): find the neck under any known prefix, or none. A value: the exact prefix
   * before the group name, e.g. "model.backbone." (may be ""). */
  std::optional<std::string> prefix;

  /* The C struct; its prefix points into this object, so it is valid while this object lives
   * unchanged. */
  sam3_neck_load_params to_c() const noexcept {
    sam3_neck_load_params params = sam3_neck_load_default_params();
    params.kind = static_cast<sam3_neck_kind>(kind);
    params.prefix = prefix ? prefix->c_str() : nullptr;
    return params;
  }
};

/* sam3_neck_compile_params. A default-constructed CompileOptions holds
 * sam3_neck_compile_default_params() (batch 1, 72 x 72, NCHW, all levels, all cores, default
 * precision). The ranges are checked by compile(), as in C. */
struct CompileOptions {
  std::int32_t batch = sam3_neck_compile_default_params().batch;   /* 1 <= B <= 1048576 */
  std::int32_t height = sam3_neck_compile_default_params().height; /* 1 <= H <= 32768 */
  std::int32_t width = sam3_neck_compile_default_params().width;   /* 1 <= W <= 32768 */
  Layout layout = static_cast<Layout>(sam3_neck_compile_default_params().layout);
  /* Bit i set = compute level i; any non-empty subset of 0xF (grid limits: sam3_neck_compile_params). */
  std::uint32_t levels_mask = sam3_neck_compile_default_params().levels_mask;
  /* Threads for run, 0..1024; 0 = all online cores; at most the online cores run (sam3_neck.h). */
  std::int32_t threads = sam3_neck_compile_default_params().threads;
  Precision precision = static_cast<Precision>(sam3_neck_compile_default_params().precision);
  /* Element types and output layout (sam3_neck_io_params); the defaults are float32 and NCHW. */
  DType input_dtype = static_cast<DType>(sam3_neck_io_default_params().input_dtype);
  DType output_dtype = static_cast<DType>(sam3_neck_io_default_params().output_dtype);
  OutputLayout output_layout = static_cast<OutputLayout>(sam3_neck_io_default_params().output_layout);

  /* The C struct of the I/O fields. */
  sam3_neck_io_params io_to_c() const noexcept {
    sam3_neck_io_params io = sam3_neck_io_default_params();
    io.input_dtype = static_cast<sam3_neck_dtype>(input_dtype);
    io.output_dtype = static_cast<sam3_neck_dtype>(output_dtype);
    io.output_layout = static_cast<sam3_neck_output_layout>(output_layout);
    return io;
  }

  /* The C struct. */
  sam3_neck_compile_params to_c() const noexcept {
    sam3_neck_compile_params params = sam3_neck_compile_default_params();
    params.batch = batch;
    params.height = height;
    params.width = width;
    params.layout = static_cast<sam3_neck_layout>(layout);
    params.levels_mask = levels_mask;
    params.threads = threads;
    params.precision = static_cast<sam3_neck_precision>(precision);
    return params;
  }

  /* From the C struct. */
  static CompileOptions from_c(const sam3_neck_compile_params &params) noexcept {
    CompileOptions options;
    options.batch = params.batch;
    options.height = params.height;
    options.width = params.width;
    options.layout = static_cast<Layout>(params.layout);
    options.levels_mask = params.levels_mask;
    options.threads = params.threads;
    options.precision = static_cast<Precision>(params.precision);
    return options;
  }
};

/* sam3_neck_config: the loaded configuration, inferred from the checkpoint. */
struct Config {
  std::int32_t trunk_dim = 0;                /* C: input channels (1024 for SAM 3) */
  std::int32_t d_model = 0;                  /* d: output channels of every level (256) */
  std::array<float, num_levels> scales = {}; /* 4.0, 2.0, 1.0, 0.5 */
};

/* ---------------------------------------------------------------------------------------------
 * The neck
 * ------------------------------------------------------------------------------------------- */

class Neck {
public:
  /* An empty Neck (no handle). Use load() or from_memory() to get a loaded one. */
  Neck() noexcept = default;

  /* Takes ownership of a handle from sam3_neck_load_file / sam3_neck_load_memory (may be NULL). */
  explicit Neck(sam3_neck *handle) noexcept : handle_(handle) {}

  /* Loads the neck's weights from a checkpoint in any format sam3_neck_load_file reads (safetensors,
   * a PyTorch zip such as sam3.pt, a sharded index or its folder): F32, F16 and BF16 tensors,
   * converted to float32; only the neck's tensors are read.
   * Throws Error: INVALID_ARGUMENT, IO (file cannot be opened or read; the message names the path),
   * FORMAT, MISSING_TENSOR, SHAPE, DTYPE, OUT_OF_MEMORY. */
  static Neck load(const std::string &path, const LoadOptions &options = LoadOptions()) {
    const sam3_neck_load_params params = options.to_c();
    sam3_neck *handle = nullptr;
    detail::check(sam3_neck_load_file(path.c_str(), &params, &handle));
    return Neck(handle);
  }

  /* Same as load(), from a checkpoint image in memory, safetensors or PyTorch zip
   * (sam3_neck_load_memory). The bytes are only read during the call. Throws Error as load(),
   * except IO. */
  static Neck from_memory(const void *data, std::size_t size, const LoadOptions &options = LoadOptions()) {
    const sam3_neck_load_params params = options.to_c();
    sam3_neck *handle = nullptr;
    detail::check(sam3_neck_load_memory(data, size, &params, &handle));
    return Neck(handle);
  }

  /* Frees the handle (sam3_neck_free); nothing when empty. */
  ~Neck() { sam3_neck_free(handle_); }

  Neck(const Neck &) = delete;
  Neck &operator=(const Neck &) = delete;

  /* Moves the handle; `other` is left empty. */
  Neck(Neck &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

  /* Frees this Neck's handle (if any) and takes `other`'s; `other` is left empty. */
  Neck &operator=(Neck &&other) noexcept {
    if (this != &other) {
      sam3_neck_free(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }

  /* True when this Neck holds a handle. */
  explicit operator bool() const noexcept { return handle_ != nullptr; }

  /* The handle, still owned by this Neck (for calling the C API directly); NULL when empty. */
  sam3_neck *get() const noexcept { return handle_; }

  /* Gives up ownership: returns the handle (free it with sam3_neck_free) and leaves this empty. */
  sam3_neck *release() noexcept { return std::exchange(handle_, nullptr); }

  /* The loaded configuration (sam3_neck_get_config). Throws Error (INVALID_ARGUMENT when empty). */
  Config config() const {
    sam3_neck_config c;
    detail::check(sam3_neck_get_config(handle_, &c));
    Config out;
    out.trunk_dim = c.trunk_dim;
    out.d_model = c.d_model;
    for (int i = 0; i < num_levels; i++) {
      out.scales[static_cast<std::size_t>(i)] = c.scales[i];
    }
    return out;
  }

  /* Plans the neck for one input shape (sam3_neck_compile); compiling again replaces the plan, and
   * on failure the Neck is left uncompiled. Must not race with any other call on this Neck.
   * Throws Error: INVALID_ARGUMENT (empty Neck, bad batch/size/layout/mask/threads; the message
   * names the field), SHAPE (grid too small for a requested level), OUT_OF_MEMORY. */
  void compile(const CompileOptions &options = CompileOptions()) {
    const sam3_neck_compile_params params = options.to_c();
    const sam3_neck_io_params io = options.io_to_c();
    detail::check(sam3_neck_compile_io(handle_, &params, &io));
  }

  /* The options of the current plan, as passed to compile() (sam3_neck_get_compile_params,
   * sam3_neck_get_io_params). Throws Error: INVALID_ARGUMENT, NOT_COMPILED. */
  CompileOptions compile_options() const {
    sam3_neck_compile_params params;
    detail::check(sam3_neck_get_compile_params(handle_, &params));
    CompileOptions options = CompileOptions::from_c(params);
    sam3_neck_io_params io = sam3_neck_io_default_params();
    detail::check(sam3_neck_get_io_params(handle_, &io));
    options.input_dtype = static_cast<DType>(io.input_dtype);
    options.output_dtype = static_cast<DType>(io.output_dtype);
    options.output_layout = static_cast<OutputLayout>(io.output_layout);
    return options;
  }

  /* Stored shape of compiled level `level` in the compiled output layout (sam3_neck_output_shape):
   * [B, d, h, w], [B, h, w, d] or [h*w, B, d]. Throws Error as level_shape(). */
  std::vector<std::int64_t> output_shape(int level) const {
    std::array<std::int64_t, 4> shape = {0, 0, 0, 0};
    std::int32_t rank = 0;
    detail::check(sam3_neck_output_shape(handle_, static_cast<std::int32_t>(level), shape.data(), &rank));
    return std::vector<std::int64_t>(shape.begin(), shape.begin() + rank);
  }

  /* Runs a plan of any element types into caller buffers (sam3_neck_run_io): counts are in
   * elements of the compiled types (float, or std::uint16_t bits for float16 and bfloat16).
   * Throws Error as run(). */
  void run_io(const void *input, std::size_t input_count, const std::array<void *, num_levels> &outputs,
              const std::array<std::size_t, num_levels> &output_counts) {
    detail::check(sam3_neck_run_io(handle_, input, input_count, outputs.data(), output_counts.data()));
  }

  /* The position encoding of compiled level `level` in the compiled output type and layout, as raw
   * elements (std::uint16_t for the half types) written to out (sam3_neck_position_encoding_io).
   * Throws Error: INVALID_ARGUMENT, NOT_COMPILED, SHAPE (count too small). */
  void position_encoding_io(int level, void *out, std::size_t count) const {
    detail::check(sam3_neck_position_encoding_io(handle_, static_cast<std::int32_t>(level), out, count));
  }

  /* Output shape [B, d, h, w] of compiled level `level` (sam3_neck_level_shape).
   * Throws Error: INVALID_ARGUMENT (level out of range or not compiled), NOT_COMPILED. */
  std::array<std::int64_t, 4> level_shape(int level) const {
    std::array<std::int64_t, 4> shape = {0, 0, 0, 0};
    detail::check(sam3_neck_level_shape(handle_, static_cast<std::int32_t>(level), shape.data()));
    return shape;
  }

  /* Number of floats of compiled level `level`'s output (B*d*h*w). Throws as level_shape(). */
  std::size_t level_count(int level) const {
    const std::array<std::int64_t, 4> s = level_shape(level);
    return static_cast<std::size_t>(s[0] * s[1] * s[2] * s[3]);
  }

  /* Number of input floats the plan expects, B*C*H*W (sam3_neck_input_count).
   * Throws Error: INVALID_ARGUMENT, NOT_COMPILED. */
  std::size_t input_count() const {
    std::size_t count = 0;
    detail::check(sam3_neck_input_count(handle_, &count));
    return count;
  }

  /* Bytes of workspace the plan owns beyond the weights and the caller's buffers
   * (sam3_neck_workspace_size). Throws Error: INVALID_ARGUMENT, NOT_COMPILED. */
  std::size_t workspace_size() const {
    std::size_t bytes = 0;
    detail::check(sam3_neck_workspace_size(handle_, &bytes));
    return bytes;
  }

  /* The name of the code that runs the plan's widest products (sam3_neck_kernel_name, since
   * 0.5.0): "avx512", "avx2", "generic", "openblas", "amx_bf16x3", "amx_bf16" or "avx512_bf16".
   * Static storage: valid for the life of the process; never free it.
   * Throws Error: NOT_COMPILED. */
  const char *kernel_name() const {
    const char *name = nullptr;
    detail::check(sam3_neck_kernel_name(handle_, &name));
    return name;
  }

  /* The position encoding of compiled level `level`, [1, d, h, w] (d*h*w floats), computed at
   * compile time; it does not depend on the input, so call it once per compile and keep it
   * (sam3_neck_position_encoding). Throws Error: INVALID_ARGUMENT (level not compiled),
   * NOT_COMPILED. */
  std::vector<float> position_encoding(int level) const {
    const std::array<std::int64_t, 4> s = level_shape(level);
    std::vector<float> out(static_cast<std::size_t>(s[1] * s[2] * s[3]));
    detail::check(sam3_neck_position_encoding(handle_, static_cast<std::int32_t>(level), out.data(), out.size()));
    return out;
  }

  /* Runs the plan into caller buffers (sam3_neck_run), allocating nothing.
   *   input          float32 input in the compiled layout; input_count must equal input_count().
   *   outputs        outputs[i] must be non-null for every compiled level i and receives its
   *                  features [B, d, h_i, w_i] (NCHW); entries of levels not compiled are ignored
   *                  (may be null).
   *   output_counts  capacities in floats; at least level_count(i) for compiled levels.
   * The buffers must not overlap the input or each other; none is kept.
   * Throws Error: INVALID_ARGUMENT (null buffer of a compiled level; a plan compiled for NHWC or
   * sequence outputs: use run_io), NOT_COMPILED, SHAPE (input_count or a capacity wrong; the
   * message gives both sizes), DTYPE (a plan compiled for another element type: use run_io). */
  void run(const float *input, std::size_t input_count, const std::array<float *, num_levels> &outputs,
           const std::array<std::size_t, num_levels> &output_counts) {
    detail::check(sam3_neck_run(handle_, input, input_count, outputs.data(), output_counts.data()));
  }

  /* Convenience: runs the plan and returns one vector per level, index = level: the features
   * [B, d, h_i, w_i] (NCHW) of each compiled level, an empty vector for each level not compiled.
   * Allocates the outputs on every call; use the overload above to reuse buffers.
   * Throws Error as the overload above (SHAPE when input.size() != input_count()). */
  std::vector<std::vector<float>> run(const std::vector<float> &input) {
    const std::uint32_t mask = compile_options().levels_mask;
    std::vector<std::vector<float>> levels(static_cast<std::size_t>(num_levels));
    std::array<float *, num_levels> outputs = {};
    std::array<std::size_t, num_levels> counts = {};
    for (int i = 0; i < num_levels; i++) {
      if ((mask >> i) & 1u) {
        const std::size_t n = level_count(i);
        levels[static_cast<std::size_t>(i)].resize(n);
        outputs[static_cast<std::size_t>(i)] = levels[static_cast<std::size_t>(i)].data();
        counts[static_cast<std::size_t>(i)] = n;
      }
    }
    // An empty vector's data() may be null: pass a valid pointer so that the library reports the
    // wrong size (SHAPE) rather than a null input.
    static const float no_input = 0.0f;
    run(input.empty() ? &no_input : input.data(), input.size(), outputs, counts);
    return levels;
  }

private:
  sam3_neck *handle_ = nullptr;
};

} // namespace sam3neck

#endif /* __cplusplus */
#endif /* SAM3_NECK_HPP */
