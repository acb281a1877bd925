// Tests for kernels/dropout.{h,cpp}. torch's RNG is not ours, so the PyTorch fixtures cover the
// modes that do not depend on it (p = 0, evaluation, p = 1) and the C++ checks cover the rest:
// kept fraction ~ 1-p, kept values scaled by 1/(1-p), the mask a pure function of
// (seed, offset, index) and of nothing else (thread count), gradient = mask / (1-p).
// Run: ./build/tests/test_ops -tc='*dropout*'
#include <doctest/doctest.h>

#include "support/threads.h"

#include "support/gradcheck.h"
#include <omp.h>

#include <cmath>

#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "support/fixtures.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

MOESEG_OP_TEST("dropout", "grad");
MOESEG_OP_TEST("dropout", "torch");

namespace {


// Input with values in [0.5, 1.5): never zero, so "dropped" is visible as an exact zero.
Tensor positive_input(const Shape& shape, DType dt, uint64_t seed) {
  Generator g(seed);
  Tensor t = Tensor::empty(shape, dt);
  uniform_(t, 0.5, 1.5, g);
  return t;
}

}  // namespace

TEST_CASE("dropout: PyTorch fixtures for p = 0, evaluation and p = 1") {
  for (const char* name : {"dropout_p0_train", "dropout_eval", "dropout_p1_train"}) {
    CAPTURE(name);
    testing::run_fixture("dropout", name, [](std::map<std::string, Tensor>& in, const testing::Fixture& f) {
      Generator g(5);
      const double p = f.params["p"].get<double>();
      Tensor y = dropout(in["x"], p, f.params["training"].get<bool>(), g);
      // p = 0 and evaluation return the input itself (as torch); clone() gives autograd a node.
      if (p < 1.0) CHECK(y.same(in["x"]));
      return y.same(in["x"]) ? y.clone() : y;
    });
  }
}

TEST_CASE("dropout: gradient vs finite differences (fixed seed, so the mask is fixed)") {
  for (double p : {0.2, 0.5}) {
    CAPTURE(p);
    CHECK(testing::check_gradients("dropout",
                                   [p](const std::vector<Tensor>& in) {
                                     Generator g(77);
                                     return dropout(in[0], p, true, g);
                                   },
                                   {testing::rand_input({3, 37, 3}, -1, 1, 4)}));
  }
}

TEST_CASE("dropout: kept fraction, scaling, gradient = mask / (1-p)") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (double p : {0.1, 0.3, 0.75}) {
      CAPTURE(p);
      const int64_t n = 200003;   // odd: the last Philox block is partial
      Tensor x = positive_input({n}, dt, 3).set_requires_grad(true);
      Generator g(123);
      Tensor y = dropout(x, p, true, g);
      CHECK(g.offset() == static_cast<uint64_t>((n + 3) / 4));
      Tensor gx = autograd::grad(y, {x}, Tensor::ones({n}, dt))[0];
      auto xv = x.to(DType::Float64).to_vector<double>(), yv = y.to(DType::Float64).to_vector<double>(),
           gv = gx.to(DType::Float64).to_vector<double>();
      const double scale = 1.0 / (1.0 - p), tol = dt == DType::Float32 ? 1e-6 : 1e-14;
      int64_t kept = 0, bad_value = 0, bad_grad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const bool k = yv[i] != 0.0;
        kept += k;
        if (k && std::fabs(yv[i] - xv[i] * scale) > tol * std::fabs(xv[i] * scale)) ++bad_value;
        if (std::fabs(gv[i] - (k ? scale : 0.0)) > tol * scale) ++bad_grad;
      }
      // Binomial: 5 standard deviations of the kept fraction is < 0.005 at this n.
      CHECK(std::fabs(static_cast<double>(kept) / n - (1.0 - p)) < 0.005);
      CHECK(bad_value == 0);
      CHECK(bad_grad == 0);
    }
  }
}

TEST_CASE("dropout: the mask is a pure function of seed, offset and index") {
  const int64_t n = 70001;
  Tensor x = positive_input({7, n / 7}, DType::Float32, 9);
  const double p = 0.4;
  Generator g1(2024), g2(2024);
  g1.set_offset(1000);
  g2.set_offset(1000);
  Tensor y1, y2;
  testing::run_with_threads(1, [&] { y1 = dropout(x, p, true, g1); });
  const auto use = testing::run_with_threads(2, [&] { y2 = dropout(x, p, true, g2); });
  testing::check_ran_on_several_threads(use, "dropout");
  CHECK(y1.to_vector<float>() == y2.to_vector<float>());   // same seed/offset, any thread count
  // Element i is kept exactly when uniform_at(offset, i) > p: the documented Philox stream.
  Generator ref(2024);
  auto yv = y1.to_vector<float>();
  int64_t mismatches = 0;
  for (int64_t i = 0; i < x.numel(); ++i) mismatches += (yv[i] != 0.0f) != (ref.uniform_at(1000, i) > p);
  CHECK(mismatches == 0);
  // The next call draws from the next counter range: a different mask.
  Tensor y3 = dropout(x, p, true, g1);
  CHECK(y3.to_vector<float>() != yv);
  // Another seed, another mask.
  Generator g3(7);
  g3.set_offset(1000);
  CHECK(dropout(x, p, true, g3).to_vector<float>() != yv);
}

TEST_CASE("dropout: identity in evaluation and for p = 0, zeros for p = 1") {
  Tensor x = positive_input({4, 5}, DType::Float32, 1);
  Generator g(1);
  CHECK(dropout(x, 0.5, false, g).same(x));
  CHECK(dropout(x, 0.0, true, g).same(x));
  CHECK(g.offset() == 0);   // nothing drawn
  Tensor z = dropout(x, 1.0, true, g);
  for (float v : z.to_vector<float>()) CHECK(v == 0.0f);
  // A strided input is handled (made contiguous first).
  Tensor xt = positive_input({6, 5}, DType::Float64, 2).transpose(0, 1);
  Generator ga(3), gb(3);
  CHECK(dropout(xt, 0.5, true, ga).to_vector<double>() == dropout(xt.contiguous(), 0.5, true, gb).to_vector<double>());
}

TEST_CASE("dropout: bad p names the op") {
  Tensor x = Tensor::ones({3});
  CHECK(expect_error([&] { dropout(x, -0.1, true); }).find("dropout") != std::string::npos);
  CHECK(expect_error([&] { dropout(x, 1.5, false); }).find("dropout") != std::string::npos);
  CHECK(expect_error([&] { dropout(Tensor::ones({3}, DType::Int64), 0.5, true); }).find("dropout") != std::string::npos);
}
