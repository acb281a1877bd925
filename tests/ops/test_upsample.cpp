// Tests of upsample_bilinear2d and upsample_nearest2d (kernels/upsample.h): float64
// finite-difference gradients (x2, odd target sizes, downsampling, both align_corners modes),
// PyTorch fixtures, hand-checked values, a bitwise determinism check of the backward across
// thread counts, and bad-input errors.
// Run: ./build/tests/test_ops -tc='upsample*'
#include <doctest/doctest.h>

#include "support/threads.h"
#include <omp.h>

#include <string>

#include "kernels/upsample.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using namespace moeseg::testing;

MOESEG_OP_TEST("upsample_bilinear2d", "grad");
MOESEG_OP_TEST("upsample_bilinear2d", "torch");
MOESEG_OP_TEST("upsample_nearest2d", "grad");
MOESEG_OP_TEST("upsample_nearest2d", "torch");

namespace {


void bilinear_gradcheck(const Shape& xs, int64_t oh, int64_t ow, bool ac, uint64_t seed) {
  INFO("bilinear " << shape_str(xs) << " -> " << oh << "x" << ow << " align_corners=" << ac);
  CHECK(check_gradients(
      "upsample_bilinear2d", [=](const std::vector<Tensor>& v) { return upsample_bilinear2d(v[0], oh, ow, ac); },
      {rand_input(xs, -1, 1, seed)}));
}

void nearest_gradcheck(const Shape& xs, int64_t oh, int64_t ow, uint64_t seed) {
  INFO("nearest " << shape_str(xs) << " -> " << oh << "x" << ow);
  CHECK(check_gradients(
      "upsample_nearest2d", [=](const std::vector<Tensor>& v) { return upsample_nearest2d(v[0], oh, ow); },
      {rand_input(xs, -1, 1, seed)}));
}

}  // namespace

TEST_CASE("upsample_bilinear2d: gradients") {
  for (bool ac : {true, false}) {
    bilinear_gradcheck({1, 3, 5, 7}, 10, 14, ac, 1);     // x2
    bilinear_gradcheck({2, 3, 4, 6}, 7, 11, ac, 2);      // odd target
    bilinear_gradcheck({1, 2, 13, 11}, 5, 4, ac, 3);     // downsampling
    bilinear_gradcheck({1, 37, 2, 3}, 3, 5, ac, 4);      // 37 channels
    bilinear_gradcheck({1, 2, 5, 6}, 1, 1, ac, 5);       // to a single pixel
  }
}

TEST_CASE("upsample_nearest2d: gradients") {
  nearest_gradcheck({1, 3, 5, 7}, 10, 14, 6);
  nearest_gradcheck({2, 3, 4, 6}, 7, 11, 7);
  nearest_gradcheck({1, 2, 13, 11}, 5, 4, 8);
  nearest_gradcheck({1, 37, 2, 3}, 6, 9, 9);
}

TEST_CASE("upsample: hand-checked values") {
  // [0, 1, 2] -> 5 samples.
  Tensor x = Tensor::arange(3, DType::Float64).reshape({1, 1, 1, 3});
  // align_corners=True: src = i * (3-1)/(5-1) = 0, .5, 1, 1.5, 2.
  CHECK(upsample_bilinear2d(x, 1, 5, true).to_vector<double>() == std::vector<double>{0, 0.5, 1, 1.5, 2});
  // align_corners=False: src = max((i + .5) * 3/5 - .5, 0) = 0 (clamped from -0.2), .4, 1, 1.6, 2 (edge).
  auto v = upsample_bilinear2d(x, 1, 5, false).to_vector<double>();
  std::vector<double> want = {0, 0.4, 1.0, 1.6, 2.0};
  for (size_t i = 0; i < 5; ++i) CHECK(v[i] == doctest::Approx(want[i]).epsilon(1e-12));
  // nearest: floor(i * 3/5) = 0, 0, 1, 1, 2.
  CHECK(upsample_nearest2d(x, 1, 5).to_vector<double>() == std::vector<double>{0, 0, 1, 1, 2});
  // nearest with a float scale that is not exact: 3 -> 9 takes floor(i * float(1/3)): 0,0,0,1,1,1,2,2,2.
  CHECK(upsample_nearest2d(x, 1, 9).to_vector<double>() == std::vector<double>{0, 0, 0, 1, 1, 1, 2, 2, 2});
}

TEST_CASE("upsample: backward is bitwise deterministic across thread counts") {
  // Large enough to take the parallel path; planes are split between threads, each input
  // element is accumulated by exactly one thread in a fixed order.
  Tensor x = rand_input({2, 16, 33, 35}, -1, 1, 31).to(DType::Float32).detach().set_requires_grad(true);
  Tensor g = rand_input({2, 16, 65, 69}, -1, 1, 32).to(DType::Float32).detach();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    const auto use = testing::run_with_threads(threads, [&] {
      Tensor yb = upsample_bilinear2d(x, 65, 69, false);
      Tensor yn = upsample_nearest2d(x, 65, 69);
      auto gb = autograd::grad(yb, {x}, g)[0].to_vector<float>();
      auto gn = autograd::grad(yn, {x}, g)[0].to_vector<float>();
      gb.insert(gb.end(), gn.begin(), gn.end());
      results.push_back(gb);
    });
    testing::check_ran_on_several_threads(use, "upsample forward + backward");
  }
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
}

TEST_CASE("upsample_bilinear2d: matches PyTorch") {
  for (const char* name : {"upsample_bilinear2d_x2_ac", "upsample_bilinear2d_x2", "upsample_bilinear2d_odd_ac",
                           "upsample_bilinear2d_odd", "upsample_bilinear2d_down_ac", "upsample_bilinear2d_down",
                           "upsample_bilinear2d_to1x1_ac", "upsample_bilinear2d_x4"}) {
    INFO("case " << name);
    run_fixture("upsample_bilinear2d", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return upsample_bilinear2d(in.at("x"), f.params["out_h"], f.params["out_w"], f.params["align_corners"]);
    });
  }
}

TEST_CASE("upsample_nearest2d: matches PyTorch") {
  for (const char* name :
       {"upsample_nearest2d_x2", "upsample_nearest2d_odd", "upsample_nearest2d_down", "upsample_nearest2d_x3",
        "upsample_nearest2d_float_scale"}) {
    INFO("case " << name);
    run_fixture("upsample_nearest2d", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return upsample_nearest2d(in.at("x"), f.params["out_h"], f.params["out_w"]);
    });
  }
}

TEST_CASE("upsample: bad input names the op") {
  Tensor x = Tensor::zeros({1, 2, 4, 4});
  expect_error([&] { upsample_bilinear2d(x, 0, 8, false); }, "upsample_bilinear2d");
  expect_error([&] { upsample_bilinear2d(Tensor::zeros({2, 4, 4}), 8, 8, true); }, "upsample_bilinear2d");
  expect_error([&] { upsample_bilinear2d(Tensor::zeros({1, 0, 4, 4}), 8, 8, true); }, "upsample_bilinear2d");
  expect_error([&] { upsample_bilinear2d(Tensor::zeros({1, 2, 4, 4}, DType::Int64), 8, 8, true); },
               "upsample_bilinear2d");
  expect_error([&] { upsample_nearest2d(x, 8, -1); }, "upsample_nearest2d");
  expect_error([&] { upsample_nearest2d(Tensor::zeros({4, 4}), 8, 8); }, "upsample_nearest2d");
}
