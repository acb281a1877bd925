// Tests of the element-wise ops (kernels/elementwise.h): broadcasting add/sub/mul/div, scale,
// add_scalar, neg, the unary math (relu, exp, log, tanh, sigmoid, sign, sqrt, square) and clamp.
// Each op: central finite differences in float64, PyTorch fixtures (tools/fixtures/cases_core.py)
// in float32 and float64, including broadcasting both ways, 0-stride and transposed leaves,
// and the errors for bad input. Run: ./build/tests/test_ops -tc='*elementwise*'
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
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
using testing::compare_gradients;
using testing::GradcheckOptions;
using testing::max_relative_error;
using testing::rand_input;
using testing::run_fixture;

MOESEG_OP_TEST("add", "grad");
MOESEG_OP_TEST("add", "torch");
MOESEG_OP_TEST("sub", "grad");
MOESEG_OP_TEST("sub", "torch");
MOESEG_OP_TEST("mul", "grad");
MOESEG_OP_TEST("mul", "torch");
MOESEG_OP_TEST("div", "grad");
MOESEG_OP_TEST("div", "torch");
MOESEG_OP_TEST("scale", "grad");
MOESEG_OP_TEST("scale", "torch");
MOESEG_OP_TEST("relu", "grad");
MOESEG_OP_TEST("relu", "torch");
MOESEG_OP_TEST("exp", "grad");
MOESEG_OP_TEST("exp", "torch");
MOESEG_OP_TEST("log", "grad");
MOESEG_OP_TEST("log", "torch");
MOESEG_OP_TEST("tanh", "grad");
MOESEG_OP_TEST("tanh", "torch");
MOESEG_OP_TEST("sigmoid", "grad");
MOESEG_OP_TEST("sigmoid", "torch");
MOESEG_OP_TEST("sign", "grad");
MOESEG_OP_TEST("sign", "torch");
MOESEG_OP_TEST("clamp", "grad");
MOESEG_OP_TEST("clamp", "torch");
MOESEG_OP_TEST("normal_cdf", "grad");
MOESEG_OP_TEST("normal_cdf", "torch");

namespace {

// Float64 leaf with |x| in [lo, hi) and a random sign: keeps finite differences off the kink at 0.
Tensor signed_input(const Shape& shape, double lo, double hi, uint64_t seed) {
  auto mag = rand_input(shape, lo, hi, seed).detach().to_vector<double>();
  auto sgn = rand_input(shape, -1.0, 1.0, seed + 101).detach().to_vector<double>();
  for (size_t i = 0; i < mag.size(); ++i) mag[i] = sgn[i] < 0 ? -mag[i] : mag[i];
  Tensor t = Tensor::from_vector<double>(mag, shape);
  t.set_requires_grad(true);
  return t;
}

// A leaf with the values of t stored transposed (all dims reversed): non-contiguous strides.
Tensor transposed_leaf(const Tensor& t) {
  std::vector<int64_t> rev(t.dim());
  std::iota(rev.rbegin(), rev.rend(), 0);
  Shape store_shape;
  for (int64_t d : rev) store_shape.push_back(t.size(d));
  Tensor v = Tensor::empty(store_shape, t.dtype()).permute(rev);
  v.copy_(t.detach());
  Tensor leaf = v.detach();
  REQUIRE(!leaf.is_contiguous());
  leaf.set_requires_grad(t.requires_grad());
  return leaf;
}

// A leaf equal to t (whose values repeat along `dim`) but with stride 0 along `dim`.
Tensor expanded_leaf(const Tensor& t, int64_t dim) {
  Tensor one = t.detach().narrow(dim, 0, 1).clone();
  Tensor leaf = one.expand(t.sizes()).detach();
  REQUIRE(leaf.stride(dim) == 0);
  leaf.set_requires_grad(t.requires_grad());
  return leaf;
}


Tensor vec(std::vector<double> v, const Shape& s) { return Tensor::from_vector<double>(v, s); }

}  // namespace

// ---- finite differences ---------------------------------------------------------------------

TEST_CASE("elementwise: add/sub gradients with broadcasting both ways (float64 finite differences)") {
  CHECK(check_gradients("add", [](auto& in) { return add(in[0], in[1]); },
                        {rand_input({2, 3, 4}, -1, 1, 1), rand_input({3, 1}, -1, 1, 2)}));
  CHECK(check_gradients("add", [](auto& in) { return add(in[0], in[1]); },
                        {rand_input({4, 1, 5}, -1, 1, 3), rand_input({3, 1}, -1, 1, 4)}));
  CHECK(check_gradients("add", [](auto& in) { return add(in[0], in[1]); },
                        {rand_input({1, 37, 3, 5}, -1, 1, 5), rand_input({37, 1, 1}, -1, 1, 6)}));
  CHECK(check_gradients("add", [](auto& in) { return add(in[0], in[1]); },
                        {rand_input({}, -1, 1, 7), rand_input({3, 2}, -1, 1, 8)}));
  // Same leaf twice: the two gradient paths must accumulate.
  CHECK(check_gradients("add", [](auto& in) { return add(in[0], in[0].transpose(0, 1)); },
                        {rand_input({3, 3}, -1, 1, 9)}));
  CHECK(check_gradients("sub", [](auto& in) { return sub(in[0], in[1]); },
                        {rand_input({1, 5}, -1, 1, 10), rand_input({3, 2, 5}, -1, 1, 11)}));
  CHECK(check_gradients("sub", [](auto& in) { return sub(in[0].slice(1, 0, 7, 2), in[1]); },
                        {rand_input({3, 7}, -1, 1, 12), rand_input({3, 1}, -1, 1, 13)}));
}

TEST_CASE("elementwise: mul/div gradients, broadcast, strided and self-products") {
  CHECK(check_gradients("mul", [](auto& in) { return mul(in[0], in[1]); },
                        {rand_input({2, 1, 3}, -1, 1, 20), rand_input({4, 1}, -1, 1, 21)}));
  CHECK(check_gradients("mul", [](auto& in) { return mul(in[0].permute({1, 0}), in[1]); },
                        {rand_input({5, 3}, -1, 1, 22), rand_input({3, 5}, -1, 1, 23)}));
  CHECK(check_gradients("mul", [](auto& in) { return mul(in[0], in[0]); }, {rand_input({7}, -1, 1, 24)}));
  // Only one side requires grad.
  Tensor fixed = rand_input({3, 4}, -1, 1, 25).detach();
  CHECK(check_gradients("mul", [&](auto& in) { return mul(fixed, in[0]); }, {rand_input({4}, -1, 1, 26)}));
  CHECK(check_gradients("div", [](auto& in) { return div(in[0], in[1]); },
                        {rand_input({3, 4}, -1, 1, 27), signed_input({4}, 0.5, 2.0, 28)}));
  CHECK(check_gradients("div", [](auto& in) { return div(in[0], in[1]); },
                        {rand_input({3, 1}, -1, 1, 29), signed_input({1, 3, 4}, 0.5, 2.0, 30)}));
  CHECK(check_gradients("div", [](auto& in) { return div(in[0], in[0]); }, {signed_input({5}, 0.5, 2.0, 31)}));
}

TEST_CASE("elementwise: unary gradients away from kinks") {
  auto un = [](Tensor (*f)(const Tensor&)) { return [f](const std::vector<Tensor>& in) { return f(in[0]); }; };
  CHECK(check_gradients("scale", [](auto& in) { return scale(in[0], -2.5); }, {rand_input({3, 5}, -1, 1, 40)}));
  CHECK(check_gradients("add_scalar", [](auto& in) { return add_scalar(in[0], 0.75); }, {rand_input({4}, -1, 1, 41)}));
  CHECK(check_gradients("neg", un(moeseg::neg), {rand_input({2, 3}, -1, 1, 42)}));
  CHECK(check_gradients("relu", un(moeseg::relu), {signed_input({1, 37, 3}, 0.01, 1.0, 43)}));
  CHECK(check_gradients("relu", [](auto& in) { return relu(in[0].transpose(0, 2)); },
                        {signed_input({2, 3, 4}, 0.01, 1.0, 44)}));
  CHECK(check_gradients("exp", un(moeseg::exp), {rand_input({3, 5}, -3, 2, 45)}));
  CHECK(check_gradients("log", un(moeseg::log), {rand_input({3, 5}, 0.1, 4, 46)}));
  CHECK(check_gradients("tanh", un(moeseg::tanh), {rand_input({3, 5}, -3, 3, 47)}));
  CHECK(check_gradients("sigmoid", un(moeseg::sigmoid), {rand_input({3, 5}, -6, 6, 48)}));
  CHECK(check_gradients("sign", un(moeseg::sign), {signed_input({4, 3}, 0.01, 1.0, 49)}));
  CHECK(check_gradients("sqrt", un(moeseg::sqrt), {rand_input({6}, 0.1, 4, 50)}));
  CHECK(check_gradients("square", un(moeseg::square), {rand_input({6}, -2, 2, 51)}));
  CHECK(check_gradients("normal_cdf", un(moeseg::normal_cdf), {rand_input({3, 5}, -4, 4, 52)}));
}

TEST_CASE("elementwise: clamp gradient inside, below and above the range") {
  // Values at least 0.05 away from both bounds, on each side of them.
  Tensor x = vec({-1.0, -0.61, -0.45, -0.1, 0.0, 0.2, 0.25, 0.36, 0.8, 2.0}, {2, 5});
  x.set_requires_grad(true);
  CHECK(check_gradients("clamp", [](auto& in) { return clamp(in[0], -0.5, 0.3); }, {x}));
  // The derivative really is 0 outside and 1 inside (a backward that passed everything would
  // fail here, not only against finite differences).
  Tensor g = autograd::grad(sum(clamp(x, -0.5, 0.3)), {x})[0];
  CHECK(g.to_vector<double>() == std::vector<double>{0, 0, 1, 1, 1, 1, 1, 0, 0, 0});
}

// ---- PyTorch --------------------------------------------------------------------------------

TEST_CASE("elementwise: binary ops against torch (broadcasting both ways)") {
  auto bin = [](Tensor (*f)(const Tensor&, const Tensor&)) {
    return [f](std::map<std::string, Tensor>& in, const testing::Fixture&) { return f(in["a"], in["b"]); };
  };
  run_fixture("add", "core_add_bcast_rhs", bin(add));
  run_fixture("add", "core_add_bcast_both", bin(add));
  run_fixture("add", "core_add_scalar_tensor", bin(add));
  run_fixture("sub", "core_sub_bcast_lhs", bin(sub));
  run_fixture("mul", "core_mul_bcast", bin(mul));
  run_fixture("div", "core_div_bcast", bin(div));
  run_fixture("div", "core_div_bcast_lhs", bin(div));
  run_fixture("add", "core_add_views", [](auto& in, auto&) {
    return add(in["a"].slice(1, 1, 6, 2), in["b"].permute({1, 0}).expand({2, 3, 3}));
  });
}

TEST_CASE("elementwise: 0-stride and transposed leaves against torch") {
  // The leaves themselves are strided, so the kernels' strided paths and the backward's sum_to
  // are exercised without any view node in the graph.
  run_fixture("mul", "core_mul_strided_inputs", [](auto& in, auto&) {
    in["a"] = expanded_leaf(in["a"], 1);
    in["b"] = transposed_leaf(in["b"]);
    return mul(in["a"], in["b"]);
  });
  run_fixture("sub", "core_sub_strided_inputs", [](auto& in, auto&) {
    in["a"] = transposed_leaf(in["a"]);
    in["b"] = expanded_leaf(in["b"], 0);
    return sub(in["a"], in["b"]);
  });
}

TEST_CASE("elementwise: unary ops and clamp against torch") {
  using Fx = testing::Fixture;
  auto un = [](Tensor (*f)(const Tensor&)) { return [f](std::map<std::string, Tensor>& in, const Fx&) { return f(in["x"]); }; };
  run_fixture("scale", "core_scale", [](auto& in, const Fx& f) { return scale(in["x"], f.params["s"].get<double>()); });
  run_fixture("add_scalar", "core_add_scalar",
              [](auto& in, const Fx& f) { return add_scalar(in["x"], f.params["s"].get<double>()); });
  run_fixture("neg", "core_neg", un(moeseg::neg));
  run_fixture("relu", "core_relu", un(moeseg::relu));
  run_fixture("relu", "core_relu_permuted", [](auto& in, auto&) { return relu(in["x"].permute({2, 0, 1})); });
  run_fixture("exp", "core_exp", un(moeseg::exp));
  run_fixture("log", "core_log", un(moeseg::log));
  run_fixture("tanh", "core_tanh", un(moeseg::tanh));
  run_fixture("sigmoid", "core_sigmoid", un(moeseg::sigmoid));
  run_fixture("sign", "core_sign", un(moeseg::sign));
  run_fixture("sqrt", "core_sqrt", un(moeseg::sqrt));
  run_fixture("square", "core_square", un(moeseg::square));
  run_fixture("normal_cdf", "core_normal_cdf", un(moeseg::normal_cdf));   // includes tails down to -9
  auto clamp_case = [](auto& in, const Fx& f) {
    return clamp(in["x"], f.params["lo"].get<double>(), f.params["hi"].get<double>());
  };
  run_fixture("clamp", "core_clamp", clamp_case);
  run_fixture("clamp", "core_clamp_boundaries", clamp_case);   // x exactly on lo and hi
}

// ---- values, dtypes and errors --------------------------------------------------------------

TEST_CASE("elementwise: exact values, integer arithmetic and no graph without requires_grad") {
  Tensor a = vec({6, -3, 1.5}, {3}), b = vec({2}, {1});
  CHECK(div(a, b).to_vector<double>() == std::vector<double>{3, -1.5, 0.75});
  CHECK(sub(b, a).to_vector<double>() == std::vector<double>{-4, 5, 0.5});
  Tensor i = Tensor::arange(4, DType::Int64).view({2, 2});
  CHECK(mul(i, i).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 4, 9});
  CHECK(clamp(vec({-2, 0.5, 7}, {3}), -1, 1).to_vector<double>() == std::vector<double>{-1, 0.5, 1});
  CHECK(sign(vec({-2, 0, 3}, {3})).to_vector<double>() == std::vector<double>{-1, 0, 1});
  // NaN propagates through relu (not hidden as 0) and its gradient passes, as in torch.
  Tensor r = vec({std::nan(""), -1, 0, 2}, {4});
  r.set_requires_grad(true);
  Tensor ry = relu(r);
  CHECK(std::isnan(ry.at({0})));
  CHECK(ry.at({1}) == 0);
  CHECK(ry.at({2}) == 0);
  CHECK(autograd::grad(sum(ry), {r})[0].to_vector<double>() == std::vector<double>{1, 0, 0, 1});
  CHECK(!add(a, b).requires_grad());
  Tensor x = rand_input({3});
  {
    NoGradGuard ng;
    CHECK(!exp(x).requires_grad());
  }
  CHECK(exp(x).requires_grad());
}

TEST_CASE("elementwise: an in-place write to a saved input is reported in backward") {
  Tensor x = rand_input({4}), y = rand_input({4}, -1, 1, 3);
  Tensor z = mul(x, y);
  y.detach().fill_(2.0);   // same storage as the tensor mul saved
  CHECK_THROWS_AS(z.backward(Tensor::ones({4}, DType::Float64)), Error);
}

TEST_CASE("elementwise: bad input errors name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 3});
  expect_error([&] { sub(a, b); }, {"sub", "[2, 3]", "[4, 3]"});
  expect_error([&] { mul(a, Tensor::zeros({3, 2})); }, {"mul", "[2, 3]", "[3, 2]"});
  expect_error([&] { div(a, Tensor::zeros({2, 3}, DType::Float64)); }, {"div", "float32[2, 3]", "float64[2, 3]"});
  expect_error([&] { add(a, Tensor()); }, {"add", "undefined"});
  expect_error([&] { relu(Tensor::zeros({2, 2}, DType::Int64)); }, {"relu", "int64"});
  expect_error([&] { log(Tensor()); }, {"log", "undefined"});
  expect_error([&] { clamp(a, 1.0, -1.0); }, {"clamp", "1", "-1"});
  expect_error([&] { add_(a, Tensor::zeros({4})); }, {"[2, 3]", "[4]"});
}

// The checker itself: a backward that is 1% off must be caught by check_gradients.
namespace {
struct PlantedBackward final : autograd::Node {
  std::vector<Tensor> backward(const Tensor& g) override { return {scale(g, 1.01)}; }
  std::string name() const override { return "PlantedBackward"; }
};
}  // namespace

TEST_CASE("elementwise: gradcheck catches a planted 1% gradient error, and only that") {
  // The checker's own comparison, without its assertions: the planted backward is exactly 1.01x
  // the finite differences, the check's tolerance rejects it, and the same op with the correct
  // backward passes the same tolerance.
  auto planted = [](const std::vector<Tensor>& in) {
    Tensor out = in[0].detach().clone();
    if (autograd::needs_grad({&in[0]})) autograd::connect(std::make_shared<PlantedBackward>(), {&in[0]}, out);
    return out;
  };
  const GradcheckOptions opts;
  auto pairs = compare_gradients(planted, {rand_input({5})}, opts);
  REQUIRE(pairs.size() == 1);
  CHECK(max_relative_error(pairs[0].analytic, pairs[0].numeric) == doctest::Approx(0.01).epsilon(1e-4));
  auto a = pairs[0].analytic.to_vector<double>(), n = pairs[0].numeric.to_vector<double>();
  int rejected = 0;
  for (size_t i = 0; i < a.size(); ++i) rejected += std::abs(a[i] - n[i]) > opts.atol + opts.rtol * std::abs(n[i]);
  CHECK(rejected == static_cast<int>(a.size()));
  auto right = compare_gradients([](const std::vector<Tensor>& in) { return in[0].clone(); }, {rand_input({5})}, opts);
  REQUIRE(right.size() == 1);
  CHECK(max_relative_error(right[0].analytic, right[0].numeric) < 1e-8);
}
