// Tests for kernels/softmax.{h,cpp}: softmax and log_softmax over dims 0, 1 (channel of NCHW)
// and -1 — finite-difference gradients in float64, PyTorch fixtures (tools/fixtures/cases_math.py),
// invariants (rows sum to 1, exp(log_softmax) == softmax, huge logits stay finite), strided
// inputs, thread-count invariance, and bad input. Run: ./build/tests/test_ops -tc='*softmax*'
#include <doctest/doctest.h>

#include "support/threads.h"

#include "support/gradcheck.h"
#include <omp.h>

#include <cmath>
#include <limits>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "support/fixtures.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

MOESEG_OP_TEST("softmax", "grad");
MOESEG_OP_TEST("softmax", "torch");
MOESEG_OP_TEST("log_softmax", "grad");
MOESEG_OP_TEST("log_softmax", "torch");

namespace {


}  // namespace

TEST_CASE("softmax: gradients vs finite differences over dims 0, 1, -1") {
  for (int64_t dim : {0, 1, -1}) {
    CAPTURE(dim);
    Tensor x = testing::rand_input({3, 5, 4}, -3, 3, 11);
    CHECK(testing::check_gradients("softmax", [dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); }, {x}));
    CHECK(testing::check_gradients("log_softmax", [dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); },
                                   {x}));
  }
}

TEST_CASE("softmax: gradients on awkward shapes (batch 1, 37 classes, >64 pixels per map)") {
  Tensor a = testing::rand_input({1, 37}, -4, 4, 3);
  CHECK(testing::check_gradients("softmax", [](const std::vector<Tensor>& in) { return softmax(in[0], -1); }, {a}));
  CHECK(testing::check_gradients("log_softmax", [](const std::vector<Tensor>& in) { return log_softmax(in[0], 1); }, {a}));
  // 3 channels x 99 pixels: two lane blocks per image, the second one partial.
  Tensor b = testing::rand_input({1, 3, 9, 11}, -3, 3, 5);
  CHECK(testing::check_gradients("softmax", [](const std::vector<Tensor>& in) { return softmax(in[0], 1); }, {b}));
  CHECK(testing::check_gradients("log_softmax", [](const std::vector<Tensor>& in) { return log_softmax(in[0], 1); }, {b}));
  // A single class (output constant 1 / 0, gradient 0) and a 0-d input.
  Tensor c = testing::rand_input({4, 1, 3}, -1, 1, 9);
  CHECK(testing::check_gradients("softmax", [](const std::vector<Tensor>& in) { return softmax(in[0], 1); }, {c}));
  Tensor s = testing::rand_input({}, -1, 1, 9);
  Tensor ys = softmax(s, 0);
  CHECK(ys.dim() == 0);
  CHECK(ys.item() == doctest::Approx(1.0));
}

TEST_CASE("softmax: PyTorch fixtures") {
  for (const char* op : {"softmax", "log_softmax"}) {
    for (const char* c : {"_last_5x37", "_dim0_4x3x5", "_channel_2x6x3x5", "_channel_1x3x9x11"}) {
      std::string name = std::string(op) + c;
      CAPTURE(name);
      bool log = std::string(op) == "log_softmax";
      testing::run_fixture(op, name, [log](std::map<std::string, Tensor>& in, const testing::Fixture& f) {
        int64_t dim = f.params["dim"].get<int64_t>();
        return log ? log_softmax(in["x"], dim) : softmax(in["x"], dim);
      });
    }
  }
  testing::run_fixture("softmax", "softmax_large_logits", [](std::map<std::string, Tensor>& in, const testing::Fixture& f) {
    return softmax(in["x"], f.params["dim"].get<int64_t>());
  });
}

TEST_CASE("softmax: invariants, extreme logits, strided input") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = rand({2, 7, 3, 5}, dt);
    Tensor y = softmax(x, 1);
    Tensor ones = Tensor::ones({2, 3, 5}, dt);
    CHECK(testing::expect_close(sum(y, {1}), ones, {1e-6, 1e-6}, "softmax rows sum to 1"));
    CHECK(testing::expect_close(exp(log_softmax(x, 1)), y, {1e-6, 1e-5}, "exp(log_softmax) == softmax"));
  }
  // Logits of +-1000: no overflow, exact one-hot.
  Tensor big = Tensor::from_vector<float>({1000.f, -1000.f, 999.f, 0.f}, {1, 4});
  Tensor y = softmax(big, 1);
  CHECK(y.at({0, 0}) == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
  CHECK(y.at({0, 1}) == 0.0);
  Tensor ly = log_softmax(big, 1);
  CHECK(ly.at({0, 1}) == doctest::Approx(-2000.0 - std::log1p(std::exp(-1.0))));
  CHECK(std::isfinite(ly.at({0, 3})));
  // -inf logits get probability 0 (a masked expert).
  Tensor m = Tensor::from_vector<double>({-std::numeric_limits<double>::infinity(), 0.0, 0.0}, {3});
  Tensor ym = softmax(m, 0);
  CHECK(ym.at({0}) == 0.0);
  CHECK(ym.at({1}) == doctest::Approx(0.5));
  // A transposed (non-contiguous) input gives the same result as its contiguous copy.
  Tensor base = rand({6, 4}, DType::Float64);
  Tensor t = base.transpose(0, 1);
  REQUIRE_FALSE(t.is_contiguous());
  CHECK(testing::expect_close(softmax(t, 1), softmax(t.contiguous(), 1), {0, 0}, "strided softmax"));
  CHECK(testing::expect_close(log_softmax(t, 0), log_softmax(t.contiguous(), 0), {0, 0}, "strided log_softmax"));
}

TEST_CASE("softmax: results do not depend on the thread count") {
  Tensor x = randn({3, 19, 41, 37}, DType::Float32);   // channel softmax over >64-lane blocks
  Tensor gy = randn(x.sizes(), DType::Float32);
  Tensor xr = x.detach().clone().set_requires_grad(true);
  std::vector<std::vector<float>> outs, grads;
  for (int threads : {1, 2, 3}) {
    const auto use = testing::run_with_threads(threads, [&] {
      Tensor y = softmax(xr, 1);
      outs.push_back(y.to_vector<float>());
      grads.push_back(autograd::grad(y, {xr}, gy)[0].to_vector<float>());
    });
    testing::check_ran_on_several_threads(use, "softmax forward + backward");
  }
  CHECK(outs[0] == outs[1]);
  CHECK(outs[0] == outs[2]);
  CHECK(grads[0] == grads[1]);
  CHECK(grads[0] == grads[2]);
}

TEST_CASE("softmax: bad input names the op") {
  Tensor x = Tensor::zeros({2, 3});
  expect_error([&] { softmax(x, 2); }, "softmax");
  expect_error([&] { log_softmax(x, -3); }, "log_softmax");
  expect_error([&] { softmax(Tensor::zeros({2, 3}, DType::Int64), 1); }, "softmax");
  expect_error([&] { log_softmax(Tensor(), 0); }, "log_softmax");
}
