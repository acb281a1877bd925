// Tests of the view ops of Tensor (core/tensor.h): slice/narrow/select, view/reshape/flatten,
// permute/transpose, expand, squeeze/unsqueeze, contiguous and to(dtype). Checks that views
// share storage (writes show through), their gradients by finite differences in float64, the
// PyTorch fixtures (tools/fixtures/cases_core.py) and the errors for bad input.
// Run: ./build/tests/test_ops -tc='*views*'
#include <doctest/doctest.h>

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

MOESEG_OP_TEST("slice", "grad");
MOESEG_OP_TEST("slice", "torch");
MOESEG_OP_TEST("reshape", "grad");
MOESEG_OP_TEST("reshape", "torch");
MOESEG_OP_TEST("permute", "grad");
MOESEG_OP_TEST("permute", "torch");
MOESEG_OP_TEST("expand", "grad");
MOESEG_OP_TEST("expand", "torch");

namespace {


bool shares(const Tensor& a, const Tensor& b) { return a.impl().storage == b.impl().storage; }

}  // namespace

// ---- storage sharing ------------------------------------------------------------------------

TEST_CASE("views: every view shares storage and writes show through") {
  Tensor t = Tensor::arange(24, DType::Float64).view({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  std::vector<Tensor> views = {t.slice(1, 0, 3, 2), t.select(2, 1), t.narrow(0, 1, 1), t.view({6, 4}),
                               t.reshape({4, 6}), p, t.transpose(0, 2), t.unsqueeze(1), t.unsqueeze(-1),
                               t.narrow(1, 1, 1).squeeze(1), p.slice(1, 1, 2).squeeze(1),
                               p.unsqueeze(2), t.slice(2, 0, 1).expand({2, 3, 4}), t.flatten(1)};
  for (size_t i = 0; i < views.size(); ++i) CHECK_MESSAGE(shares(views[i], t), "view ", i, " copied");
  // Geometry of a few of them against hand-computed values.
  CHECK(t.select(2, 1).at({1, 2}) == 21);
  CHECK(t.select(-1, -1).at({0, 1}) == 7);
  CHECK(t.slice(1, 0, 3, 2).at({1, 1, 3}) == 23);
  CHECK(t.slice(2, -2, 4).at({0, 0, 0}) == 2);
  CHECK(t.slice(2, 3, 100).sizes() == Shape{2, 3, 1});     // end clamped like Python
  CHECK(t.slice(2, 3, 1).sizes() == Shape{2, 3, 0});       // empty, not an error
  CHECK(p.slice(1, 1, 2).squeeze(1).sizes() == Shape{4, 3});
  CHECK(p.slice(1, 1, 2).squeeze(1).at({3, 2}) == 23);
  CHECK(p.unsqueeze(2).sizes() == Shape{4, 2, 1, 3});
  CHECK(p.unsqueeze(2).at({1, 1, 0, 2}) == 21);
  Tensor e = t.slice(2, 0, 1).expand({2, 3, 4});
  CHECK(e.stride(2) == 0);
  CHECK(e.at({1, 2, 3}) == 20);
  CHECK(t.unsqueeze(0).expand({5, 2, 3, 4}).stride(0) == 0);
  // Writes through views land in t.
  t.select(2, 1).fill_(-1);
  CHECK(t.at({1, 2, 1}) == -1);
  p.slice(1, 1, 2).squeeze(1).fill_(-2);   // p[:, 1, :] = t[1, :, :]
  CHECK(t.at({1, 0, 0}) == -2);
  CHECK(t.at({0, 0, 0}) == 0);
  t.transpose(0, 2).select(0, 3).fill_(-3);   // t[:, :, 3]
  CHECK(t.at({0, 1, 3}) == -3);
}

TEST_CASE("views: contiguous copies only when needed, to(dtype) converts and differentiates") {
  Tensor t = Tensor::arange(6, DType::Float64).view({2, 3});
  CHECK(t.contiguous().same(t));
  Tensor c = t.transpose(0, 1).contiguous();
  CHECK(c.is_contiguous());
  CHECK(!shares(c, t));
  CHECK(c.to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(t.slice(0, 1, 2).is_contiguous());   // one row: contiguous at an offset
  CHECK(shares(t.slice(0, 1, 2).contiguous(), t));

  Tensor x = rand_input({2, 3});
  Tensor y = x.to(DType::Float32);
  CHECK(y.dtype() == DType::Float32);
  CHECK(y.requires_grad());
  Tensor v = Tensor::from_vector<float>({1, -2, 3, 0.5f, 4, -1}, {2, 3});
  Tensor g = autograd::grad(sum(mul(y, v)), {x})[0];
  CHECK(g.dtype() == DType::Float64);   // the gradient comes back in the input's dtype
  CHECK(g.to_vector<double>() == std::vector<double>{1, -2, 3, 0.5, 4, -1});
  CHECK(!x.to(DType::Int64).requires_grad());   // integers carry no gradient
  CHECK(x.to(DType::Float64).same(x));
}

// ---- finite differences ---------------------------------------------------------------------

TEST_CASE("views: gradients of slice, select, narrow (float64 finite differences)") {
  CHECK(check_gradients("slice", [](auto& in) { return in[0].slice(1, 1, 6, 2); }, {rand_input({2, 7, 3}, -1, 1, 1)}));
  CHECK(check_gradients("slice", [](auto& in) { return in[0].slice(-1, -3, 5); }, {rand_input({3, 5}, -1, 1, 2)}));
  CHECK(check_gradients("slice", [](auto& in) { return in[0].select(1, -2); }, {rand_input({2, 4, 3}, -1, 1, 3)}));
  CHECK(check_gradients("slice", [](auto& in) { return in[0].narrow(0, 1, 2).select(1, 0); },
                        {rand_input({4, 3}, -1, 1, 4)}));
  // Overlapping views of one leaf: the gradients must add up.
  CHECK(check_gradients("slice", [](auto& in) { return mul(in[0].slice(0, 0, 3), in[0].slice(0, 1, 4)); },
                        {rand_input({4, 2}, -1, 1, 5)}));
}

TEST_CASE("views: gradients of view, reshape, flatten, squeeze, unsqueeze") {
  CHECK(check_gradients("reshape", [](auto& in) { return in[0].reshape({4, -1}); }, {rand_input({2, 3, 4}, -1, 1, 10)}));
  CHECK(check_gradients("reshape", [](auto& in) { return in[0].permute({2, 0, 1}).reshape({4, 6}); },
                        {rand_input({2, 3, 4}, -1, 1, 11)}));
  CHECK(check_gradients("reshape", [](auto& in) { return in[0].view({3, 1, 2}); }, {rand_input({6}, -1, 1, 12)}));
  CHECK(check_gradients("reshape", [](auto& in) { return in[0].flatten(1, 2); }, {rand_input({2, 3, 2, 2}, -1, 1, 13)}));
  CHECK(check_gradients("reshape", [](auto& in) { return in[0].squeeze(1).unsqueeze(0).unsqueeze(-1); },
                        {rand_input({3, 1, 4}, -1, 1, 14)}));
  CHECK(check_gradients("reshape", [](auto& in) { return in[0].transpose(0, 1).squeeze(0); },
                        {rand_input({3, 1}, -1, 1, 15)}));
}

TEST_CASE("views: gradients of permute, transpose, expand, contiguous") {
  CHECK(check_gradients("permute", [](auto& in) { return in[0].permute({2, 0, 3, 1}); },
                        {rand_input({2, 3, 4, 5}, -1, 1, 20)}));
  CHECK(check_gradients("permute", [](auto& in) { return in[0].transpose(0, 2).contiguous(); },
                        {rand_input({2, 3, 4}, -1, 1, 21)}));
  CHECK(check_gradients("permute", [](auto& in) { return in[0].permute({1, 2, 0}).permute({1, 2, 0}); },
                        {rand_input({2, 3, 4}, -1, 1, 22)}));
  CHECK(check_gradients("expand", [](auto& in) { return in[0].expand({2, 3, 4}); }, {rand_input({3, 1}, -1, 1, 23)}));
  CHECK(check_gradients("expand", [](auto& in) { return in[0].expand({-1, 5, 2}); }, {rand_input({4, 1, 1}, -1, 1, 24)}));
  CHECK(check_gradients("expand", [](auto& in) { return in[0].expand({37, 3}); }, {rand_input({}, -1, 1, 25)}));
  CHECK(check_gradients("expand", [](auto& in) { return in[0].transpose(0, 1).expand({2, 3, 4}).contiguous(); },
                        {rand_input({1, 3}, -1, 1, 26)}));
}

// ---- PyTorch --------------------------------------------------------------------------------

TEST_CASE("views: slice and select against torch") {
  auto sl = [](auto& in, const Fixture& f) {
    return in["x"].slice(f.params["dim"].get<int64_t>(), f.params["start"].get<int64_t>(),
                         f.params["end"].get<int64_t>(), f.params["step"].get<int64_t>());
  };
  run_fixture("slice", "core_slice_step", sl);
  run_fixture("slice", "core_slice_negative", sl);
  run_fixture("slice", "core_slice_of_permuted", [](auto& in, auto&) { return in["x"].permute({1, 0}).slice(0, 1, 3); });
  run_fixture("slice", "core_select", [](auto& in, const Fixture& f) {
    return in["x"].select(f.params["dim"].get<int64_t>(), f.params["index"].get<int64_t>());
  });
}

TEST_CASE("views: reshape family against torch") {
  run_fixture("reshape", "core_reshape", [](auto& in, const Fixture& f) { return in["x"].reshape(f.params["shape"].get<Shape>()); });
  run_fixture("reshape", "core_reshape_noncontig", [](auto& in, const Fixture& f) {
    return in["x"].permute(f.params["perm"].get<std::vector<int64_t>>()).reshape(f.params["shape"].get<Shape>());
  });
  run_fixture("reshape", "core_squeeze_unsqueeze",
              [](auto& in, auto&) { return in["x"].squeeze(1).unsqueeze(0).unsqueeze(-1); });
  run_fixture("reshape", "core_flatten", [](auto& in, auto&) { return in["x"].flatten(1, 2); });
}

TEST_CASE("views: permute, transpose, expand, contiguous against torch") {
  run_fixture("permute", "core_permute",
              [](auto& in, const Fixture& f) { return in["x"].permute(f.params["perm"].get<std::vector<int64_t>>()); });
  run_fixture("permute", "core_transpose", [](auto& in, auto&) { return in["x"].transpose(0, 2); });
  run_fixture("permute", "core_contiguous", [](auto& in, auto&) { return scale(in["x"].transpose(0, 1).contiguous(), 1.0); });
  auto ex = [](auto& in, const Fixture& f) { return in["x"].expand(f.params["shape"].get<Shape>()); };
  run_fixture("expand", "core_expand", ex);
  run_fixture("expand", "core_expand_keep", ex);
}

// ---- errors ---------------------------------------------------------------------------------

TEST_CASE("views: bad input errors name the op and the shapes") {
  Tensor t = Tensor::zeros({2, 3});
  expect_error([&] { t.transpose(0, 1).view({6}); }, {"view", "[3, 2]", "contiguous"});
  expect_error([&] { t.view({4, 2}); }, {"view", "[2, 3]", "[4, 2]"});
  expect_error([&] { t.reshape({5}); }, {"reshape", "[2, 3]", "[5]"});
  expect_error([&] { t.reshape({-1, -1}); }, {"reshape", "-1"});
  expect_error([&] { t.permute({0}); }, {"permute", "[2, 3]"});
  expect_error([&] { t.permute({1, 1}); }, {"permute", "repeated", "[2, 3]"});
  expect_error([&] { t.transpose(0, 2); }, {"transpose", "dim 2"});
  expect_error([&] { t.slice(2, 0, 1); }, {"slice", "dim 2"});
  expect_error([&] { t.slice(1, 0, 2, 0); }, {"slice", "step", "[2, 3]"});
  expect_error([&] { t.select(1, 3); }, {"select", "index 3", "[2, 3]"});
  expect_error([&] { t.select(0, -3); }, {"select", "index -3", "[2, 3]"});
  expect_error([&] { t.expand({4, 3, 2}); }, {"expand", "[2, 3]", "[4, 3, 2]"});
  expect_error([&] { t.expand({3}); }, {"expand", "[2, 3]", "[3]"});
  expect_error([&] { t.expand({-1, 2, 3}); }, {"expand", "-1"});
  expect_error([&] { t.squeeze(2); }, {"squeeze", "dim 2"});
  expect_error([&] { t.unsqueeze(3); }, {"unsqueeze", "dim 3"});
  expect_error([&] { Tensor().reshape({1}); }, {"undefined"});
  Tensor s = Tensor::scalar(2.0);
  expect_error([&] { s.select(0, 0); }, {"select", "0-d"});
  expect_error([&] { s.slice(0, 0, 1); }, {"slice", "0-d"});
  expect_error([&] { s.size(0); }, {"size", "0-d"});
  CHECK(s.squeeze(0).dim() == 0);    // torch: squeezing a 0-d tensor is a no-op
  CHECK(s.unsqueeze(0).sizes() == Shape{1});
  CHECK(s.reshape({1, 1}).at({0, 0}) == 2.0);
}
