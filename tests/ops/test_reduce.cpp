// Tests of the reductions (kernels/reduce.h): sum and mean over dims with keepdim, max over a
// dim and over everything (ties included), argmax, topk (largest and smallest, middle dim) and
// sum_to. Finite differences in float64, PyTorch fixtures (tools/fixtures/cases_core.py), exact
// hand-checked values and the errors for bad input. Run: ./build/tests/test_ops -tc='*reduce*'
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/autograd.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;
using testing::check_gradients;
using testing::Fixture;
using testing::rand_input;
using testing::run_fixture;

MOESEG_OP_TEST("sum", "grad");
MOESEG_OP_TEST("sum", "torch");
MOESEG_OP_TEST("mean", "grad");
MOESEG_OP_TEST("mean", "torch");
MOESEG_OP_TEST("max", "grad");
MOESEG_OP_TEST("max", "torch");
MOESEG_OP_TEST("argmax", "torch");
MOESEG_OP_TEST("topk", "grad");
MOESEG_OP_TEST("topk", "torch");

namespace {


Tensor vec(std::vector<double> v, const Shape& s) { return Tensor::from_vector<double>(v, s); }

std::vector<int64_t> dims_of(const Fixture& f) { return f.params["dims"].get<std::vector<int64_t>>(); }

// Compares an int64 index output with the fixture's "out.<key>" (exact).
void check_indices(const Tensor& got, const Fixture& f, const std::string& key) {
  const Tensor& want = f.tensor(key);
  CHECK(got.dtype() == DType::Int64);
  CHECK(got.sizes() == want.sizes());
  CHECK(got.to_vector<int64_t>() == want.to_vector<int64_t>());
}

}  // namespace

// ---- finite differences ---------------------------------------------------------------------

TEST_CASE("reduce: sum and mean gradients over dims, keepdim, all and negative dims") {
  CHECK(check_gradients("sum", [](auto& in) { return sum(in[0], {1, 3}); }, {rand_input({2, 3, 4, 5}, -1, 1, 1)}));
  CHECK(check_gradients("sum", [](auto& in) { return sum(in[0], {0, 2}, true); }, {rand_input({3, 4, 5}, -1, 1, 2)}));
  CHECK(check_gradients("sum", [](auto& in) { return sum(in[0]); }, {rand_input({1, 37, 3}, -1, 1, 3)}));
  CHECK(check_gradients("sum", [](auto& in) { return sum(in[0].permute({2, 0, 1}), {-1}); },
                        {rand_input({3, 4, 5}, -1, 1, 4)}));
  CHECK(check_gradients("mean", [](auto& in) { return mean(in[0], {2}, true); }, {rand_input({2, 3, 5}, -1, 1, 5)}));
  CHECK(check_gradients("mean", [](auto& in) { return mean(in[0], {-3, -1}); }, {rand_input({3, 2, 4}, -1, 1, 6)}));
  CHECK(check_gradients("mean", [](auto& in) { return mean(in[0]); }, {rand_input({5, 3}, -1, 1, 7)}));
}

TEST_CASE("reduce: max and topk gradients (distinct values, gaps far above eps)") {
  // Uniform random values: the gap between the two largest is ~1e-2, so +-1e-6 never swaps them.
  CHECK(check_gradients("max", [](auto& in) { return max(in[0], 1); }, {rand_input({3, 5, 4}, -1, 1, 10)}));
  CHECK(check_gradients("max", [](auto& in) { return max(in[0], -1, true); }, {rand_input({4, 3, 6}, -1, 1, 11)}));
  CHECK(check_gradients("max", [](auto& in) { return max(in[0]); }, {rand_input({3, 4}, -1, 1, 12)}));
  CHECK(check_gradients("max", [](auto& in) { return max(in[0].transpose(0, 1), 0); },
                        {rand_input({3, 7}, -1, 1, 13)}));
  CHECK(check_gradients("topk", [](auto& in) { return topk(in[0], 3, 1, true).first; },
                        {rand_input({2, 7, 3}, -1, 1, 14)}));
  CHECK(check_gradients("topk", [](auto& in) { return topk(in[0], 2, 1, false).first; },
                        {rand_input({3, 5, 4}, -1, 1, 15)}));
  CHECK(check_gradients("topk", [](auto& in) { return topk(in[0], 4).first; }, {rand_input({3, 6}, -1, 1, 16)}));
  CHECK(check_gradients("sum_to", [](auto& in) { return sum_to(in[0], {3, 1}); }, {rand_input({2, 3, 4}, -1, 1, 17)}));
}

// ---- PyTorch --------------------------------------------------------------------------------

TEST_CASE("reduce: sum and mean against torch") {
  auto summed = [](auto& in, const Fixture& f) { return sum(in["x"], dims_of(f), f.params["keepdim"].get<bool>()); };
  run_fixture("sum", "core_sum_dims", summed);
  run_fixture("sum", "core_sum_keepdim", summed);
  run_fixture("sum", "core_sum_all", [](auto& in, auto&) { return sum(in["x"]).reshape({1}); });
  run_fixture("sum", "core_sum_permuted", [](auto& in, const Fixture& f) {
    return sum(in["x"].permute({2, 0, 1}), dims_of(f), f.params["keepdim"].get<bool>());
  });
  auto averaged = [](auto& in, const Fixture& f) { return mean(in["x"], dims_of(f), f.params["keepdim"].get<bool>()); };
  run_fixture("mean", "core_mean_dims", averaged);
  run_fixture("mean", "core_mean_neg", averaged);
  run_fixture("mean", "core_mean_all", [](auto& in, auto&) { return mean(in["x"]).reshape({1}); });
  run_fixture("sum_to", "core_sum_to", [](auto& in, const Fixture& f) {
    return sum_to(in["x"], f.params["shape"].get<Shape>());
  });
}

TEST_CASE("reduce: max over a dim (with ties) and over everything against torch") {
  auto max_dim = [](auto& in, const Fixture& f) {
    int64_t d = f.params["dim"].get<int64_t>();
    bool keep = f.params["keepdim"].get<bool>();
    check_indices(argmax(in["x"], d, keep), f, "out.indices");   // torch's max(dim) indices
    return max(in["x"], d, keep);
  };
  run_fixture("max", "core_max_dim_ties", max_dim);
  run_fixture("max", "core_max_dim_keepdim", max_dim);
  run_fixture("max", "core_max_all", [](auto& in, auto&) { return max(in["x"]).reshape({1}); });
  // torch splits the gradient of a full max evenly between tied maxima.
  run_fixture("max", "core_max_all_ties", [](auto& in, auto&) { return max(in["x"]).reshape({1}); });
}

TEST_CASE("reduce: argmax (first index on ties) against torch") {
  auto am = [](auto& in, const Fixture& f) {
    return argmax(in["x"], f.params["dim"].get<int64_t>(), f.params["keepdim"].get<bool>());
  };
  run_fixture("argmax", "core_argmax_ties", am);
  run_fixture("argmax", "core_argmax_keepdim", am);
}

TEST_CASE("reduce: topk largest and smallest on a middle dim against torch") {
  auto tk = [](auto& in, const Fixture& f) {
    auto [values, indices] = topk(in["x"], f.params["k"].get<int64_t>(), f.params["dim"].get<int64_t>(),
                                  f.params["largest"].get<bool>());
    check_indices(indices, f, "out.indices");
    return values;
  };
  run_fixture("topk", "core_topk_largest_mid", tk);
  run_fixture("topk", "core_topk_smallest_mid", tk);
  run_fixture("topk", "core_topk_last", tk);
}

// ---- values and edge cases ------------------------------------------------------------------

TEST_CASE("reduce: exact values, ties, NaN and non-contiguous inputs") {
  Tensor x = vec({1, 5, 5, 2, 7, 7, -1, 0, 3}, {3, 3});
  CHECK(sum(x, {0}).to_vector<double>() == std::vector<double>{2, 12, 15});
  CHECK(sum(x, {1}, true).sizes() == Shape{3, 1});
  CHECK(mean(x, {1}).to_vector<double>() == std::vector<double>{11.0 / 3, 16.0 / 3, 2.0 / 3});
  CHECK(sum(x).dim() == 0);
  CHECK(sum(x).item() == 29);
  CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 2});   // first of the tied maxima
  CHECK(argmax(x.transpose(0, 1), 0).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 2});
  CHECK(max(x).item() == 7);

  // max(dim) sends the whole gradient to the first maximal element, like torch.max(dim).
  Tensor xg = x.detach().clone();
  xg.set_requires_grad(true);
  Tensor g = autograd::grad(sum(max(xg, 1)), {xg})[0];
  CHECK(g.to_vector<double>() == std::vector<double>{0, 1, 0, 0, 1, 0, 0, 0, 1});
  // max() over everything splits it between the tied maxima, like torch.max().
  Tensor ga = autograd::grad(max(xg), {xg})[0];
  CHECK(ga.to_vector<double>() == std::vector<double>{0, 0, 0, 0, 0.5, 0.5, 0, 0, 0});

  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(argmax(vec({1, nan, 3, nan}, {4}), 0).item() == 1);   // NaN is the max, as in torch

  auto [v, i] = topk(vec({3, 1, 4, 1.5, 9, 2.5}, {2, 3}), 2, 1, false);
  CHECK(v.to_vector<double>() == std::vector<double>{1, 3, 1.5, 2.5});
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0, 2});

  // float32 sums accumulate in double: 2^24 followed by 1000 ones gives 2^24 + 1000, where a
  // float accumulator would stay at 2^24 (each +1 rounds away).
  Tensor big = Tensor::ones({1001}, DType::Float32);
  big.narrow(0, 0, 1).fill_(16777216.0);
  CHECK(sum(big).item() == 16778216.0);
  CHECK(sum_to(Tensor::ones({2, 3, 4}, DType::Float64), {3, 1}).to_vector<double>() == std::vector<double>{8, 8, 8});
}

TEST_CASE("reduce: 0-d tensors reduce over dim 0 / -1 like torch") {
  Tensor s = rand_input({}, -1, 1, 30);
  CHECK(sum(s, {0}).dim() == 0);
  CHECK(sum(s, {-1}, true).item() == s.item());
  CHECK(mean(s, {0}).item() == s.item());
  CHECK(max(s, 0).item() == s.item());
  CHECK(argmax(s, 0).item() == 0);
  CHECK(autograd::grad(max(s, 0), {s})[0].item() == 1.0);
  CHECK(autograd::grad(sum(s, {0}), {s})[0].item() == 1.0);
  expect_error([&] { sum(s, {1}); }, {"sum", "dim 1"});
}

TEST_CASE("reduce: bad input errors name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3});
  expect_error([&] { sum(a, {2}); }, {"sum", "dim 2"});
  expect_error([&] { mean(Tensor::zeros({0, 3})); }, {"mean", "[0, 3]"});
  expect_error([&] { max(Tensor::zeros({2, 0}), 1); }, {"max", "[2, 0]"});
  expect_error([&] { argmax(a, -3); }, {"argmax", "-3"});
  expect_error([&] { topk(a, 4, 1); }, {"topk", "k=4", "[2, 3]"});
  expect_error([&] { topk(a, 0, 0); }, {"topk", "k=0", "[2, 3]"});
  expect_error([&] { sum(Tensor::zeros({2}, DType::Int64)); }, {"sum", "int64"});
  expect_error([&] { sum_to(a, {4}); }, {"sum_to", "[2, 3]", "[4]"});
  expect_error([&] { sum_to(a, {1, 2, 3}); }, {"sum_to", "[2, 3]", "[1, 2, 3]"});
}
