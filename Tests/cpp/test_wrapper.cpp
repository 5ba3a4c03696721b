// test_wrapper.cpp — tests the C++17 wrapper include/sam3_neck.hpp against the C ABI it wraps.
//
//   c++ -std=c++17 -Wall -Wextra -Werror -pedantic -I include Tests/cpp/test_wrapper.cpp
//       -L .build/release -lsam3neck -Wl,-rpath,$PWD/.build/release -o test_wrapper
//   test_wrapper FIXTURE_DIR          (fixtures written by Tests/c/make_fixtures.py)
//
// Checks: the wrapper's outputs and position encodings are bitwise equal to the C API's on the same
// input; errors throw sam3neck::Error with the C status and a message naming the cause; the move
// semantics (run under AddressSanitizer/LeakSanitizer by Tests/cpp/run.sh, which also catches a
// double free or a leaked handle); every Precision (Fast included) within its bound, the header's
// SAM3_NECK_BOUND_* macro, of the fixture's float64 reference. Prints one line per check and at
// the end exactly "N passed, M failed"; exits 1 if M > 0.
#include "sam3_neck.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

int g_passed = 0;
int g_failed = 0;

bool check(bool ok, const std::string &what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  std::fflush(stdout);
  (ok ? g_passed : g_failed)++;
  return ok;
}

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<unsigned char> read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot read fixture " + path);
  }
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Little-endian float32 file (the fixtures); this test runs on little-endian hosts only.
std::vector<float> read_f32(const std::string &path) {
  const std::vector<unsigned char> bytes = read_bytes(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

std::map<std::string, std::string> read_meta(const std::string &path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("cannot read fixture " + path);
  }
  std::map<std::string, std::string> meta;
  std::string key;
  std::string value;
  while (in >> key >> value) {
    meta[key] = value;
  }
  return meta;
}

bool bitwise_equal(const std::vector<float> &a, const std::vector<float> &b) {
  // (memcmp must not get the null data() of an empty vector, even for 0 bytes)
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool bitwise_equal(const std::vector<std::vector<float>> &a, const std::vector<std::vector<float>> &b) {
  bool same = a.size() == b.size();
  for (size_t i = 0; same && i < a.size(); i++) {
    same = bitwise_equal(a[i], b[i]);
  }
  return same;
}

// Calls `body`, which must throw sam3neck::Error with status `want` and a message containing every
// string of `needles`. Anything else (no throw, another exception) fails the check.
template <typename Body>
void expect_error(const std::string &what, sam3_neck_status want, const std::vector<std::string> &needles, Body body) {
  try {
    body();
    check(false, what + ": expected sam3neck::Error (" + sam3neck::status_string(want) + "), nothing was thrown");
  } catch (const sam3neck::Error &e) {
    bool ok = e.status() == want;
    std::string missing;
    for (const std::string &needle : needles) {
      if (!contains(e.message(), needle)) {
        ok = false;
        missing += " \"" + needle + "\"";
      }
    }
    // what() carries the message and the status string.
    ok = ok && contains(e.what(), e.message()) && contains(e.what(), sam3neck::status_string(want));
    check(ok, what + " -> Error(" + sam3neck::status_string(e.status()) + ", \"" + e.message() + "\")" +
                  (e.status() != want ? std::string(" but expected status ") + sam3neck::status_string(want) : "") +
                  (missing.empty() ? "" : ", message lacks" + missing));
  } catch (const std::exception &e) {
    check(false, what + ": expected sam3neck::Error, got another exception: " + e.what());
  }
}

// The same plan through the C API alone: the reference the wrapper must match bit for bit.
struct CReference {
  std::vector<std::vector<float>> levels; // empty for levels not compiled
  std::vector<std::vector<float>> pos;
};

CReference run_c(const std::string &path, const sam3_neck_compile_params &params, const std::vector<float> &input) {
  CReference ref;
  ref.levels.resize(SAM3_NECK_NUM_LEVELS);
  ref.pos.resize(SAM3_NECK_NUM_LEVELS);
  sam3_neck *h = nullptr;
  if (sam3_neck_load_file(path.c_str(), nullptr, &h) != SAM3_NECK_OK || sam3_neck_compile(h, &params) != SAM3_NECK_OK) {
    const std::string message = sam3_neck_last_error();
    sam3_neck_free(h);
    throw std::runtime_error("C reference: " + message);
  }
  float *outputs[SAM3_NECK_NUM_LEVELS] = {nullptr, nullptr, nullptr, nullptr};
  size_t counts[SAM3_NECK_NUM_LEVELS] = {0, 0, 0, 0};
  for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    if ((params.levels_mask >> i) & 1u) {
      int64_t s[4];
      sam3_neck_level_shape(h, i, s);
      ref.levels[static_cast<size_t>(i)].resize(static_cast<size_t>(s[0] * s[1] * s[2] * s[3]));
      outputs[i] = ref.levels[static_cast<size_t>(i)].data();
      counts[i] = ref.levels[static_cast<size_t>(i)].size();
      ref.pos[static_cast<size_t>(i)].resize(static_cast<size_t>(s[1] * s[2] * s[3]));
      sam3_neck_position_encoding(h, i, ref.pos[static_cast<size_t>(i)].data(), ref.pos[static_cast<size_t>(i)].size());
    }
  }
  const sam3_neck_status status = sam3_neck_run(h, input.data(), input.size(), outputs, counts);
  const std::string message = sam3_neck_last_error();
  sam3_neck_free(h);
  if (status != SAM3_NECK_OK) {
    throw std::runtime_error("C reference run: " + message);
  }
  return ref;
}

struct Fixture {
  std::string dir;
  std::string tiny;
  std::map<std::string, std::string> meta;
  int trunk_dim = 0, d_model = 0, batch = 0, height = 0, width = 0;
  std::vector<float> input;

  sam3neck::CompileOptions options(std::uint32_t mask) const {
    sam3neck::CompileOptions o;
    o.batch = batch;
    o.height = height;
    o.width = width;
    o.levels_mask = mask;
    o.threads = 2;
    return o;
  }
};

// ------------------------------------------------------------------------------------------------

void test_versions_and_types() {
  check(sam3neck::abi_version() == SAM3_NECK_ABI_VERSION, "abi_version() == SAM3_NECK_ABI_VERSION");
  std::ostringstream v;
  v << SAM3_NECK_VERSION_MAJOR << '.' << SAM3_NECK_VERSION_MINOR << '.' << SAM3_NECK_VERSION_PATCH;
  check(sam3neck::version() == v.str(), "version() == \"" + v.str() + "\" (the header's macros)");

  static_assert(!std::is_copy_constructible<sam3neck::Neck>::value, "Neck is not copyable");
  static_assert(!std::is_copy_assignable<sam3neck::Neck>::value, "Neck is not copy-assignable");
  static_assert(std::is_nothrow_move_constructible<sam3neck::Neck>::value, "noexcept move");
  static_assert(std::is_nothrow_move_assignable<sam3neck::Neck>::value, "noexcept move-assign");
  static_assert(std::is_base_of<std::runtime_error, sam3neck::Error>::value, "Error is runtime_error");
  check(true, "Neck is move-only with noexcept moves; Error derives from std::runtime_error");

  const sam3_neck_compile_params c = sam3_neck_compile_default_params();
  const sam3_neck_compile_params w = sam3neck::CompileOptions().to_c();
  check(c.batch == w.batch && c.height == w.height && c.width == w.width && c.layout == w.layout &&
            c.levels_mask == w.levels_mask && c.threads == w.threads && c.precision == w.precision,
        "CompileOptions() equals sam3_neck_compile_default_params()");
  const sam3_neck_load_params lc = sam3_neck_load_default_params();
  const sam3_neck_load_params lw = sam3neck::LoadOptions().to_c();
  check(lc.kind == lw.kind && lw.prefix == nullptr && lc.prefix == nullptr,
        "LoadOptions() equals sam3_neck_load_default_params() (no prefix)");
}

void test_outputs_match_c(const Fixture &f) {
  for (const std::uint32_t mask : {0xFu, 0x5u, 0x8u}) {
    char tag[32];
    std::snprintf(tag, sizeof tag, "mask 0x%X", static_cast<unsigned>(mask));
    const sam3neck::CompileOptions options = f.options(mask);
    const CReference ref = run_c(f.tiny, options.to_c(), f.input);

    sam3neck::Neck neck = sam3neck::Neck::load(f.tiny);
    neck.compile(options);
    const sam3neck::CompileOptions back = neck.compile_options();
    check(back.batch == f.batch && back.height == f.height && back.width == f.width && back.levels_mask == mask &&
              back.threads == 2 && back.layout == sam3neck::Layout::NCHW &&
              back.precision == sam3neck::Precision::Default,
          std::string(tag) + ": compile_options() returns what compile() got");
    check(neck.input_count() == f.input.size(), std::string(tag) + ": input_count() == B*C*H*W");

    // run(vector): one vector per level, empty for the levels not compiled.
    const std::vector<std::vector<float>> out = neck.run(f.input);
    check(out.size() == SAM3_NECK_NUM_LEVELS, std::string(tag) + ": run(vector) returns 4 vectors");
    for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
      const size_t li = static_cast<size_t>(i);
      const std::string what = std::string(tag) + ", level " + std::to_string(i);
      if ((mask >> i) & 1u) {
        const std::array<int64_t, 4> s = neck.level_shape(i);
        check(s[0] == f.batch && s[1] == f.d_model &&
                  static_cast<size_t>(s[0] * s[1] * s[2] * s[3]) == ref.levels[li].size() &&
                  neck.level_count(i) == ref.levels[li].size(),
              what + ": level_shape() is [B, d, h, w] and matches the C outputs' size");
        check(!out[li].empty() && bitwise_equal(out[li], ref.levels[li]),
              what + ": run(vector) output bitwise equal to sam3_neck_run's");
        check(bitwise_equal(neck.position_encoding(i), ref.pos[li]),
              what + ": position_encoding() bitwise equal to sam3_neck_position_encoding's");
      } else {
        check(out[li].empty(), what + ": not compiled -> empty vector");
        expect_error(what + ": level_shape() of a level not compiled", SAM3_NECK_ERR_INVALID_ARGUMENT,
                     {"level " + std::to_string(i), "mask"}, [&] { neck.level_shape(i); });
      }
    }

    // run(pointers): into caller buffers, reused.
    std::array<float *, SAM3_NECK_NUM_LEVELS> ptrs = {};
    std::array<size_t, SAM3_NECK_NUM_LEVELS> counts = {};
    std::vector<std::vector<float>> bufs(SAM3_NECK_NUM_LEVELS);
    for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
      if ((mask >> i) & 1u) {
        bufs[static_cast<size_t>(i)].assign(neck.level_count(i), -1.0f);
        ptrs[static_cast<size_t>(i)] = bufs[static_cast<size_t>(i)].data();
        counts[static_cast<size_t>(i)] = bufs[static_cast<size_t>(i)].size();
      }
    }
    neck.run(f.input.data(), f.input.size(), ptrs, counts);
    bool same = true;
    for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
      same = same && bitwise_equal(bufs[static_cast<size_t>(i)], ref.levels[static_cast<size_t>(i)]);
    }
    check(same, std::string(tag) + ": run(pointers) outputs bitwise equal to sam3_neck_run's");
    check(neck.workspace_size() > 0, std::string(tag) + ": workspace_size() > 0");
    {
      const char *c_name = nullptr;
      const std::string name = neck.kernel_name();
      check(sam3_neck_kernel_name(neck.get(), &c_name) == SAM3_NECK_OK && c_name == neck.kernel_name(),
            std::string(tag) + ": kernel_name() is sam3_neck_kernel_name's static string");
      check(name == "avx512" || name == "avx2" || name == "generic" || name == "openblas" || name == "amx_bf16x3" ||
                name == "amx_bf16" || name == "avx512_bf16",
            std::string(tag) + ": kernel_name() '" + name + "' is a documented name");
    }
  }
}

// float16 bits -> float, written out here (independently of the library's conversions).
float half_to_float(std::uint16_t h) {
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -24);
  if (e == 31) return m ? std::numeric_limits<float>::quiet_NaN() : sign * std::numeric_limits<float>::infinity();
  return sign * std::ldexp(static_cast<float>(1024 + m), e - 25);
}

// The I/O options: a float16 sequence output is the float32 NCHW output, permuted to [h*w, B, d]
// and rounded to half precision (relative error at most 2^-11 for normal values).
void test_io_options(const Fixture &f) {
  sam3neck::CompileOptions options = f.options(0xF);
  const CReference ref = run_c(f.tiny, options.to_c(), f.input);
  options.output_dtype = sam3neck::DType::Float16;
  options.output_layout = sam3neck::OutputLayout::Sequence;
  sam3neck::Neck neck = sam3neck::Neck::load(f.tiny);
  neck.compile(options);
  const sam3neck::CompileOptions back = neck.compile_options();
  check(back.output_dtype == sam3neck::DType::Float16 && back.output_layout == sam3neck::OutputLayout::Sequence &&
            back.input_dtype == sam3neck::DType::Float32,
        "io: compile_options() returns the I/O options compile() got");
  std::array<void *, SAM3_NECK_NUM_LEVELS> ptrs = {};
  std::array<size_t, SAM3_NECK_NUM_LEVELS> counts = {};
  std::vector<std::vector<std::uint16_t>> bufs(SAM3_NECK_NUM_LEVELS);
  for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    bufs[static_cast<size_t>(i)].assign(neck.level_count(i), 0);
    ptrs[static_cast<size_t>(i)] = bufs[static_cast<size_t>(i)].data();
    counts[static_cast<size_t>(i)] = bufs[static_cast<size_t>(i)].size();
  }
  neck.run_io(f.input.data(), f.input.size(), ptrs, counts);
  for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    const std::array<int64_t, 4> s = neck.level_shape(i); // [B, d, h, w]
    const std::vector<int64_t> seq = neck.output_shape(i);
    check(seq.size() == 3 && seq[0] == s[2] * s[3] && seq[1] == s[0] && seq[2] == s[1],
          "io: output_shape(" + std::to_string(i) + ") is [h*w, B, d]");
    double worst = 0;
    for (int64_t b = 0; b < s[0]; b++)
      for (int64_t c = 0; c < s[1]; c++)
        for (int64_t p = 0; p < s[2] * s[3]; p++) {
          const float want = ref.levels[static_cast<size_t>(i)][static_cast<size_t>((b * s[1] + c) * s[2] * s[3] + p)];
          const float got = half_to_float(bufs[static_cast<size_t>(i)][static_cast<size_t>((p * s[0] + b) * s[1] + c)]);
          if (std::fabs(want) > 1e-4f)
            worst = std::max(worst, std::fabs(static_cast<double>(got) - want) / std::fabs(want));
        }
    check(worst <= std::ldexp(1.0, -11), "io: level " + std::to_string(i) +
                                             " float16 sequence output is the float32 output rounded (relative " +
                                             std::to_string(worst) + ")");
  }
  std::vector<std::uint16_t> pos(neck.level_count(2) / static_cast<size_t>(f.batch));
  neck.position_encoding_io(2, pos.data(), pos.size());
  check(std::fabs(half_to_float(pos[1]) - ref.pos[2][static_cast<size_t>(f.height * f.width)]) <= 1e-3f,
        "io: position_encoding_io(2) holds channel 1 of pixel 0 at index 1 (sequence layout)");
  expect_error("io: run() of a float16 plan", SAM3_NECK_ERR_DTYPE, {"float16", "sam3_neck_run_io"},
               [&] { neck.run(f.input); });
  // A float32 plan with NHWC or sequence outputs: run(), which promises [B, d, h, w], refuses it.
  for (const sam3neck::OutputLayout layout : {sam3neck::OutputLayout::NHWC, sam3neck::OutputLayout::Sequence}) {
    sam3neck::CompileOptions o = f.options(0xF);
    o.output_layout = layout;
    neck.compile(o);
    expect_error("io: run() of a float32 plan with " +
                     std::string(layout == sam3neck::OutputLayout::NHWC ? "NHWC" : "sequence") + " outputs",
                 SAM3_NECK_ERR_INVALID_ARGUMENT, {"sam3_neck_run_io", "NCHW"}, [&] { neck.run(f.input); });
  }
}

// Normalised max error max|out - ref| / max|ref| (+inf on a NaN difference), as the C test's norm_err.
double norm_err(const std::vector<float> &out, const std::vector<double> &ref) {
  if (out.size() != ref.size() || out.empty()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (size_t k = 0; k < out.size(); k++) {
    const double e = std::fabs(static_cast<double>(out[k]) - ref[k]);
    if (!(e <= diff)) diff = std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
    scale = std::max(scale, std::fabs(ref[k]));
  }
  return scale > 0 ? diff / scale : diff;
}

// Every precision through the wrapper: compile_options() returns it, the outputs are bitwise the C
// API's for the same plan and within the header's bound (SAM3_NECK_BOUND_*) of the fixture's
// float64 reference; an unknown precision throws INVALID_ARGUMENT naming the accepted values.
void test_precisions(const Fixture &f) {
  static_assert(static_cast<int>(sam3neck::Precision::Default) == SAM3_NECK_PRECISION_DEFAULT &&
                    static_cast<int>(sam3neck::Precision::Strict) == SAM3_NECK_PRECISION_STRICT &&
                    static_cast<int>(sam3neck::Precision::Fast) == SAM3_NECK_PRECISION_FAST,
                "Precision holds the C values");
  static_assert(sam3neck::bound(sam3neck::Precision::Default) == SAM3_NECK_BOUND_DEFAULT &&
                    sam3neck::bound(sam3neck::Precision::Strict) == SAM3_NECK_BOUND_STRICT &&
                    sam3neck::bound(sam3neck::Precision::Fast) == SAM3_NECK_BOUND_FAST,
                "bound() is the header's macros");
  check(std::isnan(sam3neck::bound(static_cast<sam3neck::Precision>(3))), "bound() of an unknown precision is NaN");

  std::vector<std::vector<double>> refs(SAM3_NECK_NUM_LEVELS);
  for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
    const std::vector<unsigned char> bytes = read_bytes(f.dir + "/ref_level" + std::to_string(i) + ".f64");
    refs[static_cast<size_t>(i)].resize(bytes.size() / sizeof(double));
    std::memcpy(refs[static_cast<size_t>(i)].data(), bytes.data(),
                refs[static_cast<size_t>(i)].size() * sizeof(double));
  }
  const struct {
    sam3neck::Precision precision;
    double bound;
    const char *name;
  } modes[] = {{sam3neck::Precision::Fast, SAM3_NECK_BOUND_FAST, "Fast"},
               {sam3neck::Precision::Default, SAM3_NECK_BOUND_DEFAULT, "Default"},
               {sam3neck::Precision::Strict, SAM3_NECK_BOUND_STRICT, "Strict"}};
  for (const auto &mode : modes) {
    const std::string tag = std::string("precision ") + mode.name;
    sam3neck::CompileOptions options = f.options(0xF);
    options.precision = mode.precision;
    const CReference ref = run_c(f.tiny, options.to_c(), f.input);
    sam3neck::Neck neck = sam3neck::Neck::load(f.tiny);
    neck.compile(options);
    check(neck.compile_options().precision == mode.precision, tag + ": compile_options() returns it");
    const std::vector<std::vector<float>> out = neck.run(f.input);
    check(bitwise_equal(out, ref.levels), tag + ": run() bitwise equal to sam3_neck_run's");
    for (int i = 0; i < SAM3_NECK_NUM_LEVELS; i++) {
      const double e = norm_err(out[static_cast<size_t>(i)], refs[static_cast<size_t>(i)]);
      std::ostringstream what;
      what << tag << ": level " << i << " normalised max error " << e << " <= " << mode.bound
           << " against the float64 reference";
      check(e <= mode.bound, what.str());
    }
  }

  sam3neck::Neck neck = sam3neck::Neck::load(f.tiny);
  for (const int bad : {3, 1000000}) {
    sam3neck::CompileOptions options = f.options(0xF);
    options.precision = static_cast<sam3neck::Precision>(bad);
    expect_error("compile() with precision " + std::to_string(bad), SAM3_NECK_ERR_INVALID_ARGUMENT,
                 {"SAM3_NECK_PRECISION_DEFAULT (0)", "SAM3_NECK_PRECISION_STRICT (1)", "SAM3_NECK_PRECISION_FAST (2)",
                  "got " + std::to_string(bad)},
                 [&] { neck.compile(options); });
  }
}

void test_load_variants(const Fixture &f) {
  const sam3neck::CompileOptions options = f.options(0xF);
  const std::vector<std::vector<float>> from_file = [&] {
    sam3neck::Neck n = sam3neck::Neck::load(f.tiny);
    n.compile(options);
    return n.run(f.input);
  }();

  const std::vector<unsigned char> bytes = read_bytes(f.tiny);
  sam3neck::Neck mem = sam3neck::Neck::from_memory(bytes.data(), bytes.size());
  mem.compile(options);
  check(bitwise_equal(mem.run(f.input), from_file), "from_memory(): same outputs as load()");

  const sam3neck::Config c = mem.config();
  check(c.trunk_dim == f.trunk_dim && c.d_model == f.d_model && c.scales[0] == 4.0f && c.scales[1] == 2.0f &&
            c.scales[2] == 1.0f && c.scales[3] == 0.5f,
        "config(): trunk_dim, d_model and scales of the fixture");

  sam3neck::LoadOptions custom;
  custom.prefix = "model.backbone.";
  sam3neck::Neck prefixed = sam3neck::Neck::load(f.dir + "/custom_prefix.safetensors", custom);
  prefixed.compile(options);
  check(bitwise_equal(prefixed.run(f.input), from_file), "LoadOptions.prefix: custom-prefix file, same outputs");
  expect_error("custom-prefix file without LoadOptions.prefix", SAM3_NECK_ERR_MISSING_TENSOR, {"convs"},
               [&] { sam3neck::Neck::load(f.dir + "/custom_prefix.safetensors"); });

  sam3neck::LoadOptions sam2;
  sam2.kind = sam3neck::Kind::Sam2;
  sam3neck::Neck tracker = sam3neck::Neck::load(f.dir + "/sam2_only.safetensors", sam2);
  check(tracker.config().d_model == f.d_model, "LoadOptions.kind = Sam2 loads the tracker neck");
  expect_error("sam2-only file with the default kind", SAM3_NECK_ERR_MISSING_TENSOR, {"convs"},
               [&] { sam3neck::Neck::load(f.dir + "/sam2_only.safetensors"); });
}

void test_errors(const Fixture &f) {
  const std::string missing_file = f.dir + "/no_such_file.safetensors";
  expect_error("load() of a missing file", SAM3_NECK_ERR_IO, {missing_file},
               [&] { sam3neck::Neck::load(missing_file); });
  expect_error("load() of a checkpoint without a needed tensor", SAM3_NECK_ERR_MISSING_TENSOR,
               {f.meta.at("missing_tensor_name")},
               [&] { sam3neck::Neck::load(f.dir + "/missing_tensor.safetensors"); });
  expect_error("load() of a tensor with a wrong shape", SAM3_NECK_ERR_SHAPE, {f.meta.at("bad_shape_tensor_name")},
               [&] { sam3neck::Neck::load(f.dir + "/bad_shape.safetensors"); });
  const std::vector<unsigned char> garbage = read_bytes(f.dir + "/garbage.safetensors");
  expect_error("from_memory() of garbage", SAM3_NECK_ERR_FORMAT, {},
               [&] { sam3neck::Neck::from_memory(garbage.data(), garbage.size()); });
  expect_error("from_memory(nullptr, 0)", SAM3_NECK_ERR_INVALID_ARGUMENT, {"data"},
               [&] { sam3neck::Neck::from_memory(nullptr, 0); });

  sam3neck::Neck neck = sam3neck::Neck::load(f.tiny);
  expect_error("input_count() before compile()", SAM3_NECK_ERR_NOT_COMPILED, {"sam3_neck_compile"},
               [&] { neck.input_count(); });
  expect_error("run() before compile()", SAM3_NECK_ERR_NOT_COMPILED, {"compile"}, [&] { neck.run(f.input); });
  expect_error("kernel_name() before compile()", SAM3_NECK_ERR_NOT_COMPILED, {"sam3_neck_compile"},
               [&] { neck.kernel_name(); });

  sam3neck::CompileOptions bad = f.options(0xF);
  bad.batch = 0;
  expect_error("compile() with batch 0", SAM3_NECK_ERR_INVALID_ARGUMENT, {"batch", "got 0"},
               [&] { neck.compile(bad); });
  bad = f.options(0x0);
  expect_error("compile() with an empty levels mask", SAM3_NECK_ERR_INVALID_ARGUMENT, {"levels mask", "0x0"},
               [&] { neck.compile(bad); });
  bad = f.options(0xF);
  bad.threads = 5000;
  expect_error("compile() with threads 5000", SAM3_NECK_ERR_INVALID_ARGUMENT, {"threads", "5000"},
               [&] { neck.compile(bad); });
  bad = f.options(0xF);
  bad.height = 1;
  expect_error("compile() of level 3 on a 1-row grid", SAM3_NECK_ERR_SHAPE, {"level 3"}, [&] { neck.compile(bad); });
  expect_error("a failed compile() leaves the Neck uncompiled", SAM3_NECK_ERR_NOT_COMPILED, {},
               [&] { neck.input_count(); });

  neck.compile(f.options(0x3));
  const std::string n = std::to_string(f.input.size());
  const std::vector<float> short_input(f.input.begin(), f.input.end() - 1);
  expect_error("run() with one input float too few", SAM3_NECK_ERR_SHAPE,
               {"input_count", std::to_string(f.input.size() - 1), n}, [&] { neck.run(short_input); });
  expect_error("run() with an empty input vector", SAM3_NECK_ERR_SHAPE, {"input_count is 0", n},
               [&] { neck.run(std::vector<float>()); });

  std::vector<float> out0(neck.level_count(0));
  std::vector<float> out1(neck.level_count(1) - 1);
  expect_error("run(pointers) with a level-1 buffer one float short", SAM3_NECK_ERR_SHAPE, {"output_counts[1]"}, [&] {
    neck.run(f.input.data(), f.input.size(), {out0.data(), out1.data(), nullptr, nullptr},
             {out0.size(), out1.size(), 0, 0});
  });
  expect_error(
      "run(pointers) with a null buffer for compiled level 0", SAM3_NECK_ERR_INVALID_ARGUMENT, {"outputs[0]"}, [&] {
        neck.run(f.input.data(), f.input.size(), {nullptr, out1.data(), nullptr, nullptr}, {0, out1.size(), 0, 0});
      });
  expect_error("level_shape(4)", SAM3_NECK_ERR_INVALID_ARGUMENT, {"level", "got 4"}, [&] { neck.level_shape(4); });
  expect_error("position_encoding(-1)", SAM3_NECK_ERR_INVALID_ARGUMENT, {"got -1"},
               [&] { neck.position_encoding(-1); });
  check(neck.run(f.input).size() == SAM3_NECK_NUM_LEVELS, "the Neck still runs after the errors");
}

void test_moves(const Fixture &f) {
  sam3neck::Neck empty;
  check(!empty && empty.get() == nullptr, "default-constructed Neck is empty");
  expect_error("config() of an empty Neck", SAM3_NECK_ERR_INVALID_ARGUMENT, {"NULL"}, [&] { empty.config(); });

  sam3neck::Neck a = sam3neck::Neck::load(f.tiny);
  a.compile(f.options(0x1));
  sam3_neck *raw = a.get();
  check(static_cast<bool>(a) && raw != nullptr, "load() gives a non-empty Neck");

  sam3neck::Neck b(std::move(a));
  check(!a && a.get() == nullptr, "move construction empties the source"); // NOLINT(bugprone-use-after-move)
  check(b.get() == raw && b.input_count() == f.input.size(), "move construction transfers the compiled handle");
  expect_error("compile() on a moved-from Neck", SAM3_NECK_ERR_INVALID_ARGUMENT, {"NULL"},
               [&] { a.compile(f.options(0x1)); });
  expect_error("run() on a moved-from Neck", SAM3_NECK_ERR_INVALID_ARGUMENT, {"NULL"}, [&] { a.run(f.input); });

  {
    sam3neck::Neck c = sam3neck::Neck::load(f.tiny); // its handle must be freed by the assignment
    c = std::move(b);
    check(!b && c.get() == raw && c.input_count() == f.input.size(),
          "move assignment transfers the handle and empties the source");
    sam3neck::Neck &alias = c;
    c = std::move(alias);
    check(c.get() == raw, "self move assignment keeps the handle");
  } // c frees raw here; a and b are empty: their destructors must do nothing (ASan: no double free)

  a = sam3neck::Neck::load(f.tiny);
  check(static_cast<bool>(a), "a moved-from Neck can be assigned a new one");
  a = sam3neck::Neck();
  check(!a, "assigning an empty Neck frees the handle and leaves it empty");

  sam3neck::Neck d = sam3neck::Neck::load(f.tiny);
  sam3_neck *released = d.release();
  check(!d && released != nullptr, "release() hands over the handle and empties the Neck");
  sam3neck::Neck adopted(released);
  check(adopted.get() == released && adopted.config().d_model == f.d_model,
        "Neck(sam3_neck*) adopts a released handle");

  std::vector<sam3neck::Neck> many;
  for (int i = 0; i < 5; i++) {
    many.push_back(sam3neck::Neck::load(f.tiny)); // reallocation moves the elements
  }
  bool all = true;
  for (const sam3neck::Neck &n : many) {
    all = all && n && n.config().trunk_dim == f.trunk_dim;
  }
  check(all, "Necks survive std::vector reallocation (moves)");
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  try {
    Fixture f;
    f.dir = argv[1];
    f.tiny = f.dir + "/tiny.safetensors";
    f.meta = read_meta(f.dir + "/meta.txt");
    f.trunk_dim = std::stoi(f.meta.at("trunk_dim"));
    f.d_model = std::stoi(f.meta.at("d_model"));
    f.batch = std::stoi(f.meta.at("batch"));
    f.height = std::stoi(f.meta.at("height"));
    f.width = std::stoi(f.meta.at("width"));
    f.input = read_f32(f.dir + "/input.f32");
    if (f.input.size() != static_cast<size_t>(f.batch * f.trunk_dim * f.height * f.width)) {
      throw std::runtime_error("input.f32 does not match meta.txt");
    }

    test_versions_and_types();
    test_outputs_match_c(f);
    test_io_options(f);
    test_precisions(f);
    test_load_variants(f);
    test_errors(f);
    test_moves(f);
  } catch (const std::exception &e) {
    check(false, std::string("unexpected exception: ") + e.what());
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
