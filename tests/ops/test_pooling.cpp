// Tests of max_pool2d, avg_pool2d and adaptive_avg_pool2d (kernels/pooling.h): float64
// finite-difference gradients with padding and odd sizes, PyTorch fixtures (including a case
// full of ties for max pooling's first-maximum rule), hand-checked values and bad-input errors.
// Run: ./build/tests/test_ops -tc='*pool*'
#include <doctest/doctest.h>

#include <string>

#include "kernels/pooling.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using namespace moeseg::testing;

MOESEG_OP_TEST("max_pool2d", "grad");
MOESEG_OP_TEST("max_pool2d", "torch");
MOESEG_OP_TEST("avg_pool2d", "grad");
MOESEG_OP_TEST("avg_pool2d", "torch");
MOESEG_OP_TEST("adaptive_avg_pool2d", "grad");
MOESEG_OP_TEST("adaptive_avg_pool2d", "torch");

namespace {


void pool_gradcheck(const char* op, const Shape& xs, uint64_t seed,
                    const std::function<Tensor(const Tensor&)>& f) {
  // Random values are distinct with probability 1, so max pooling is differentiable there.
  CHECK(check_gradients(op, [&](const std::vector<Tensor>& v) { return f(v[0]); }, {rand_input(xs, -1, 1, seed)}));
}

}  // namespace

TEST_CASE("max_pool2d: gradients") {
  auto mp = [](int64_t k, int64_t s, int64_t p) { return [=](const Tensor& x) { return max_pool2d(x, k, s, p); }; };
  pool_gradcheck("max_pool2d", {1, 3, 7, 11}, 1, mp(3, 2, 1));   // padding, odd sizes
  pool_gradcheck("max_pool2d", {2, 3, 8, 7}, 2, mp(2, 2, 0));
  pool_gradcheck("max_pool2d", {1, 37, 3, 4}, 3, mp(3, 1, 1));   // overlapping windows, 37 channels
  pool_gradcheck("max_pool2d", {1, 2, 9, 9}, 4, mp(5, 3, 2));
}

TEST_CASE("avg_pool2d: gradients") {
  auto ap = [](int64_t k, int64_t s, int64_t p) { return [=](const Tensor& x) { return avg_pool2d(x, k, s, p); }; };
  pool_gradcheck("avg_pool2d", {1, 3, 7, 11}, 5, ap(3, 2, 1));
  pool_gradcheck("avg_pool2d", {2, 3, 8, 7}, 6, ap(2, 2, 0));
  pool_gradcheck("avg_pool2d", {1, 37, 3, 4}, 7, ap(3, 1, 1));
  pool_gradcheck("avg_pool2d", {1, 2, 11, 9}, 8, ap(5, 3, 2));
}

TEST_CASE("adaptive_avg_pool2d: gradients") {
  auto aap = [](int64_t h, int64_t w) { return [=](const Tensor& x) { return adaptive_avg_pool2d(x, h, w); }; };
  pool_gradcheck("adaptive_avg_pool2d", {1, 3, 7, 11}, 9, aap(3, 4));    // uneven, overlapping bins
  pool_gradcheck("adaptive_avg_pool2d", {2, 37, 2, 3}, 10, aap(1, 1));   // global
  pool_gradcheck("adaptive_avg_pool2d", {1, 2, 4, 5}, 11, aap(7, 9));    // more bins than pixels
  pool_gradcheck("adaptive_avg_pool2d", {1, 3, 13, 6}, 12, aap(6, 6));
}

TEST_CASE("pooling: hand-checked values") {
  // 0..15 in a 4x4 plane.
  Tensor x = Tensor::arange(16, DType::Float64).reshape({1, 1, 4, 4});
  Tensor m = max_pool2d(x, 3, 2, 1);   // windows rows {0,1},{1,2,3} x cols {0,1},{1,2,3}
  CHECK(m.at({0, 0, 0, 0}) == 5.0);
  CHECK(m.at({0, 0, 0, 1}) == 7.0);
  CHECK(m.at({0, 0, 1, 1}) == 15.0);
  Tensor a = avg_pool2d(x, 3, 2, 1);   // count_include_pad: always divided by 9
  CHECK(a.at({0, 0, 0, 0}) == doctest::Approx((0 + 1 + 4 + 5) / 9.0));
  CHECK(a.at({0, 0, 1, 1}) == doctest::Approx((5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.0));
  Tensor g = adaptive_avg_pool2d(x, 3, 3);   // bins [0,2),[1,3),[2,4)
  CHECK(g.at({0, 0, 0, 0}) == doctest::Approx((0 + 1 + 4 + 5) / 4.0));
  CHECK(g.at({0, 0, 2, 1}) == doctest::Approx((9 + 10 + 13 + 14) / 4.0));
  // Ties: the gradient goes to the first maximum in row-major order only.
  Tensor t = Tensor::ones({1, 1, 2, 2}, DType::Float64).set_requires_grad(true);
  Tensor y = max_pool2d(t, 2, 2, 0);
  auto gr = autograd::grad(y, {t}, Tensor::ones({1, 1, 1, 1}, DType::Float64));
  CHECK(gr[0].to_vector<double>() == std::vector<double>{1, 0, 0, 0});
}

TEST_CASE("max_pool2d: matches PyTorch") {
  for (const char* name : {"max_pool2d_k3s2p1", "max_pool2d_k2s2", "max_pool2d_k3s1p1_c37", "max_pool2d_ties_k3s2p1"}) {
    INFO("case " << name);
    run_fixture("max_pool2d", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return max_pool2d(in.at("x"), f.params["kernel"], f.params["stride"], f.params["padding"]);
    });
  }
}

TEST_CASE("avg_pool2d: matches PyTorch") {
  for (const char* name : {"avg_pool2d_k3s2p1", "avg_pool2d_k2s2_c37", "avg_pool2d_k3s1p1", "avg_pool2d_k5s3p2"}) {
    INFO("case " << name);
    run_fixture("avg_pool2d", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return avg_pool2d(in.at("x"), f.params["kernel"], f.params["stride"], f.params["padding"]);
    });
  }
}

TEST_CASE("adaptive_avg_pool2d: matches PyTorch") {
  for (const char* name : {"adaptive_avg_pool2d_5x7_to_3x4", "adaptive_avg_pool2d_global_c37",
                           "adaptive_avg_pool2d_13x17_to_6x6", "adaptive_avg_pool2d_up_4x5_to_7x9"}) {
    INFO("case " << name);
    run_fixture("adaptive_avg_pool2d", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return adaptive_avg_pool2d(in.at("x"), f.params["out_h"], f.params["out_w"]);
    });
  }
}

TEST_CASE("pooling: bad input names the op") {
  Tensor x = Tensor::zeros({1, 2, 5, 5});
  expect_error([&] { max_pool2d(Tensor::zeros({2, 5, 5}), 2, 2); }, "max_pool2d");   // 3-D
  expect_error([&] { max_pool2d(x, 0, 1); }, "max_pool2d");                          // kernel 0
  expect_error([&] { max_pool2d(x, 3, 0); }, "max_pool2d");                          // stride 0
  expect_error([&] { max_pool2d(x, 3, 1, 2); }, "max_pool2d");                       // pad > k/2
  expect_error([&] { max_pool2d(x, 7, 1); }, "max_pool2d");                          // kernel > input
  expect_error([&] { max_pool2d(Tensor::zeros({0, 2, 5, 5}), 2, 2); }, "max_pool2d");
  expect_error([&] { avg_pool2d(x, 3, 1, 2); }, "avg_pool2d");
  expect_error([&] { avg_pool2d(Tensor::zeros({1, 2, 5, 5}, DType::Int32), 2, 2); }, "avg_pool2d");
  expect_error([&] { avg_pool2d(x, 6, 1); }, "avg_pool2d");
  expect_error([&] { adaptive_avg_pool2d(x, 0, 3); }, "adaptive_avg_pool2d");
  expect_error([&] { adaptive_avg_pool2d(Tensor::zeros({5, 5}), 2, 2); }, "adaptive_avg_pool2d");
}

TEST_CASE("max_pool2d: without a graph (no indices kept) the values are the same as with one") {
  Tensor x = rand_input({2, 3, 9, 11}, -1.0, 1.0, 99).to(DType::Float32).detach();
  Tensor with_grad = x.clone().set_requires_grad(true);
  Tensor a = max_pool2d(with_grad, 3, 2, 1);
  CHECK(a.requires_grad());
  Tensor b;
  {
    NoGradGuard ng;
    b = max_pool2d(x, 3, 2, 1);
  }
  CHECK(!b.requires_grad());
  CHECK(a.detach().to_vector<float>() == b.to_vector<float>());
}
