// Tests for kernels/cross_entropy.{h,cpp}: finite-difference gradients (float64) for [N, C] and
// [N, C, H, W] logits with ignore pixels, class weights and each reduction; PyTorch fixtures
// (tools/fixtures/cases_math.py) including torch's nan for an all-ignored mean; hand-checked
// values; bit-identical results for 1/2/3 threads; and bad targets/shapes/options.
// Run: ./build/tests/test_ops -tc='*cross_entropy*'
#include <doctest/doctest.h>

#include "support/threads.h"

#include "support/gradcheck.h"
#include <omp.h>

#include <cmath>

#include "kernels/cross_entropy.h"
#include "support/fixtures.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

MOESEG_OP_TEST("cross_entropy", "grad");
MOESEG_OP_TEST("cross_entropy", "torch");

namespace {



// Targets in [0, C) with every `every`-th position set to `ignore` (deterministic pattern).
Tensor make_targets(const Shape& shape, int64_t C, int64_t ignore, int64_t every, uint64_t seed) {
  Generator g(seed);
  Tensor t = randint(0, C, shape, g);
  int64_t* p = t.data<int64_t>();
  if (every > 0)
    for (int64_t i = 0; i < t.numel(); i += every) p[i] = ignore;
  return t;
}

Tensor weights(int64_t C, uint64_t seed) {
  Tensor w = testing::rand_input({C}, 0.2, 2.0, seed);
  w.set_requires_grad(false);
  return w;
}

}  // namespace

TEST_CASE("cross_entropy: gradients for [N, C] logits (batch 1, 37 classes, weights)") {
  Tensor x = testing::rand_input({1, 37}, -3, 3, 1);
  Tensor t = Tensor::from_vector<int64_t>({29}, {1});
  for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    CAPTURE(to_string(red));
    CHECK(testing::check_gradients(
        "cross_entropy", [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, Tensor(), -100, red); },
        {x}));
  }
  Tensor x2 = testing::rand_input({5, 7}, -3, 3, 2);
  Tensor t2 = make_targets({5}, 7, -100, 3, 4);
  Tensor w = weights(7, 3);
  for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    CAPTURE(to_string(red));
    CHECK(testing::check_gradients(
        "cross_entropy", [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t2, w, -100, red); }, {x2}));
  }
}

TEST_CASE("cross_entropy: gradients for [N, C, H, W] with ignore pixels and class weights, each reduction") {
  Tensor x = testing::rand_input({2, 4, 3, 5}, -3, 3, 5);
  Tensor t = make_targets({2, 3, 5}, 4, 255, 4, 6);
  Tensor w = weights(4, 7);
  for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    for (bool weighted : {false, true}) {
      CAPTURE(to_string(red));
      CAPTURE(weighted);
      CHECK(testing::check_gradients("cross_entropy",
                                     [&](const std::vector<Tensor>& in) {
                                       return cross_entropy(in[0], t, weighted ? w : Tensor(), 255, red);
                                     },
                                     {x}));
    }
  }
  // 99 pixels per image: more than one 64-pixel block, the last one partial.
  Tensor x3 = testing::rand_input({1, 3, 9, 11}, -3, 3, 8);
  Tensor t3 = make_targets({1, 9, 11}, 3, -1, 7, 9);
  CHECK(testing::check_gradients(
      "cross_entropy", [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t3, weights(3, 10), -1); },
      {x3}));
}

TEST_CASE("cross_entropy: PyTorch fixtures") {
  for (const char* name : {"cross_entropy_2d_mean", "cross_entropy_2d_sum_batch1", "cross_entropy_ignore_weights",
                           "cross_entropy_ignore_sum", "cross_entropy_none_weights", "cross_entropy_weights_sum",
                           "cross_entropy_all_ignored"}) {
    CAPTURE(name);
    testing::run_fixture("cross_entropy", name, [](std::map<std::string, Tensor>& in, const testing::Fixture& f) {
      // The fixture's JSON params are an edge: the name is parsed there.
      const Reduction red = parse_reduction(f.params["reduction"].get<std::string>(), "fixture: key 'reduction'");
      Tensor w = in.count("weight") ? in["weight"] : Tensor();
      Tensor loss = cross_entropy(in["logits"], in["target"], w, f.params["ignore_index"].get<int64_t>(), red);
      return red == Reduction::None ? loss : loss.reshape({1});   // the fixture stores scalars as [1]
    });
  }
}

TEST_CASE("cross_entropy: values by hand, torch's nan for an all-ignored mean") {
  // Uniform logits: every pixel's loss is log(C).
  Tensor x = Tensor::zeros({2, 5, 3, 3}, DType::Float64);
  Tensor t = make_targets({2, 3, 3}, 5, -100, 0, 1);
  CHECK(cross_entropy(x, t).item() == doctest::Approx(std::log(5.0)).epsilon(1e-12));
  CHECK(cross_entropy(x, t, Tensor(), -100, Reduction::Sum).item() == doctest::Approx(18 * std::log(5.0)).epsilon(1e-12));
  // Weighted mean: sum(w_t * l) / sum(w_t) over non-ignored targets only.
  Tensor l2 = Tensor::from_vector<double>({2.0, 0.0, 0.0, 3.0, 0.0, 1.0}, {2, 3});
  Tensor t2 = Tensor::from_vector<int64_t>({0, 2}, {2});
  Tensor w2 = Tensor::from_vector<double>({1.0, 5.0, 3.0}, {3});
  const double l_a = std::log(std::exp(2.0) + 2.0) - 2.0, l_b = std::log(std::exp(3.0) + 1.0 + std::exp(1.0)) - 1.0;
  CHECK(cross_entropy(l2, t2, w2).item() == doctest::Approx((1.0 * l_a + 3.0 * l_b) / 4.0).epsilon(1e-12));
  Tensor none = cross_entropy(l2, Tensor::from_vector<int64_t>({-100, 2}, {2}), w2, -100, Reduction::None);
  CHECK(none.at({0}) == 0.0);
  CHECK(none.at({1}) == doctest::Approx(3.0 * l_b).epsilon(1e-12));
  // All ignored: mean is 0/0 = nan (as torch), sum is 0, and the gradient is zero.
  Tensor xi = testing::rand_input({2, 3}, -1, 1, 3);
  Tensor ti = Tensor::from_vector<int64_t>({7, 7}, {2});
  Tensor mean_loss = cross_entropy(xi, ti, Tensor(), 7);
  CHECK(std::isnan(mean_loss.item()));
  CHECK(cross_entropy(xi, ti, Tensor(), 7, Reduction::Sum).item() == 0.0);
  Tensor g = autograd::grad(mean_loss, {xi})[0];
  for (double v : g.to_vector<double>()) CHECK(v == 0.0);
  // An ignore_index inside [0, C) ignores that class.
  Tensor xc = testing::rand_input({4, 3}, -1, 1, 4);
  Tensor tc = Tensor::from_vector<int64_t>({1, 0, 1, 2}, {4});
  Tensor tc_ref = Tensor::from_vector<int64_t>({-100, 0, -100, 2}, {4});
  CHECK(cross_entropy(xc, tc, Tensor(), 1).item() == cross_entropy(xc, tc_ref).item());
}

TEST_CASE("cross_entropy: bit-identical for 1, 2 and 3 threads") {
  Tensor x = randn({3, 19, 37, 41}, DType::Float32).set_requires_grad(true);
  Tensor t = make_targets({3, 37, 41}, 19, 255, 5, 2);
  Tensor w = rand({19}, DType::Float32);
  std::vector<float> losses;
  std::vector<std::vector<float>> grads;
  for (int threads : {1, 2, 3}) {
    const auto use = testing::run_with_threads(threads, [&] {
      Tensor loss = cross_entropy(x, t, w, 255);
      losses.push_back(static_cast<float>(loss.item()));
      grads.push_back(autograd::grad(loss, {x})[0].to_vector<float>());
    });
    testing::check_ran_on_several_threads(use, "cross_entropy forward + backward");
  }
  CHECK(losses[0] == losses[1]);
  CHECK(losses[0] == losses[2]);
  CHECK(grads[0] == grads[1]);
  CHECK(grads[0] == grads[2]);
}

TEST_CASE("cross_entropy: bad input names the op, the value and the position") {
  Tensor x = Tensor::zeros({2, 5, 3, 4});
  Tensor t = Tensor::zeros({2, 3, 4}, DType::Int64);
  t.data<int64_t>()[1 * 12 + 2 * 4 + 3] = 5;   // position [1, 2, 3], one past the last class
  std::string msg = expect_error([&] { cross_entropy(x, t); });
  CHECK(contains(msg, "cross_entropy"));
  CHECK(contains(msg, "target value 5"));
  CHECK(contains(msg, "[1, 2, 3]"));
  t.data<int64_t>()[1 * 12 + 2 * 4 + 3] = -3;   // negative and not the ignore_index
  CHECK(contains(expect_error([&] { cross_entropy(x, t); }), "-3"));
  Tensor ok = Tensor::zeros({2, 3, 4}, DType::Int64);
  CHECK(contains(expect_error([&] { cross_entropy(x, Tensor::zeros({2, 3, 5}, DType::Int64)); }), "cross_entropy"));
  CHECK(contains(expect_error([&] { cross_entropy(x, Tensor::zeros({2, 3, 4})); }), "int64"));
  CHECK(contains(expect_error([&] { cross_entropy(x, ok, Tensor::ones({4})); }), "cross_entropy"));
  // The reduction is an enum; a name from outside is parsed where it enters, and an unknown one
  // names the key, the value and the known names.
  expect_error([&] { parse_reduction("average", "fixture.json: key 'reduction'"); },
               {"fixture.json: key 'reduction' is 'average'", "(known: mean, sum, none)"});
  for (const char* name : {"mean", "sum", "none"}) CHECK(to_string(parse_reduction(name, "test")) == name);
  CHECK(contains(expect_error([&] { cross_entropy(Tensor::zeros({5}), Tensor::zeros({}, DType::Int64)); }),
                 "cross_entropy"));
}
