// Tests of batch_norm2d (kernels/batch_norm.h): float64 finite-difference gradients in training
// and evaluation (affine on/off, batch 1, 37 channels), PyTorch fixtures including the running
// statistics after one training step, invariants of the normalised output, bad-input errors.
// Run: ./build/tests/test_ops -tc='batch_norm2d*'
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "kernels/batch_norm.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using namespace moeseg::testing;

MOESEG_OP_TEST("batch_norm2d", "grad");
MOESEG_OP_TEST("batch_norm2d", "torch");

namespace {

Tensor stat(int64_t c, double lo, double hi, uint64_t seed) { return rand_input({c}, lo, hi, seed).set_requires_grad(false); }

// Gradients w.r.t. x, weight and bias (affine) or x alone. Running statistics, when given, are
// updated by every call in training mode, which must not change the output (batch statistics).
void bn_gradcheck(const Shape& xs, bool training, bool affine, bool track, uint64_t seed) {
  const int64_t c = xs[1];
  Tensor rm = track ? stat(c, -0.5, 0.5, seed + 10) : Tensor();
  Tensor rv = track ? stat(c, 0.5, 2.0, seed + 11) : Tensor();
  std::vector<Tensor> in = {rand_input(xs, -1.0, 3.0, seed)};
  if (affine) {
    in.push_back(rand_input({c}, 0.5, 1.5, seed + 1));
    in.push_back(rand_input({c}, -1.0, 1.0, seed + 2));
  }
  CHECK(check_gradients(
      "batch_norm2d",
      [&](const std::vector<Tensor>& v) {
        return batch_norm2d(v[0], affine ? v[1] : Tensor(), affine ? v[2] : Tensor(), rm, rv, training, 0.1, 1e-5);
      },
      in));
}


}  // namespace

TEST_CASE("batch_norm2d: gradients in training mode") {
  bn_gradcheck({2, 3, 5, 7}, true, true, true, 1);
  bn_gradcheck({1, 3, 7, 11}, true, true, false, 2);    // batch 1, no running stats
  bn_gradcheck({3, 37, 2, 3}, true, true, true, 3);     // 37 channels
  bn_gradcheck({2, 3, 5, 7}, true, false, true, 4);     // affine off
  bn_gradcheck({5, 2, 1, 1}, true, true, false, 5);     // 1x1 planes: statistics over the batch only
}

TEST_CASE("batch_norm2d: gradients in evaluation mode") {
  bn_gradcheck({2, 3, 5, 7}, false, true, true, 6);
  bn_gradcheck({1, 37, 3, 4}, false, true, true, 7);
  bn_gradcheck({1, 3, 7, 11}, false, false, true, 8);
}

TEST_CASE("batch_norm2d: training output is normalised and the running stats move by momentum") {
  Tensor x = rand_input({4, 3, 5, 7}, 2.0, 6.0, 21).set_requires_grad(false);
  Tensor rm = Tensor::zeros({3}, DType::Float64), rv = Tensor::ones({3}, DType::Float64);
  Tensor y = batch_norm2d(x, Tensor(), Tensor(), rm, rv, true, 0.25, 1e-5);
  const int64_t m = 4 * 5 * 7;
  for (int64_t c = 0; c < 3; ++c) {
    double sx = 0, sy = 0, syy = 0;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t w = 0; w < 7; ++w) {
          sx += x.at({n, c, h, w});
          sy += y.at({n, c, h, w});
          syy += y.at({n, c, h, w}) * y.at({n, c, h, w});
        }
    CHECK(std::fabs(sy / m) < 1e-12);
    CHECK(syy / m == doctest::Approx(1.0).epsilon(1e-3));   // biased variance, eps = 1e-5
    CHECK(rm.at({c}) == doctest::Approx(0.25 * sx / m));
    CHECK(rv.at({c}) > 0.75);   // 0.75 * 1 + 0.25 * (unbiased variance > 0)
  }
  // Evaluation leaves the running statistics alone.
  Tensor rm0 = rm.clone(), rv0 = rv.clone();
  batch_norm2d(x, Tensor(), Tensor(), rm, rv, false);
  expect_close(rm, rm0, kTolF64, "running_mean after eval");
  expect_close(rv, rv0, kTolF64, "running_var after eval");
}

TEST_CASE("batch_norm2d: matches PyTorch, running statistics included") {
  for (const char* name : {"batch_norm2d_train", "batch_norm2d_train_c37", "batch_norm2d_train_batch1",
                           "batch_norm2d_train_noaffine", "batch_norm2d_eval"}) {
    INFO("case " << name);
    run_fixture("batch_norm2d", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      const auto& p = f.params;
      Tensor rm = in.at("running_mean"), rv = in.at("running_var");
      Tensor y = batch_norm2d(in.at("x"), in.count("weight") ? in.at("weight") : Tensor(),
                              in.count("bias") ? in.at("bias") : Tensor(), rm, rv, p["training"].get<bool>(),
                              p["momentum"].get<double>(), p["eps"].get<double>());
      const Tolerance tol = fixture_tolerance(y.dtype());
      const std::string dt = dtype_name(y.dtype());
      expect_close(rm, f.tensor("out.running_mean"), tol, f.name + " [" + dt + "]: running_mean");
      expect_close(rv, f.tensor("out.running_var"), tol, f.name + " [" + dt + "]: running_var");
      return y;
    });
  }
}

TEST_CASE("batch_norm2d: bad input names the op") {
  Tensor x = Tensor::zeros({2, 3, 4, 4});
  Tensor c3 = Tensor::ones({3});
  expect_error([&] { batch_norm2d(Tensor::zeros({2, 3, 4}), c3, c3, c3, c3, true); }, "batch_norm2d");
  expect_error([&] { batch_norm2d(x, Tensor::ones({4}), c3, c3, c3, true); }, "batch_norm2d");        // weight [4]
  expect_error([&] { batch_norm2d(x, c3, c3, Tensor::ones({2}), c3, true); }, "batch_norm2d");        // mean [2]
  expect_error([&] { batch_norm2d(x, c3, c3, Tensor(), Tensor(), false); }, "batch_norm2d");          // eval, no stats
  expect_error([&] { batch_norm2d(x, c3, c3, c3, Tensor(), true); }, "batch_norm2d");                 // half the stats
  expect_error([&] { batch_norm2d(x, Tensor::ones({3}, DType::Float64), c3, c3, c3, true); }, "batch_norm2d");
  expect_error([&] { batch_norm2d(Tensor::zeros({1, 3, 1, 1}), c3, c3, c3, c3, true); }, "batch_norm2d");  // 1 value
  expect_error([&] { batch_norm2d(Tensor::zeros({0, 3, 4, 4}), c3, c3, c3, c3, true); }, "batch_norm2d");  // empty
  expect_error([&] { batch_norm2d(Tensor::zeros({2, 3, 4, 4}, DType::Int64), Tensor(), Tensor(), Tensor(), Tensor(),
                                  true); }, "batch_norm2d");
}
