// Bad input, tried as a hostile user would (issue 10 §2): files and configs crafted to crash a
// reader, to be accepted with a silently wrong meaning, or to get a generic message. Every case
// writes the hostile file into a temp folder, calls the library's reader directly and asserts
// that a moeseg::Error is thrown whose message names the file and the tensor / key / value at
// fault (any other exception type fails the case: it would reach the CLI as "unexpected error").
// Run: ctest --test-dir build -R '^badinput/'   (the fuzz targets of tests/fuzz probe the same
// readers with random inputs; these are the deliberate ones).
#include <doctest/doctest.h>

#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/npy.h"
#include "core/safetensors.h"
#include "core/value_checks.h"
#include "support/gradcheck.h"
#include "data/a2d2.h"
#include "data/camvid.h"
#include "data/image_io.h"
#include "data/synthetic_scenes.h"
#include "kernels/cross_entropy.h"
#include "kernels/gpu_kernels.h"
#include "kernels/reduce.h"
#include "layers/linear_layer.h"
#include "models/ensemble.h"
#include "models/gates.h"
#include "models/registry.h"
#include "tests/support/temp_dir.h"
#include "training/checkpoint.h"
#include "training/experiment_config.h"
#include "training/experiments/study.h"
#include "training/optimizer.h"

using namespace moeseg;
using moeseg::testing::TempDir;
using json = nlohmann::json;

namespace {

using moeseg::testing::error_of;   // tests/support/gradcheck.h

bool has(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_bytes(path, std::string(bytes.begin(), bytes.end()));
}

// ---- safetensors files built by hand ----------------------------------------------------------
std::string safetensors_bytes(const json& header, const std::string& data) {
  std::string h = header.dump();
  std::string out(8, '\0');
  const uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  return out + h + data;
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

// ---- .npy files built by hand -----------------------------------------------------------------
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h.push_back(' ');
  h.push_back('\n');
  std::string out = "\x93NUMPY\x01";
  out.push_back('\0');
  out.push_back(static_cast<char>(h.size() & 0xff));
  out.push_back(static_cast<char>(h.size() >> 8));
  return out + h + data;
}

// ---- PNG pieces (CRC-32, stored zlib) ----------------------------------------
uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}
void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}
void chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_be32(out, crc32(out.data() + start, out.size() - start));
}
// A zlib stream of stored (uncompressed) deflate blocks with its Adler-32: enough for PNGs whose
// every byte the test controls.
std::vector<uint8_t> zlib(const std::vector<uint8_t>& raw) {
  std::vector<uint8_t> z = {0x78, 0x01};
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(raw.size() - pos, 65535);
    z.push_back(pos + n == raw.size() ? 1 : 0);
    z.insert(z.end(), {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(~n),
                       static_cast<uint8_t>(~n >> 8)});
    z.insert(z.end(), raw.begin() + static_cast<std::ptrdiff_t>(pos), raw.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < raw.size());
  uint32_t a = 1, b = 0;
  for (uint8_t v : raw) {
    a = (a + v) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(z, (b << 16) | a);
  return z;
}
// A gray 8-bit PNG of w x h whose IHDR may lie about the size; `rows` are the filtered scanlines.
std::vector<uint8_t> png_gray(uint32_t w, uint32_t h, const std::vector<uint8_t>& rows, uint8_t interlace = 0) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, interlace});
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", zlib(rows));
  chunk(out, "IEND", {});
  return out;
}
std::vector<uint8_t> gray_rows(int w, int h) {
  std::vector<uint8_t> rows;
  for (int y = 0; y < h; ++y) {
    rows.push_back(0);
    for (int x = 0; x < w; ++x) rows.push_back(static_cast<uint8_t>(x * 17 + y * 5));
  }
  return rows;
}
// Offset of the first byte of chunk `type`'s data.
size_t chunk_data_offset(const std::vector<uint8_t>& png, const char* type) {
  for (size_t p = 8; p + 8 <= png.size();) {
    const uint32_t len = (uint32_t{png[p]} << 24) | (uint32_t{png[p + 1]} << 16) | (uint32_t{png[p + 2]} << 8) | png[p + 3];
    if (std::memcmp(&png[p + 4], type, 4) == 0) return p + 8;
    p += 12 + len;
  }
  FAIL("chunk ", type, " not found");
  return 0;
}
void fix_crc(std::vector<uint8_t>& png, const char* type) {
  const size_t d = chunk_data_offset(png, type);
  const uint32_t len = (uint32_t{png[d - 8]} << 24) | (uint32_t{png[d - 7]} << 16) | (uint32_t{png[d - 6]} << 8) | png[d - 5];
  const uint32_t c = crc32(&png[d - 4], len + 4);
  for (int i = 0; i < 4; ++i) png[d + len + i] = static_cast<uint8_t>(c >> (24 - 8 * i));
}

std::string fuzz_corpus(const std::string& target) {
  return std::string(MOESEG_FIXTURE_DIR) + "/../fuzz/corpus/" + target;
}

}  // namespace

// ============================== safetensors ==============================

TEST_CASE("safetensors: a shape whose element count overflows is refused, not allocated") {
  TempDir tmp("badinput");
  const std::string path = tmp.str("overflow.safetensors");
  // [2^62 + 1, 3, 16, 16] float32: the count wraps 64 bits; the old reader aborted in malloc.
  const json h = {{"x", {{"dtype", "F32"}, {"shape", {(uint64_t{1} << 62) + 1, 3, 16, 16}}, {"data_offsets", {0, 16}}}}};
  write_bytes(path, safetensors_bytes(h, floats({1, 2, 3, 4})));
  const std::string msg = error_of([&] { load_safetensors(path); });
  CHECK(has(msg, path));
  CHECK(has(msg, "tensor 'x'"));
  CHECK(has(msg, "overflow"));
  CHECK(has(msg, "[4611686018427387905, 3, 16, 16]"));
  // A count that fits in 64 bits but whose byte size does not.
  const json h2 = {{"y", {{"dtype", "F64"}, {"shape", {uint64_t{1} << 61, 2}}, {"data_offsets", {0, 16}}}}};
  write_bytes(path, safetensors_bytes(h2, floats({1, 2, 3, 4})));
  const std::string msg2 = error_of([&] { load_safetensors(path); });
  CHECK(has(msg2, "tensor 'y'"));
  CHECK(has(msg2, "overflow"));
}

TEST_CASE("safetensors: overlapping tensors, holes and unindexed trailing bytes are refused") {
  TempDir tmp("badinput");
  const std::string path = tmp.str("alias.safetensors");
  const std::string data = floats({1, 2, 3, 4, 5, 6});   // 24 bytes
  // a = bytes [0,16), b = bytes [8,24): two names for overlapping memory.
  json h = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
            {"b", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}}}};
  write_bytes(path, safetensors_bytes(h, data));
  std::string msg = error_of([&] { load_safetensors(path); });
  CHECK(has(msg, path));
  CHECK(has(msg, "'a' [0, 16]"));
  CHECK(has(msg, "'b' [8, 24]"));
  CHECK(has(msg, "overlap"));
  // The same buffer under two names (full aliasing).
  h = {{"a", {{"dtype", "F32"}, {"shape", {6}}, {"data_offsets", {0, 24}}}},
       {"b", {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 24}}}}};
  write_bytes(path, safetensors_bytes(h, data));
  CHECK(has(error_of([&] { load_safetensors(path); }), "overlap"));
  // A hole between two tensors.
  h = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
       {"b", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {12, 24}}}}};
  write_bytes(path, safetensors_bytes(h, data));
  msg = error_of([&] { load_safetensors(path); });
  CHECK(has(msg, "bytes [8, 12)"));
  CHECK(has(msg, "before 'b'"));
  // Bytes after the last tensor.
  h = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}}};
  write_bytes(path, safetensors_bytes(h, data));
  msg = error_of([&] { load_safetensors(path); });
  CHECK(has(msg, "8 bytes after the last tensor ('a')"));
  // Offsets past the end of the file.
  h = {{"a", {{"dtype", "F32"}, {"shape", {250}}, {"data_offsets", {0, 1000}}}}};
  write_bytes(path, safetensors_bytes(h, data));
  msg = error_of([&] { load_safetensors(path); });
  CHECK(has(msg, "tensor 'a'"));
  CHECK(has(msg, "outside the 24-byte data section"));
  // The well-formed tiling of the same bytes loads.
  h = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
       {"b", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}}},
       {"e", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {24, 24}}}}};
  write_bytes(path, safetensors_bytes(h, data));
  const TensorFile f = load_safetensors(path);
  CHECK(f.get("b").to_vector<float>() == std::vector<float>{3, 4, 5, 6});
}

TEST_CASE("safetensors: header values of the wrong JSON type name the tensor and the key") {
  TempDir tmp("badinput");
  const std::string path = tmp.str("types.safetensors");
  const std::string data = floats({1, 2});
  struct Case {
    json info;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {{{"dtype", 5}, {"shape", {2}}, {"data_offsets", {0, 8}}}, "'dtype' must be a string"},
      {{{"dtype", "F32"}, {"shape", "2"}, {"data_offsets", {0, 8}}}, "'shape' must be a list"},
      {{{"dtype", "F32"}, {"shape", {-2}}, {"data_offsets", {0, 8}}}, "'shape' must hold non-negative integers, got -2"},
      {{{"dtype", "F32"}, {"shape", {2.5}}, {"data_offsets", {0, 8}}}, "'shape' must hold non-negative integers, got 2.5"},
      {{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0}}}, "'data_offsets' must be [begin, end]"},
      {{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {"0", "8"}}}, "'data_offsets' must hold non-negative integers"},
      {{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 0}}}, "data offsets [8, 0]"},
      {{{"dtype", "Q7"}, {"shape", {2}}, {"data_offsets", {0, 8}}}, "unsupported dtype Q7"},
      {json::array({1, 2}), "must be an object {dtype, shape, data_offsets}"},
      {{{"shape", {2}}, {"data_offsets", {0, 8}}}, "lacks dtype, shape or data_offsets"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.info.dump());
    write_bytes(path, safetensors_bytes({{"w", c.info}}, data));
    const std::string msg = error_of([&] { load_safetensors(path); });
    CHECK(has(msg, path));
    CHECK(has(msg, "tensor 'w'"));
    CHECK(has(msg, c.expect));
  }
  // The header itself must be an object; __metadata__ an object.
  write_bytes(path, safetensors_bytes(json::array({1}), ""));
  CHECK(has(error_of([&] { load_safetensors(path); }), "header must be a JSON object"));
  write_bytes(path, safetensors_bytes({{"__metadata__", 3}}, ""));
  CHECK(has(error_of([&] { load_safetensors(path); }), "'__metadata__' must be an object"));
}

TEST_CASE("safetensors: duplicate names, a lying header length and non-regular files are refused") {
  TempDir tmp("badinput");
  const std::string path = tmp.str("dup.safetensors");
  const std::string h = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string bytes(8, '\0');
  const uint64_t n = h.size();
  std::memcpy(bytes.data(), &n, 8);
  write_bytes(path, bytes + h + floats({1}));
  std::string msg = error_of([&] { load_safetensors(path); });
  CHECK(has(msg, path));
  CHECK(has(msg, "names tensor 'w' more than once"));
  // A header length of 2^63: no allocation, a message.
  std::string lie(8, '\0');
  const uint64_t big = uint64_t{1} << 63;
  std::memcpy(lie.data(), &big, 8);
  write_bytes(path, lie + "{}");
  msg = error_of([&] { load_safetensors(path); });
  CHECK(has(msg, "header length 9223372036854775808 exceeds file size 10"));
  // A folder (or /dev/zero, which would be read forever) is not a tensor file.
  msg = error_of([&] { load_safetensors(tmp.str()); });
  CHECK(has(msg, tmp.str()));
  CHECK(has(msg, "not a regular file"));
  if (std::filesystem::exists("/dev/zero")) CHECK(has(error_of([] { load_safetensors("/dev/zero"); }), "not a regular file"));
}

// ============================== .npy ==============================

TEST_CASE("npy: a shape whose size overflows, or a dimension beyond 64 bits, is refused") {
  TempDir tmp("badinput");
  const std::string path = tmp.str("overflow.npy");
  write_bytes(path, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387905, 3, 16, 16), }",
                              std::string(64, '\0')));
  std::string msg = error_of([&] { load_npy(path); });
  CHECK(has(msg, path));
  CHECK(has(msg, "overflow"));
  CHECK(has(msg, "[4611686018427387905, 3, 16, 16]"));
  // The old reader threw std::out_of_range from std::stoll ("unexpected error" in the CLI).
  write_bytes(path, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""));
  msg = error_of([&] { load_npy(path); });
  CHECK(has(msg, path));
  CHECK(has(msg, "(99999999999999999999,)"));
  CHECK(has(msg, "does not fit in 64 bits"));
}

TEST_CASE("npy: a shape that is not a tuple of integers is refused, not read as a scalar") {
  TempDir tmp("badinput");
  const std::string path = tmp.str("shape.npy");
  for (const char* shape : {"5", "(2 3)", "(2, -3)", "(2, x)", "[2, 3]"}) {
    CAPTURE(shape);
    write_bytes(path, npy_bytes(std::string("{'descr': '<f4', 'fortran_order': False, 'shape': ") + shape + ", }",
                                std::string(24, '\0')));
    const std::string msg = error_of([&] { load_npy(path); });
    CHECK(has(msg, path));
    CHECK(has(msg, "shape"));
    CHECK(has(msg, "not a tuple of non-negative integers"));
  }
  CHECK(has(error_of([&] { load_npy(tmp.str()); }), "not a regular file"));
}

// ============================== non-finite weights ==============================

TEST_CASE("weights: NaN or Inf in a loaded state is refused with the tensor's name, nothing changes") {
  Linear lin(3, 2);
  const std::vector<float> before = lin.weight.to_vector<float>();
  auto state = lin.state_dict();
  Tensor w = state.at("weight").clone();
  w.data<float>()[4] = NAN;
  Tensor b = state.at("bias").clone();
  b.data<float>()[1] = -INFINITY;
  state["weight"] = w;
  state["bias"] = b;
  const std::string msg = error_of([&] { lin.load_state_dict(state); });
  CHECK(has(msg, "weight: 1 of 6 values are not finite (first: nan at flat index 4)"));
  CHECK(has(msg, "bias: 1 of 2 values are not finite (first: -inf at flat index 1)"));
  CHECK(lin.weight.to_vector<float>() == before);   // refused before anything was copied

  // Through a file: the message names the file too (Module::load, registry checkpoints and
  // training checkpoints all load through load_state_dict).
  TempDir tmp("badinput");
  const std::string path = tmp.str("nan.safetensors");
  save_safetensors(path, state);
  const std::string m2 = error_of([&] { lin.load(path); });
  CHECK(has(m2, path));
  CHECK(has(m2, "weight: 1 of 6"));
  // float16 / bfloat16 storage is checked by bit pattern as well.
  Tensor h = Tensor::empty({2}, DType::BFloat16);
  static_cast<uint16_t*>(h.raw_data())[0] = 0x3f80;   // 1.0
  static_cast<uint16_t*>(h.raw_data())[1] = 0x7fc0;   // NaN
  CHECK(count_non_finite(h) == 1);
  Tensor fp16 = Tensor::empty({3}, DType::Float16);
  static_cast<uint16_t*>(fp16.raw_data())[0] = 0x3c00;
  static_cast<uint16_t*>(fp16.raw_data())[1] = 0x7c00;   // +inf
  static_cast<uint16_t*>(fp16.raw_data())[2] = 0xfc00;   // -inf
  CHECK(count_non_finite(fp16) == 2);
}

TEST_CASE("weights: a registry checkpoint with NaN weights fails naming the checkpoint and the tensor") {
  TempDir tmp("badinput");
  const json cfg = {{"model", "frrn_a"}, {"num_classes", 3}, {"width", 0.0625}};
  auto model = make_model_from_config(cfg);
  auto state = model->state_dict();
  for (auto& [name, t] : state)
    if (is_floating(t.dtype()) && t.numel() > 0) {
      Tensor c = t.clone();
      c.data<float>()[0] = NAN;
      state[name] = c;
      CAPTURE(name);
      break;
    }
  const std::string path = tmp.str("nan_weights.safetensors");
  save_safetensors(path, state);
  json with_ckpt = cfg;
  with_ckpt["checkpoint"] = path;
  const std::string msg = error_of([&] { make_model_from_config(with_ckpt); });
  CHECK(has(msg, path));
  CHECK(has(msg, "NaN or Inf"));
  CHECK(has(msg, "first: nan at flat index 0"));
}

TEST_CASE("weights: the hint for a NaN loss names non-finite inputs instead of blaming the learning rate") {
  Tensor x = Tensor::ones({1, 3, 2, 2});
  x.data<float>()[5] = NAN;
  Linear lin(2, 2);
  const std::string hint = non_finite_loss_hint(x, lin.named_parameters());
  CHECK(has(hint, "input batch is not finite"));
  CHECK(has(hint, "first: nan at flat index 5"));
  CHECK(!has(hint, "lr"));
  Tensor ok = Tensor::ones({1, 3, 2, 2});
  CHECK(has(non_finite_loss_hint(ok, lin.named_parameters()), "inputs and weights are finite"));
  auto params = lin.named_parameters();
  params[0].second.data<float>()[0] = INFINITY;
  const std::string h2 = non_finite_loss_hint(ok, params);
  CHECK(has(h2, "parameter 'weight'"));
}

// ============================== experiment configs ==============================

namespace {
json base_config() { return {{"name", "t"}, {"model", {{"model", "frrn_a"}, {"num_classes", 3}}}, {"train", {{"epochs", 2}}}}; }
std::string config_error(const json& j) {
  return error_of([&] { parse_experiment_config(j, "hostile.json", "/base"); });
}
}  // namespace

TEST_CASE("experiment config: integers above what the field holds are refused, not wrapped") {
  json j = base_config();
  j["train"]["epochs"] = 4294967297ull;   // wrapped to 1 epoch before
  std::string msg = config_error(j);
  CHECK(has(msg, "hostile.json"));
  CHECK(has(msg, "'train.epochs' is 4294967297, outside [0, 2147483647]"));
  j = base_config();
  j["train"]["batch"] = uint64_t{18446744073709551615ull};
  CHECK(has(config_error(j), "'train.batch' is 18446744073709551615, outside [1, 2147483647]"));
  j = base_config();
  j["data"] = {{"height", int64_t{-4294967296}}};
  CHECK(has(config_error(j), "'data.height' is -4294967296, outside [1, 65535]"));
  j = base_config();
  j["train"]["schedule"] = {{"step_size", 0}};
  CHECK(has(config_error(j), "'train.schedule.step_size' is 0, outside [1, 9223372036854775807]"));
  // A seed is a uint64: its whole range is accepted, a negative one refused.
  j = base_config();
  j["train"]["seed"] = uint64_t{18446744073709551615ull};
  CHECK(parse_experiment_config(j, "ok.json", "/base").train.seed == 18446744073709551615ull);
  j["train"]["seed"] = -1;
  CHECK(has(config_error(j), "'train.seed' must be a non-negative integer, got -1"));
}

TEST_CASE("experiment config: negative counts, zero epochs and non-finite numbers are refused") {
  struct Case {
    const char* section;
    const char* key;
    json value;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"data", "workers", -3, "'data.workers' is -3, outside [0, 1024]"},
      {"data", "max_train", -1, "'data.max_train' is -1, outside [0, "},
      {"data", "camvid_dusk_holdout", -20, "'data.camvid_dusk_holdout' is -20"},
      {"train", "patience", -1, "'train.patience' is -1"},
      {"train", "log_every", -5, "'train.log_every' is -5"},
      {"train", "max_steps_per_epoch", -1, "'train.max_steps_per_epoch' is -1"},
      {"train", "grad_clip", -0.5, "'train.grad_clip' is -0.5, outside [0, "},
      {"train", "val_every", 0, "'train.val_every' is 0, outside [1, "},
      {"train", "class_weights", json::array({1.0, -2.0}), "'train.class_weights' holds -2"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key);
    json j = base_config();
    j[c.section][c.key] = c.value;
    const std::string msg = config_error(j);
    CHECK(has(msg, "hostile.json"));
    CHECK(has(msg, c.expect));
  }
  json j = base_config();
  j["train"]["optimizer"] = {{"lr", std::numeric_limits<double>::infinity()}};
  CHECK(has(config_error(j), "'train.optimizer.lr' is"));
  j["train"]["optimizer"] = {{"momentum", -0.9}};
  CHECK(has(config_error(j), "'train.optimizer.momentum' is -0.9"));
  j["train"]["optimizer"] = {{"betas", {0.9, 1.5}}};
  CHECK(has(config_error(j), "'train.optimizer.betas' must be [beta1, beta2], each in [0, 1)"));
  j = base_config();
  j["data"] = {{"height", 65535}, {"width", 65535}};
  CHECK(has(config_error(j), "exceeds the pixel budget"));

  // epochs 0 trained nothing and reported a best mIoU of -100%.
  j = base_config();
  j["train"]["epochs"] = 0;
  const std::string msg = config_error(j);
  CHECK(has(msg, "hostile.json"));
  CHECK(has(msg, "'train.epochs' is 0: nothing would be trained"));
  // An ensemble (nothing to train, evaluated as it is: configs/*_ensemble_*.json) may say 0.
  j["model"] = {{"type", "ensemble"}, {"num_classes", 3}, {"experts", {"frrn_a", "frrn_a"}}};
  CHECK(parse_experiment_config(j, "ens.json", "/base").train.epochs == 0);
}

TEST_CASE("experiment config: JSON type errors name the key, and overrides on a non-object are refused") {
  json j = base_config();
  j["train"]["epochs"] = "3";
  CHECK(has(config_error(j), "key 'train.epochs' must be an integer, got \"3\""));
  j = base_config();
  j["train"]["epochs"] = 2.5;
  CHECK(has(config_error(j), "key 'train.epochs' must be an integer, got 2.5"));
  j = base_config();
  j["data"] = 5;
  CHECK(has(config_error(j), "'data' must be a JSON object, got 5"));
  json arr = json::array({1, 2});
  CHECK(has(error_of([&] { apply_override(arr, "train.epochs=3"); }), "the config is not a JSON object"));
  json k = base_config();
  CHECK(has(error_of([&] { apply_override(k, "name=\xff\xfe"); }), "not valid UTF-8"));
  TempDir tmp("badinput");
  CHECK(has(error_of([&] { load_experiment_config(tmp.str()); }), "is not a regular file"));
}

// ============================== model registry ==============================

TEST_CASE("model registry: wrong types and out-of-range numbers name the key and the value") {
  struct Case {
    json cfg;
    const char* expect;
  };
  const json thin = {{"model", "frrn_a"}, {"width", 0.0625}};
  const std::vector<Case> cases = {
      {{{"model", 5}, {"num_classes", 3}}, "key 'model' must be a string, got 5"},
      {{{"model", "frrn_a"}, {"num_classes", 4294967297ull}}, "key 'num_classes' is 4294967297, outside [1, 65536]"},
      {{{"model", "frrn_a"}, {"num_classes", 3.5}}, "key 'num_classes' must be an integer, got 3.5"},
      {{{"model", "frrn_a"}, {"num_classes", 3}, {"width", -1}}, "key 'width' is -1, outside (0, 16]"},
      {{{"model", "frrn_a"}, {"num_classes", 3}, {"width", "wide"}}, "key 'width' must be a finite number"},
      {{{"model", "frrn_a"}, {"num_classes", 3}, {"seed", -1}}, "key 'seed' must be a non-negative integer, got -1"},
      {{{"model", "deeplabv3plus_resnet18"}, {"num_classes", 3}, {"output_stride", 1099511627776ll}},
       "key 'output_stride' is 1099511627776"},
      {{{"model", "frrn_a"}, {"num_classes", 3}, {"width", 0.0625}, {"checkpoint", 7}}, "key 'checkpoint' must be a string, got 7"},
      {{{"type", "moe"}, {"num_classes", 3}, {"experts", {thin}}, {"fc_features", -5}}, "key 'fc_features' is -5"},
      {{{"type", "moe"}, {"num_classes", 3}, {"experts", {thin}}, {"input_size", {0, 5}}}, "key 'input_size' must be [height, width]"},
      {{{"type", "moe"}, {"num_classes", 3}, {"experts", {thin}}, {"with_conv", 1}}, "key 'with_conv' must be true or false"},
      {{{"type", 3}, {"num_classes", 3}}, "key 'type' must be a string"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.cfg.dump());
    const std::string msg = error_of([&] { make_model_from_config(c.cfg); });
    CHECK(has(msg, "model config"));
    CHECK(has(msg, c.expect));
  }
}

TEST_CASE("model registry: an expert config that names itself fails after a bounded depth") {
  TempDir tmp("badinput");
  const std::string path = tmp.str("self.json");
  write_bytes(path, json{{"type", "ensemble"}, {"num_classes", 2}, {"experts", {{{"config", "self.json"}}}}}.dump());
  const std::string msg = error_of([&] { load_model_config(path); });
  CHECK(has(msg, "self.json"));
  CHECK(has(msg, "nest more than 16 deep"));
  CHECK(has(error_of([&] { load_model_config(tmp.str()); }), "is not a regular file"));
}

// ============================== images ==============================

TEST_CASE("images: a truncated PPM named .png, or named .ppm, is refused (no leftover heap pixels)") {
  TempDir tmp("badinput");
  const std::string header = "P6\n64 64\n255\n";
  const std::string cut = header + std::string(100, '\x7f');   // 12288 pixel bytes declared
  write_bytes(tmp.str("photo.png"), cut);
  std::string msg = error_of([&] { data::read_image(tmp.str("photo.png")); });
  CHECK(has(msg, tmp.str("photo.png")));
  CHECK(has(msg, "holds PNM (binary PGM/PPM) data but its extension '.png' says PNG"));
  write_bytes(tmp.str("photo.ppm"), cut);
  msg = error_of([&] { data::read_image(tmp.str("photo.ppm")); });
  CHECK(has(msg, tmp.str("photo.ppm")));
  CHECK(has(msg, "truncated (PNM header says 64x64, needing 12288 bytes of pixels; the file has 100)"));
  write_bytes(tmp.str("long.ppm"), header + std::string(12288 + 5, '\x01'));
  CHECK(has(error_of([&] { data::read_image(tmp.str("long.ppm")); }), "has 5 bytes after its 64x64 PNM pixels"));
  // A complete one decodes, under any neutral name too.
  write_bytes(tmp.str("ok.ppm"), header + std::string(12288, '\x01'));
  const data::Image img = data::read_image(tmp.str("ok.ppm"));
  CHECK(img.width == 64);
  CHECK(img.pixels == std::vector<uint8_t>(12288, 1));
  write_bytes(tmp.str("ok.pgm"), "P5 3 1 255\n\x01\x02\x03");
  CHECK(data::read_image(tmp.str("ok.pgm")).pixels == std::vector<uint8_t>{1, 2, 3});
  // 16-bit samples: stb 2.27 overreads its buffer converting their channels (found by fuzzing).
  write_bytes(tmp.str("deep.pgm"), std::string("P5 1 2 5356\n5\xad\n5"));
  CHECK(has(error_of([&] { data::read_image(tmp.str("deep.pgm"), 3); }), "maximum value 5356 (16-bit samples) is not supported"));
  write_bytes(tmp.str("p6_as.pgm"), header + std::string(12288, '\x01'));
  CHECK(has(error_of([&] { data::read_image(tmp.str("p6_as.pgm")); }), "holds a P6 image but its extension is '.pgm'"));
}

TEST_CASE("images: a PNG whose CRC or zlib Adler-32 is wrong is refused") {
  TempDir tmp("badinput");
  const std::vector<uint8_t> good = png_gray(6, 4, gray_rows(6, 4));
  write_bytes(tmp.str("good.png"), good);
  CHECK(data::read_image(tmp.str("good.png")).width == 6);
  // Flip the last byte of the IDAT data (the Adler-32): both checksums are now wrong.
  std::vector<uint8_t> both = good;
  const size_t idat = chunk_data_offset(both, "IDAT");
  const uint32_t idat_len = (uint32_t{both[idat - 8]} << 24) | (uint32_t{both[idat - 7]} << 16) |
                            (uint32_t{both[idat - 6]} << 8) | both[idat - 5];
  both[idat + idat_len - 1] ^= 0x5a;
  write_bytes(tmp.str("both.png"), both);
  std::string msg = error_of([&] { data::read_image(tmp.str("both.png")); });
  CHECK(has(msg, tmp.str("both.png")));
  CHECK(has(msg, "PNG chunk 'IDAT'"));
  CHECK(has(msg, "CRC"));
  // Fix the chunk's CRC: the Adler-32 of the stream is still wrong.
  std::vector<uint8_t> adler = both;
  fix_crc(adler, "IDAT");
  write_bytes(tmp.str("adler.png"), adler);
  msg = error_of([&] { data::read_image(tmp.str("adler.png")); });
  CHECK(has(msg, tmp.str("adler.png")));
  CHECK(has(msg, "Adler-32"));
  // A corrupt IHDR (its CRC no longer matches) is named too.
  std::vector<uint8_t> ihdr = good;
  ihdr[chunk_data_offset(ihdr, "IHDR") + 3] = 7;
  write_bytes(tmp.str("ihdr.png"), ihdr);
  CHECK(has(error_of([&] { data::read_image(tmp.str("ihdr.png")); }), "PNG chunk 'IHDR'"));
}

TEST_CASE("images: a PNG whose data does not fill its declared size, or exceeds the pixel budget, is refused") {
  TempDir tmp("badinput");
  // IHDR says 6x5 but the stream holds 4 rows: stb would pad the last rows.
  write_bytes(tmp.str("short.png"), png_gray(6, 5, gray_rows(6, 4)));
  std::string msg = error_of([&] { data::read_image(tmp.str("short.png")); });
  CHECK(has(msg, tmp.str("short.png")));
  CHECK(has(msg, "inflates to 28 bytes, a 6x5 image needs 35"));
  // 20000 x 20000 declared: over 2^28 pixels, refused before anything is inflated.
  write_bytes(tmp.str("huge.png"), png_gray(20000, 20000, gray_rows(4, 1)));
  msg = error_of([&] { data::read_image(tmp.str("huge.png")); });
  CHECK(has(msg, tmp.str("huge.png")));
  CHECK(has(msg, "declares 20000x20000 pixels, over the budget of 268435456"));
  // The budget is configurable.
  write_bytes(tmp.str("small.png"), png_gray(6, 4, gray_rows(6, 4)));
  data::set_max_image_pixels(20);
  msg = error_of([&] { data::read_image(tmp.str("small.png")); });
  data::set_max_image_pixels(data::kDefaultMaxImagePixels);
  CHECK(has(msg, "over the budget of 20 pixels"));
  CHECK(data::read_image(tmp.str("small.png")).height == 4);
  // Interlaced (Adam7): the exact-size check follows the seven passes.
  std::vector<uint8_t> passes = {0, 10, 0, 20, 0, 30, 40, 0, 50, 0, 60, 0, 70, 80, 90};   // 3x3
  write_bytes(tmp.str("adam7.png"), png_gray(3, 3, passes, 1));
  const data::Image img = data::read_image(tmp.str("adam7.png"));
  CHECK(img.pixels == std::vector<uint8_t>{10, 50, 20, 70, 80, 90, 30, 60, 40});
}

TEST_CASE("images: content that does not match the extension, a cut JPEG and a cut BMP are refused") {
  TempDir tmp("badinput");
  const std::vector<uint8_t> png = png_gray(6, 4, gray_rows(6, 4));
  write_bytes(tmp.str("really_png.jpg"), png);
  std::string msg = error_of([&] { data::read_image(tmp.str("really_png.jpg")); });
  CHECK(has(msg, tmp.str("really_png.jpg")));
  CHECK(has(msg, "holds PNG data but its extension '.jpg' says JPEG"));
  write_bytes(tmp.str("no_extension"), png);   // a neutral name: the magic decides
  CHECK(data::read_image(tmp.str("no_extension")).width == 6);
  write_bytes(tmp.str("anim.gif"), std::string("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14));
  CHECK(has(error_of([&] { data::read_image(tmp.str("anim.gif")); }), "not an image in a supported format"));

  // A JPEG cut in its entropy-coded data: stb would fill the rest with grey.
  std::vector<uint8_t> px(64 * 64 * 3);
  uint32_t r = 12345;
  for (auto& v : px) v = static_cast<uint8_t>((r = r * 1103515245u + 12345u) >> 24);   // noise: a long scan
  REQUIRE(stbi_write_jpg(tmp.str("full.jpg").c_str(), 64, 64, 3, px.data(), 90) != 0);
  CHECK(data::read_image(tmp.str("full.jpg")).width == 64);
  std::ifstream in(tmp.str("full.jpg"), std::ios::binary);
  std::string jpg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(tmp.str("cut.jpg"), jpg.substr(0, jpg.size() - 40));
  msg = error_of([&] { data::read_image(tmp.str("cut.jpg")); });
  CHECK(has(msg, tmp.str("cut.jpg")));
  CHECK(has(msg, "JPEG without its end-of-image marker"));

  // A BMP cut inside its pixel array: stb would read zeros.
  px.resize(16 * 16 * 3);
  REQUIRE(stbi_write_bmp(tmp.str("full.bmp").c_str(), 16, 16, 3, px.data()) != 0);
  CHECK(data::read_image(tmp.str("full.bmp")).pixels == px);
  std::ifstream bin(tmp.str("full.bmp"), std::ios::binary);
  std::string bmp((std::istreambuf_iterator<char>(bin)), std::istreambuf_iterator<char>());
  write_bytes(tmp.str("cut.bmp"), bmp.substr(0, bmp.size() - 100));
  msg = error_of([&] { data::read_image(tmp.str("cut.bmp")); });
  CHECK(has(msg, tmp.str("cut.bmp")));
  CHECK(has(msg, "truncated (BMP pixel data of 16x16 at 24 bits needs"));
}

TEST_CASE("images: every seed image of the fuzz corpus decodes (the checks refuse no valid file)") {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(fuzz_corpus("image"))) {
    CAPTURE(e.path().string());
    std::ifstream in(e.path(), std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(s.size() > 2);
    // Byte 0 picks the name in fuzz_image.cpp; the neutral name accepts any supported content.
    const std::vector<uint8_t> bytes(s.begin() + 2, s.end());
    const data::Image img = data::decode_image(bytes, "seed_" + e.path().filename().string(), 0);
    CHECK(img.pixels.size() == static_cast<size_t>(img.width) * img.height * img.channels);
    ++n;
  }
  CHECK(n >= 8);
}

// ============================== split and list files ==============================

TEST_CASE("split files: hostile A2D2 and CamVid lines name the file and line") {
  TempDir tmp("badinput");
  write_bytes(tmp.str("class_list.json"), std::string("{\"#ff0000\": \"Car 1\"}"));
  const std::string split = tmp.str("highway_train_gt.txt");
  write_bytes(split, std::string("20181108084007_label_frontleft_000000002.png\n../../etc/passwd") + std::string("\0x\n", 3));
  data::A2D2Options o;
  o.root = tmp.str();
  o.split_file = split;
  o.check_files = false;
  std::string msg = error_of([&] { data::A2D2Dataset ds(o); });
  CHECK(has(msg, split + ":2"));
  CHECK(has(msg, "is not a label file name"));
  // class_list.json that is not an object of colour -> name.
  write_bytes(tmp.str("class_list.json"), std::string("[1, 2]"));
  CHECK(has(error_of([&] { data::A2D2Dataset ds(o); }), "must be a non-empty object"));

  const std::string list = tmp.str("train.txt");
  write_bytes(list, std::string("a.png b.png c.png\n"));
  data::CamVidOptions c;
  c.root = tmp.str();
  c.list_file = list;
  msg = error_of([&] { data::CamVidDataset ds(c); });
  CHECK(has(msg, list + ":1"));
  CHECK(has(msg, "expected '<image> <label>'"));
}

// ============================== names of enum values ==============================

TEST_CASE("enum names: an unknown gate, ensemble mode, tap, reduction or conv backend names the key and the known names") {
  const json thin = {{"model", "frrn_a"}, {"width", 0.0625}};
  json moe = {{"type", "moe"}, {"num_classes", 3}, {"experts", {thin, thin}}, {"input_size", {32, 48}}, {"gate", "softmax"}};
  CHECK(has(error_of([&] { make_model_from_config(moe); }), "model config: key 'gate' is 'softmax' (known: simple, classwise)"));
  TempDir tmp("badinput");
  const std::string path = tmp.str("moe.json");
  write_bytes(path, moe.dump());
  std::string msg = error_of([&] { load_model_config(path); });
  CHECK(has(msg, path + ": key 'gate' is 'softmax'"));
  CHECK(has(msg, "(known: simple, classwise)"));
  moe["gate"] = "soft\nmax";   // a control byte is escaped, not printed
  CHECK(has(error_of([&] { make_model_from_config(moe); }), "key 'gate' is 'soft\\x0amax'"));
  moe["gate"] = 3;
  CHECK(has(error_of([&] { make_model_from_config(moe); }), "key 'gate' must be a string, got 3"));

  // The tap: a per-model name, checked at construction against the experts' taps.
  moe["gate"] = "classwise";
  moe["tap"] = "frrnlayer9";
  msg = error_of([&] { make_model_from_config(moe); });
  CHECK(has(msg, "model config"));
  CHECK(has(msg, "tap 'frrnlayer9' is not a feature map of expert 1"));
  CHECK(has(msg, "frrnlayer1, frrnlayer2"));

  const json ens = {{"type", "ensemble"}, {"num_classes", 3}, {"experts", {thin, thin}}, {"mode", "median"}};
  CHECK(has(error_of([&] { make_model_from_config(ens); }), "model config: key 'mode' is 'median' (known: mean, max)"));

  CHECK(has(error_of([&] { parse_reduction("average", "fixture.json: key 'reduction'"); }),
            "fixture.json: key 'reduction' is 'average' (known: mean, sum, none)"));
  CHECK(has(error_of([&] { parse_conv_backend("cudnn8", "environment variable MOESEG_CONV"); }),
            "environment variable MOESEG_CONV is 'cudnn8' (known: ours, cudnn)"));
  CHECK(has(error_of([&] { parse_gate_type("", "x: key 'gate'"); }), "x: key 'gate' is '' (known: simple, classwise)"));
  CHECK(has(error_of([&] { parse_ensemble_mode("Mean", "x: key 'mode'"); }), "is 'Mean' (known: mean, max)"));   // exact spelling
}

TEST_CASE("enum names: every known name round-trips, so configs written back keep their spelling") {
  for (const char* s : {"simple", "classwise"}) CHECK(to_string(parse_gate_type(s, "test")) == s);
  for (const char* s : {"mean", "max"}) CHECK(to_string(parse_ensemble_mode(s, "test")) == s);
  for (const char* s : {"mean", "sum", "none"}) CHECK(to_string(parse_reduction(s, "test")) == s);
  for (const char* s : {"ours", "cudnn"}) CHECK(to_string(parse_conv_backend(s, "test")) == s);
  for (GateType t : {GateType::Simple, GateType::Classwise}) CHECK(parse_gate_type(to_string(t), "test") == t);
  for (EnsembleMode m : {EnsembleMode::Mean, EnsembleMode::Max}) CHECK(parse_ensemble_mode(to_string(m), "test") == m);
  for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) CHECK(parse_reduction(to_string(r), "test") == r);
  // The distinct values have distinct names.
  CHECK(to_string(GateType::Simple) != to_string(GateType::Classwise));
  CHECK(to_string(Reduction::Sum) != to_string(Reduction::Mean));
  // set_conv2d_impl / conv2d_impl take and give the enum (MOESEG_CONV is parsed once, at the edge).
  const ConvBackend before = conv2d_impl();
  set_conv2d_impl(ConvBackend::Cudnn);
  CHECK(conv2d_impl() == ConvBackend::Cudnn);
  set_conv2d_impl(ConvBackend::Ours);
  CHECK(conv2d_impl() == ConvBackend::Ours);
  set_conv2d_impl(before);
  // A value outside the enum (only reachable by a cast) is refused, not silently taken as one.
  CHECK(has(error_of([&] { set_conv2d_impl(static_cast<ConvBackend>(7)); }), "enum value 7 has no name (known: ours, cudnn)"));
  CHECK(conv2d_impl() == before);
}

// ============================== training checkpoints ==============================

namespace {
// A real checkpoint of a Linear layer and its optimiser after one step (so the state has buffers).
void write_checkpoint(const std::string& dir, Linear& lin, Optimizer& opt) {
  Tensor x = Tensor::ones({4, 3});
  sum(lin.forward(x)).backward();
  opt.step();
  CheckpointMeta meta;
  meta.epoch = 1;
  meta.step = 1;
  meta.config_hash = "abc";
  save_training_checkpoint(dir, lin, &opt, meta);
}
}  // namespace

TEST_CASE("checkpoints: a meta.json field of the wrong type or range fails at resume naming the file and the key") {
  TempDir tmp("badinput");
  const std::string dir = tmp.str("last");
  Linear lin(3, 2);
  Adam adam(lin.named_parameters(), AdamOptions{});
  write_checkpoint(dir, lin, adam);
  const std::string meta_path = dir + "/meta.json";
  std::ifstream in(meta_path);
  const json good = json::parse(in);
  in.close();
  struct Case {
    const char* key;
    json value;   // null: remove the key
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"epoch", "three", "key 'epoch' must be an integer, got \"three\""},
      {"epoch", {{"n", 3}}, "key 'epoch' must be an integer, got {\"n\":3}"},
      {"epoch", 2.5, "key 'epoch' must be an integer, got 2.5"},
      {"epoch", -1, "key 'epoch' is -1, outside [0, 2147483647]"},
      {"epoch", int64_t{2147483648}, "key 'epoch' is 2147483648, outside [0, 2147483647]"},
      {"step", -4, "key 'step' is -4, outside [0, "},
      {"step", json::array({1}), "key 'step' must be an integer, got [1]"},
      {"bad_validations", int64_t{1} << 40, "key 'bad_validations' is 1099511627776, outside [0, 2147483647]"},
      {"best_epoch", -2, "key 'best_epoch' is -2, outside [-1, 2147483647]"},
      {"best_metric", "high", "key 'best_metric' must be a finite number, got \"high\""},
      {"has_best", 1, "key 'has_best' must be true or false, got 1"},
      {"rng_offset", -5, "key 'rng_offset' must be a non-negative integer, got -5"},
      {"rng_seed", "7", "key 'rng_seed' must be a non-negative integer, got \"7\""},
      {"config_hash", 7, "key 'config_hash' must be a string, got 7"},
      {"val_miou", {{"x", 1}}, "key 'val_miou' must be a finite number"},
      {"extra", 3, "key 'extra' must be a JSON object, got 3"},
      {"epoch", nullptr, "missing key 'epoch'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.value.dump());
    json j = good;
    if (c.value.is_null()) j.erase(c.key);
    else j[c.key] = c.value;
    write_bytes(meta_path, j.dump(2));
    Linear fresh(3, 2);
    Adam opt(fresh.named_parameters(), AdamOptions{});
    const std::string msg = error_of([&] { load_training_checkpoint(dir, fresh, &opt); });
    CHECK(has(msg, meta_path));
    CHECK(has(msg, c.expect));
    CHECK(!has(msg, "json.exception"));
  }
  write_bytes(meta_path, "[1, 2]");
  CHECK(has(error_of([&] { read_checkpoint_meta(dir); }), meta_path + ": invalid checkpoint metadata: expected a JSON object"));
  // What the writer itself produces still loads: a NaN metric is written as null and read as NaN.
  json j = good;
  j["best_metric"] = nullptr;
  j["val_miou"] = nullptr;
  write_bytes(meta_path, j.dump(2));
  const CheckpointMeta m = read_checkpoint_meta(dir);
  CHECK(std::isnan(m.best_metric));
  CHECK(std::isnan(m.val_miou));
  CHECK(m.epoch == 1);
  write_bytes(meta_path, good.dump(2));
  Linear fresh(3, 2);
  Adam opt(fresh.named_parameters(), AdamOptions{});
  CHECK(load_training_checkpoint(dir, fresh, &opt).config_hash == "abc");
  CHECK(fresh.weight.to_vector<float>() == lin.weight.to_vector<float>());
}

TEST_CASE("checkpoints: NaN or Inf in an optimizer state tensor is refused at resume naming the tensor") {
  TempDir tmp("badinput");
  struct Case {
    const char* tensor;
    size_t index;
    float value;
    const char* expect;
  };
  const std::vector<Case> adam_cases = {
      {"state.weight.exp_avg_sq", 4, NAN, "state.weight.exp_avg_sq: 1 of 6 values are not finite (first: nan at flat index 4)"},
      {"state.bias.exp_avg", 1, -INFINITY, "state.bias.exp_avg: 1 of 2 values are not finite (first: -inf at flat index 1)"},
  };
  const std::string dir = tmp.str("adam");
  Linear lin(3, 2);
  Adam adam(lin.named_parameters(), AdamOptions{});
  write_checkpoint(dir, lin, adam);
  const std::string opt_path = dir + "/optimizer.safetensors";
  const TensorFile good = load_safetensors(opt_path);
  for (const Case& c : adam_cases) {
    CAPTURE(c.tensor);
    TensorFile tf = good;
    REQUIRE(tf.has(c.tensor));
    Tensor t = tf.tensors.at(c.tensor).clone();
    t.data<float>()[c.index] = c.value;
    tf.tensors[c.tensor] = t;
    save_safetensors(opt_path, tf.tensors, tf.metadata);   // same epoch tag: only the values differ
    Linear fresh(3, 2);
    const std::vector<float> before = fresh.weight.to_vector<float>();
    Adam opt(fresh.named_parameters(), AdamOptions{});
    const std::string msg = error_of([&] { load_training_checkpoint(dir, fresh, &opt); });
    CHECK(has(msg, opt_path));
    CHECK(has(msg, "NaN or Inf"));
    CHECK(has(msg, c.expect));
    CHECK(fresh.weight.to_vector<float>() == before);   // refused before the weights were loaded
    CHECK(opt.state_dict().count("state.weight.step") == 0);   // and before the optimiser's state
  }
  // A non-finite hyper-parameter, and an SGD momentum buffer, the same way.
  {
    TensorFile tf = good;
    tf.tensors["hparam.lr"] = Tensor::scalar(INFINITY, DType::Float64);
    save_safetensors(opt_path, tf.tensors, tf.metadata);
    Linear fresh(3, 2);
    Adam opt(fresh.named_parameters(), AdamOptions{});
    CHECK(has(error_of([&] { load_training_checkpoint(dir, fresh, &opt); }), "hparam.lr: 1 of 1 values are not finite"));
  }
  const std::string sgd_dir = tmp.str("sgd");
  Linear lin2(3, 2);
  SGDOptions so;
  so.momentum = 0.9;
  SGD sgd(lin2.named_parameters(), so);
  write_checkpoint(sgd_dir, lin2, sgd);
  TensorFile tf = load_safetensors(sgd_dir + "/optimizer.safetensors");
  REQUIRE(tf.has("state.weight.momentum_buffer"));
  Tensor t = tf.tensors.at("state.weight.momentum_buffer").clone();
  t.data<float>()[0] = NAN;
  tf.tensors["state.weight.momentum_buffer"] = t;
  save_safetensors(sgd_dir + "/optimizer.safetensors", tf.tensors, tf.metadata);
  Linear fresh(3, 2);
  SGD opt(fresh.named_parameters(), so);
  const std::string msg = error_of([&] { load_training_checkpoint(sgd_dir, fresh, &opt); });
  CHECK(has(msg, sgd_dir + "/optimizer.safetensors"));
  CHECK(has(msg, "state.weight.momentum_buffer: 1 of 6 values are not finite (first: nan at flat index 0)"));
}

// ============================== synthetic scenes ==============================

TEST_CASE("synthetic scenes: a wrong-typed field in synthetic_scenes.json or a study's synthetic preset names the file and the key") {
  TempDir tmp("badinput");
  const std::string record = tmp.str("synthetic_scenes.json");
  CHECK(data::synthetic_tree_version(tmp.str()) == 0);   // no tree
  write_bytes(record, json{{"generator_version", 2}}.dump());
  CHECK(data::synthetic_tree_version(tmp.str()) == 2);
  write_bytes(record, "{\"generator_version\": 2,");   // cut short by a crash: regenerated
  CHECK(data::synthetic_tree_version(tmp.str()) == 0);
  write_bytes(record, json{{"seed", 1}}.dump());   // no version recorded (an older generator)
  CHECK(data::synthetic_tree_version(tmp.str()) == 0);
  struct Case {
    json version;
    const char* expect;
  };
  for (const Case& c : std::vector<Case>{{"two", "key 'generator_version' must be an integer, got \"two\""},
                                         {uint64_t{4294967298ull}, "key 'generator_version' is 4294967298, outside"},
                                         {-1, "key 'generator_version' is -1, outside [0, 2147483647]"},
                                         {json::object(), "key 'generator_version' must be an integer, got {}"}}) {
    CAPTURE(c.version.dump());
    write_bytes(record, json{{"generator_version", c.version}}.dump());
    const std::string msg = error_of([&] { data::synthetic_tree_version(tmp.str()); });
    CHECK(has(msg, record));
    CHECK(has(msg, c.expect));
  }
  write_bytes(record, "[2]");
  CHECK(has(error_of([&] { data::synthetic_tree_version(tmp.str()); }), record + ": expected a JSON object"));

  // The study config's synthetic preset (what `moeseg reproduce` generates the scenes from):
  // refused before anything is generated or trained.
  const json preset = {{"dataset", "synthetic"}, {"height", 48}, {"width", 64},
                       {"synthetic", {{"train", 12}, {"val", 4}, {"test", 4}, {"seed", 1}}}};
  struct StudyCase {
    const char* section;   // "" = the preset itself
    const char* key;
    json value;
    const char* expect;
  };
  const std::vector<StudyCase> cases = {
      {"synthetic", "train", "three", "presets.tiny.synthetic: key 'train' must be an integer, got \"three\""},
      {"synthetic", "val", int64_t{4294967297}, "presets.tiny.synthetic: key 'val' is 4294967297, outside [0, 16777216]"},
      {"synthetic", "test", -3, "presets.tiny.synthetic: key 'test' is -3, outside [0, 16777216]"},
      {"synthetic", "seed", {{"a", 1}}, "presets.tiny.synthetic: key 'seed' must be a non-negative integer"},
      {"synthetic", "trian", 12, "presets.tiny.synthetic: unknown key 'trian'"},
      {"", "height", 2.5, "presets.tiny: key 'height' must be an integer, got 2.5"},
      {"", "synthetic", 5, "presets.tiny.synthetic: expected a JSON object, got 5"},
  };
  for (const StudyCase& c : cases) {
    CAPTURE(c.key);
    json p = preset;
    if (*c.section) p[c.section][c.key] = c.value;
    else p[c.key] = c.value;
    const std::string study = tmp.str("study.json");
    write_bytes(study, json{{"presets", {{"tiny", p}}}}.dump());
    StudyOptions o;
    o.study_config = study;
    o.preset = "tiny";
    o.out = tmp.str("out");
    o.quiet = true;
    const std::string msg = error_of([&] { run_study(o); });
    CHECK(has(msg, study));
    CHECK(has(msg, c.expect));
    CHECK(!std::filesystem::exists(tmp.str("out/data/splits")));   // nothing generated
  }
}
