// Tensor core: views share storage, strides, contiguous copies, dtype conversion, errors, and
// Tensor::to(cuda) on each kind of machine (no CUDA device, the emulated one, a GPU).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_emulation.h"
#include "core/device_probe.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "support/gradcheck.h"

using namespace moeseg;

TEST_CASE("views share storage and slice/permute/expand index correctly") {
  Tensor t = Tensor::arange(24).view({2, 3, 4});
  CHECK(t.is_contiguous());
  Tensor s = t.slice(2, 1, 4, 2);   // columns 1 and 3
  CHECK(s.sizes() == Shape{2, 3, 2});
  CHECK(s.at({1, 2, 1}) == 23.0);
  CHECK(!s.is_contiguous());
  Tensor p = t.permute({2, 0, 1});
  CHECK(p.sizes() == Shape{4, 2, 3});
  CHECK(p.at({3, 1, 2}) == t.at({1, 2, 3}));
  Tensor c = p.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.to_vector<float>()[5] == p.at({0, 1, 2}));
  s.fill_(-1);   // writes through the view
  CHECK(t.at({0, 0, 1}) == -1.0);
  CHECK(t.at({0, 0, 0}) == 0.0);
  Tensor e = Tensor::arange(3).view({3, 1}).expand({3, 5});
  CHECK(e.strides() == Shape{1, 0});
  CHECK(e.at({2, 4}) == 2.0);
  CHECK(t.select(1, 2).sizes() == Shape{2, 4});
  CHECK(t.select(1, 2).at({1, 2}) == 22.0);
}

TEST_CASE("reshape of a non-contiguous tensor copies, view refuses") {
  Tensor t = Tensor::arange(6).view({2, 3}).transpose(0, 1);
  CHECK_THROWS_AS(t.view({6}), Error);
  Tensor r = t.reshape({6});
  CHECK(r.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("dtype conversion and from_vector round trip") {
  Tensor t = Tensor::from_vector<double>({1.5, -2.25, 3.0}, {3});
  CHECK(t.to(DType::Float32).to_vector<float>() == std::vector<float>{1.5f, -2.25f, 3.0f});
  CHECK(t.to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3});
}

TEST_CASE("bad input names the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  try {
    add(a, b);
    FAIL("no error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("add") != std::string::npos);
    CHECK(m.find("[2, 3]") != std::string::npos);
    CHECK(m.find("[4, 5]") != std::string::npos);
  }
  CHECK_THROWS_AS(add(a, Tensor::zeros({2, 3}, DType::Float64)), Error);
  CHECK_THROWS_AS(mean(Tensor::zeros({0})), Error);
}

// Three kinds of machine: no CUDA device (a CPU build, or a CUDA build without a usable GPU, and
// MOESEG_CUDA_EMULATE unset), the emulated device (MOESEG_CUDA_EMULATE=1), a GPU.
TEST_CASE("to(cuda) throws a clear Error without a CUDA device and round-trips every value with one") {
  const Device cuda{DeviceType::CUDA, 0};
  // Odd size, signed zeros, a subnormal and huge values: a copy that converts or drops bytes shows.
  const std::vector<float> v = {1.5f, -2.25f, 0.f, -0.f, 1e-40f, 3e38f, -7.125f};
  const Tensor h = Tensor::from_vector(v, {7});
  if (!device_available(DeviceType::CUDA)) {
    CHECK_FALSE(cuda_emulated());
    CHECK_FALSE(cuda_usable());
    moeseg::testing::expect_error([&] { h.to(cuda); }, std::vector<std::string>{"cuda:0", "not available"});
    moeseg::testing::expect_error([&] { Tensor::zeros({2}, DType::Float32, cuda); },
                                  std::vector<std::string>{"cuda:0", "not available"});
    return;
  }
  MESSAGE("CUDA device: " << std::string(cuda_emulated() ? "emulated" : "GPU"));
  const Tensor d = h.to(cuda);
  CHECK(d.device() == cuda);
  CHECK(d.sizes() == h.sizes());
  CHECK(d.dtype() == DType::Float32);
  CHECK(d.raw_data() != h.raw_data());
  const Tensor back = d.to(Device{});
  CHECK(back.device().is_cpu());
  const auto got = back.to_vector<float>();
  REQUIRE(got.size() == v.size());
  CHECK(std::memcmp(got.data(), v.data(), v.size() * sizeof(float)) == 0);   // bitwise: -0 stays -0
  // A permuted float64 view goes over contiguous, in the view's order; int64 keeps all 64 bits.
  const Tensor p = Tensor::arange(24, DType::Float64).view({2, 3, 4}).permute({2, 0, 1});
  const Tensor pd = p.to(cuda);
  CHECK(pd.sizes() == Shape{4, 2, 3});
  CHECK(pd.to(Device{}).to_vector<double>() == p.contiguous().to_vector<double>());
  const std::vector<int64_t> iv = {-(int64_t(1) << 40) - 3, 5, int64_t(1) << 62};
  CHECK(Tensor::from_vector(iv, {3}).to(cuda).to(Device{}).to_vector<int64_t>() == iv);
}

TEST_CASE("philox generator is deterministic and advances") {
  Generator g1(42), g2(42);
  Tensor a = rand({1000}, DType::Float32, g1), b = rand({1000}, DType::Float32, g2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  Tensor c = rand({1000}, DType::Float32, g1);
  CHECK(a.to_vector<float>() != c.to_vector<float>());
  Tensor n = randn({100000}, DType::Float64, g1);
  CHECK(std::abs(mean(n).item()) < 0.02);
  CHECK(std::abs(mean(square(n)).item() - 1.0) < 0.02);
  // Known-answer test of Philox4x32-10 (Random123 kat_vectors: counter and key all zero).
  auto r = philox4x32({0, 0, 0, 0}, {0, 0});
  CHECK(r[0] == 0x6627e8d5u);
  CHECK(r[1] == 0xe169c58du);
  CHECK(r[2] == 0xbc57ac4cu);
  CHECK(r[3] == 0x9b00dbd8u);
}

TEST_CASE("autograd accumulates across uses and frees the graph") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3});
  x.set_requires_grad(true);
  Tensor y = sum(add(mul(x, x), x));   // d/dx = 2x + 1
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 5, 7});
  CHECK_THROWS_AS(y.backward(), Error);   // graph freed
  Tensor z = sum(scale(x, 2.0));
  z.backward();   // accumulates
  CHECK(x.grad().to_vector<double>() == std::vector<double>{5, 7, 9});
  {
    NoGradGuard ng;
    CHECK(!mul(x, x).requires_grad());
  }
}

TEST_CASE("in-place change of a saved tensor is reported at backward") {
  Tensor x = Tensor::from_vector<double>({1, 2}, {2});
  x.set_requires_grad(true);
  Tensor w = Tensor::from_vector<double>({3, 4}, {2});
  Tensor y = sum(mul(x, w));
  w.fill_(0);
  CHECK_THROWS_AS(y.backward(), Error);
}

TEST_CASE("float16 and bfloat16 storage round trips with round-to-nearest-even") {
  Tensor t = Tensor::from_vector<float>({1.0f, -2.5f, 65504.0f, 1e-7f, 3.14159f, 1.0f + 1.0f / 2048}, {6});
  auto h = t.to(DType::Float16).to(DType::Float32).to_vector<float>();
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.5f);
  CHECK(h[2] == 65504.0f);                 // largest finite half
  CHECK(h[3] == doctest::Approx(1.1920929e-7f).epsilon(0.01));   // nearest subnormal (2 * 2^-24)
  CHECK(h[4] == 3.140625f);
  CHECK(h[5] == 1.0f);                     // exactly halfway: ties to even
  auto b = t.to(DType::BFloat16).to(DType::Float32).to_vector<float>();
  CHECK(b[0] == 1.0f);
  CHECK(b[4] == 3.140625f);
  CHECK(Tensor::full({2}, 1e6).to(DType::Float16).to(DType::Float32).to_vector<float>()[0] == INFINITY);
}

TEST_CASE("empty tensors of any shape are contiguous") {
  CHECK(Tensor::zeros({2, 0, 3}).is_contiguous());
  CHECK(Tensor::zeros({0}).is_contiguous());
  CHECK(Tensor::zeros({2, 0, 3}).contiguous().numel() == 0);
}
