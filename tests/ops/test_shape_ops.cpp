// Tests for kernels/shape_ops.{h,cpp}: concat along dims 0, 1, -1 and split into given sizes —
// finite-difference gradients in float64, PyTorch fixtures (tools/fixtures/cases_math.py),
// values and views, and mismatching inputs (the message names the input index and shapes).
// Run: ./build/tests/test_ops -tc='*concat*,*split*'
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include "kernels/elementwise.h"
#include "kernels/shape_ops.h"
#include "support/fixtures.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

MOESEG_OP_TEST("concat", "grad");
MOESEG_OP_TEST("concat", "torch");
MOESEG_OP_TEST("split", "grad");
MOESEG_OP_TEST("split", "torch");

namespace {



// The parts scaled by 1, 2, 3 ... and flattened into one vector, as the split fixtures do, so a
// gradient that went to the wrong part shows up.
Tensor join_scaled(const std::vector<Tensor>& parts) {
  std::vector<Tensor> flat;
  for (size_t i = 0; i < parts.size(); ++i) flat.push_back(scale(parts[i].reshape({-1}), static_cast<double>(i + 1)));
  return concat(flat, 0);
}

}  // namespace

TEST_CASE("concat: gradients vs finite differences") {
  auto cat_dim = [](int64_t d) { return [d](const std::vector<Tensor>& in) { return concat(in, d); }; };
  CHECK(testing::check_gradients("concat", cat_dim(0),
                                 {testing::rand_input({2, 3}, -1, 1, 1), testing::rand_input({1, 3}, -1, 1, 2)}));
  CHECK(testing::check_gradients("concat", cat_dim(1),
                                 {testing::rand_input({1, 3, 2, 5}, -1, 1, 3), testing::rand_input({1, 1, 2, 5}, -1, 1, 4),
                                  testing::rand_input({1, 37, 2, 5}, -1, 1, 5)}));
  CHECK(testing::check_gradients("concat", cat_dim(-1),
                                 {testing::rand_input({3, 2, 4}, -1, 1, 6), testing::rand_input({3, 2, 3}, -1, 1, 7)}));
  // One input without grad in the middle.
  Tensor fixed = testing::rand_input({2, 2}, -1, 1, 8);
  fixed.set_requires_grad(false);
  CHECK(testing::check_gradients(
      "concat", [&](const std::vector<Tensor>& in) { return concat({in[0], fixed, in[1]}, 1); },
      {testing::rand_input({2, 3}, -1, 1, 9), testing::rand_input({2, 1}, -1, 1, 10)}));
}

TEST_CASE("split: gradients vs finite differences") {
  CHECK(testing::check_gradients(
      "split", [](const std::vector<Tensor>& in) { return join_scaled(split(in[0], {2, 3, 1}, 1)); },
      {testing::rand_input({2, 6, 3}, -1, 1, 1)}));
  CHECK(testing::check_gradients(
      "split", [](const std::vector<Tensor>& in) { return join_scaled(split(in[0], {1, 0, 4}, 0)); },
      {testing::rand_input({5, 3}, -1, 1, 2)}));
  CHECK(testing::check_gradients(
      "split", [](const std::vector<Tensor>& in) { return join_scaled(split(in[0], {30, 7}, -1)); },
      {testing::rand_input({1, 2, 37}, -1, 1, 3)}));
}

TEST_CASE("concat / split: PyTorch fixtures") {
  for (const char* name : {"concat_dim0", "concat_last_neg"}) {
    CAPTURE(name);
    testing::run_fixture("concat", name, [](std::map<std::string, Tensor>& in, const testing::Fixture& f) {
      return concat({in["a"], in["b"]}, f.params["dim"].get<int64_t>());
    });
  }
  testing::run_fixture("concat", "concat_dim1_three", [](std::map<std::string, Tensor>& in, const testing::Fixture& f) {
    return concat({in["a"], in["b"], in["c"]}, f.params["dim"].get<int64_t>());
  });
  for (const char* name : {"split_dim1", "split_dim0_empty_part", "split_last"}) {
    CAPTURE(name);
    testing::run_fixture("split", name, [](std::map<std::string, Tensor>& in, const testing::Fixture& f) {
      return join_scaled(split(in["x"], f.params["sizes"].get<std::vector<int64_t>>(), f.params["dim"].get<int64_t>()));
    });
  }
}

TEST_CASE("concat / split: values, strided inputs, views") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector<float>({5, 6}, {2, 1});
  Tensor c = concat({a.transpose(0, 1), b}, 1);   // a strided input
  CHECK(c.to_vector<float>() == std::vector<float>{1, 3, 5, 2, 4, 6});
  Tensor e = concat({a, Tensor::zeros({0, 2}), a}, 0);   // an empty input is allowed
  CHECK(e.sizes() == Shape{4, 2});
  CHECK(e.at({3, 1}) == 4.0);
  Tensor x = Tensor::arange(12, DType::Float32).reshape({3, 4});
  auto parts = split(x, {1, 3}, 1);
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].sizes() == Shape{3, 3});
  CHECK(parts[1].at({2, 0}) == 9.0);
  CHECK(parts[1].impl().storage == x.impl().storage);   // a view, not a copy
  CHECK(testing::expect_close(concat(parts, 1), x, {0, 0}, "concat(split(x)) == x"));
}

TEST_CASE("concat / split: bad input names the op, the input index and the shapes") {
  Tensor a = Tensor::zeros({2, 3, 4}), b = Tensor::zeros({2, 3, 4}), bad = Tensor::zeros({2, 5, 4});
  std::string msg = expect_error([&] { concat({a, b, bad}, 2); });
  CHECK(contains(msg, "concat"));
  CHECK(contains(msg, "input 2"));
  CHECK(contains(msg, "[2, 5, 4]"));
  CHECK(contains(msg, "[2, 3, 4]"));
  CHECK(contains(expect_error([&] { concat({a, Tensor::zeros({2, 3})}, 0); }), "input 1"));
  CHECK(contains(expect_error([&] { concat({a, Tensor::zeros({2, 3, 4}, DType::Float64)}, 0); }), "concat"));
  CHECK(contains(expect_error([&] { concat({}, 0); }), "concat"));
  CHECK(contains(expect_error([&] { concat({a, b}, 3); }), "concat"));
  std::string smsg = expect_error([&] { split(a, {1, 1}, 1); });
  CHECK(contains(smsg, "split"));
  CHECK(contains(smsg, "sum to 2"));
  CHECK(contains(expect_error([&] { split(a, {5, -1}, 2); }), "split"));
}
