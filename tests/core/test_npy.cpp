// .npy I/O tests: byte-exact agreement with what numpy's np.save writes (headers below were
// taken from numpy 2.x), round trips for every supported dtype incl. 0-d, 1-d and empty arrays and
// non-contiguous views, version-2.0 headers, and the errors: bad magic, truncated header/data,
// unsupported or big-endian dtype, Fortran order, missing file — each naming the file.
// Run: build/tests/test_core -ts="*npy*"
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/npy.h"
#include "support/temp_dir.h"

using namespace moeseg;

namespace {

// A folder of this process's own (removed at exit): test processes of other builds or a parallel
// ctest writing the same file names never race.
std::string temp_path(const std::string& name) {
  static const moeseg::testing::TempDir dir("npy");
  return dir.str(name);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A version-1.0 file as numpy writes it: dict padded with spaces to a 64-byte aligned data start.
std::string npy_v1(const std::string& dict, const std::string& data) {
  std::string header = dict;
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string error_of(const std::string& path) {
  try {
    load_npy(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("npy: save_npy writes numpy's exact bytes") {
  const std::string p = temp_path("f32.npy");
  save_npy(p, Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3}));
  const std::string expected =
      npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", raw<float>({0, 1, 2, 3, 4, 5}));
  CHECK(expected.size() == 152);   // np.save of np.arange(6, dtype='<f4').reshape(2, 3)
  CHECK(read_bytes(p) == expected);

  save_npy(p, Tensor::from_vector<uint8_t>({0, 1, 2, 3, 4}, {5}));
  CHECK(read_bytes(p) == npy_v1("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }", raw<uint8_t>({0, 1, 2, 3, 4})));
  save_npy(p, Tensor::scalar(3.5, DType::Float64));
  CHECK(read_bytes(p) == npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw<double>({3.5})));
}

TEST_CASE("npy: round trip of every dtype, 0-d, empty and non-contiguous tensors") {
  const std::string p = temp_path("rt.npy");
  auto round_trip = [&](const Tensor& t) {
    save_npy(p, t);
    Tensor u = load_npy(p);
    CHECK(u.dtype() == t.dtype());
    CHECK(u.sizes() == t.sizes());
    CHECK(u.is_contiguous());
    return u;
  };
  CHECK(round_trip(Tensor::from_vector<float>({1.5f, -2.25f, 3e-8f}, {3, 1})).to_vector<float>() ==
        std::vector<float>{1.5f, -2.25f, 3e-8f});
  CHECK(round_trip(Tensor::from_vector<double>({1.0 / 3.0, -1e300}, {2})).to_vector<double>() ==
        std::vector<double>{1.0 / 3.0, -1e300});
  CHECK(round_trip(Tensor::from_vector<int64_t>({-5, 1LL << 40, 7, 0}, {2, 1, 2})).to_vector<int64_t>() ==
        std::vector<int64_t>{-5, 1LL << 40, 7, 0});
  CHECK(round_trip(Tensor::from_vector<int32_t>({-3, 2147483647}, {1, 2})).to_vector<int32_t>() ==
        std::vector<int32_t>{-3, 2147483647});
  CHECK(round_trip(Tensor::from_vector<uint8_t>({0, 255, 17}, {3})).to_vector<uint8_t>() ==
        std::vector<uint8_t>{0, 255, 17});
  CHECK(round_trip(Tensor::scalar(-4.0, DType::Float32)).item() == -4.0);
  CHECK(round_trip(Tensor::zeros({2, 0, 3}, DType::Int64)).numel() == 0);
  // A transposed view is written in logical (C) order.
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).transpose(0, 1);
  CHECK(round_trip(t).to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("npy: version 2.0 header and double-quoted keys are read") {
  const std::string dict = "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (3,)}\n";
  std::string bytes("\x93NUMPY\x02\x00", 8);
  const uint32_t len = static_cast<uint32_t>(dict.size());
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  bytes += dict + raw<int32_t>({7, -8, 9});
  const std::string p = temp_path("v2.npy");
  write_bytes(p, bytes);
  Tensor t = load_npy(p);
  CHECK(t.dtype() == DType::Int32);
  CHECK(t.to_vector<int32_t>() == std::vector<int32_t>{7, -8, 9});
}

TEST_CASE("npy: errors name the file and the problem") {
  const std::string good = npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", raw<float>({0, 1, 2, 3, 4, 5}));
  struct Case {
    const char* file;
    std::string bytes;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"magic.npy", "PK\x03\x04 this is a zip", "bad magic"},
      {"short.npy", std::string("\x93NUMPY\x01", 7), "bad magic"},
      {"hdr.npy", good.substr(0, 40), "truncated npy header"},
      {"data.npy", good.substr(0, good.size() - 3), "truncated npy data"},
      {"trail.npy", good + "xx", "trailing bytes"},
      {"fortran.npy", npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", raw<float>({0, 1, 2, 3, 4, 5})),
       "Fortran order"},
      {"f16.npy", npy_v1("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", std::string(4, '\0')),
       "not supported"},
      {"bool.npy", npy_v1("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", std::string(2, '\0')),
       "not supported"},
      {"bigend.npy", npy_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", std::string(4, '\0')),
       "big-endian"},
      {"noshape.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, }", ""), "'shape'"},
      {"version.npy", std::string("\x93NUMPY\x07\x00\x00\x00", 10), "version 7"},
  };
  for (const auto& c : cases) {
    const std::string p = temp_path(c.file);
    write_bytes(p, c.bytes);
    const std::string msg = error_of(p);
    INFO(std::string(c.file), ": ", msg);   // (doctest prints a const char* as a pointer)
    CHECK(msg.find(p) != std::string::npos);
    CHECK(msg.find(c.needle) != std::string::npos);
  }
  const std::string missing = temp_path("does_not_exist.npy");
  CHECK(error_of(missing).find(missing + ": cannot open") != std::string::npos);
  // The good bytes do load (so the cases above fail for the reason named, not a broken writer).
  write_bytes(temp_path("good.npy"), good);
  CHECK(load_npy(temp_path("good.npy")).to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5});
  // float16 cannot be saved.
  CHECK_THROWS_WITH_AS(save_npy(temp_path("h.npy"), Tensor::zeros({2}, DType::Float16)),
                       doctest::Contains("not supported"), Error);
}
