// Tests for kernels/linear.{h,cpp}: matmul (2-D, batched 3-D, 3-D x 2-D) and linear (1-D to 4-D x,
// with and without bias) — finite-difference gradients in float64, PyTorch fixtures
// (tools/fixtures/cases_math.py), transposed and stepped (non-BLAS-layout) operands against
// their contiguous copies, an empty inner dim, and bad shapes.
// Run: ./build/tests/test_ops -tc='*matmul*,*linear*'
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/reduce.h"
#include "support/fixtures.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

MOESEG_OP_TEST("matmul", "grad");
MOESEG_OP_TEST("matmul", "torch");
MOESEG_OP_TEST("linear", "grad");
MOESEG_OP_TEST("linear", "torch");

namespace {



// Naive triple loop in double: the independent reference for layout tests.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  std::vector<double> out(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k) out[i * N + j] += a.at({i, k}) * b.at({k, j});
  return Tensor::from_vector<double>(out, {M, N});
}

}  // namespace

TEST_CASE("matmul: gradients vs finite differences") {
  auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  CHECK(testing::check_gradients("matmul", mm, {testing::rand_input({1, 7}, -1, 1, 1), testing::rand_input({7, 3}, -1, 1, 2)}));
  CHECK(testing::check_gradients("matmul", mm, {testing::rand_input({5, 3}, -1, 1, 3), testing::rand_input({3, 1}, -1, 1, 4)}));
  CHECK(testing::check_gradients("matmul", mm,
                                 {testing::rand_input({2, 3, 4}, -1, 1, 5), testing::rand_input({2, 4, 5}, -1, 1, 6)}));
  CHECK(testing::check_gradients("matmul", mm,
                                 {testing::rand_input({3, 2, 5}, -1, 1, 7), testing::rand_input({5, 3}, -1, 1, 8)}));
  CHECK(testing::check_gradients("matmul", mm, {testing::rand_input({4, 6}, -1, 1, 9), testing::rand_input({2, 6, 3}, -1, 1, 10)}));
  // Transposed operands inside the function: BLAS reads them with trans flags, and the gradient
  // flows back through the transpose views.
  CHECK(testing::check_gradients("matmul",
                                 [](const std::vector<Tensor>& in) {
                                   return matmul(in[0].transpose(0, 1), in[1].transpose(0, 1));
                                 },
                                 {testing::rand_input({6, 5}, -1, 1, 11), testing::rand_input({3, 6}, -1, 1, 12)}));
  // Only one operand requires grad.
  Tensor fixed = testing::rand_input({4, 3}, -1, 1, 13);
  fixed.set_requires_grad(false);
  CHECK(testing::check_gradients("matmul", [&](const std::vector<Tensor>& in) { return matmul(in[0], fixed); },
                                 {testing::rand_input({5, 4}, -1, 1, 14)}));
}

TEST_CASE("linear: gradients vs finite differences") {
  auto lin = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor()); };
  CHECK(testing::check_gradients("linear", lin,
                                 {testing::rand_input({3, 5}, -1, 1, 1), testing::rand_input({4, 5}, -1, 1, 2),
                                  testing::rand_input({4}, -1, 1, 3)}));
  CHECK(testing::check_gradients("linear", lin,
                                 {testing::rand_input({2, 3, 7}, -1, 1, 4), testing::rand_input({5, 7}, -1, 1, 5)}));
  CHECK(testing::check_gradients("linear", lin,
                                 {testing::rand_input({1, 2, 3, 37}, -1, 1, 6), testing::rand_input({3, 37}, -1, 1, 7),
                                  testing::rand_input({3}, -1, 1, 8)}));
  CHECK(testing::check_gradients("linear", lin,
                                 {testing::rand_input({9}, -1, 1, 9), testing::rand_input({1, 9}, -1, 1, 10),
                                  testing::rand_input({1}, -1, 1, 11)}));
  // x given transposed (non-contiguous 2-D input used in place).
  CHECK(testing::check_gradients(
      "linear", [](const std::vector<Tensor>& in) { return linear(in[0].transpose(0, 1), in[1], in[2]); },
      {testing::rand_input({6, 4}, -1, 1, 12), testing::rand_input({3, 6}, -1, 1, 13), testing::rand_input({3}, -1, 1, 14)}));
}

TEST_CASE("matmul / linear: PyTorch fixtures") {
  for (const char* name : {"matmul_2d_5x7x3", "matmul_batched_3x4x5x2", "matmul_3d_2d", "matmul_batch1_1x1x9"}) {
    CAPTURE(name);
    testing::run_fixture("matmul", name, [](std::map<std::string, Tensor>& in, const testing::Fixture&) {
      return matmul(in["a"], in["b"]);
    });
  }
  testing::run_fixture("matmul", "matmul_2d_transposed", [](std::map<std::string, Tensor>& in, const testing::Fixture&) {
    return matmul(in["a"].transpose(0, 1), in["b"].transpose(0, 1));
  });
  for (const char* name : {"linear_2d_bias", "linear_3d_nobias", "linear_4d_37in", "linear_1d_input"}) {
    CAPTURE(name);
    testing::run_fixture("linear", name, [](std::map<std::string, Tensor>& in, const testing::Fixture&) {
      return linear(in["x"], in["w"], in.count("b") ? in["b"] : Tensor());
    });
  }
}

TEST_CASE("matmul: every operand layout matches a naive reference") {
  Tensor a = rand({12, 10}, DType::Float64), b = rand({10, 8}, DType::Float64);
  Tensor ref = naive_matmul(a, b);
  const testing::Tolerance tol{1e-12, 1e-12};
  CHECK(testing::expect_close(matmul(a, b), ref, tol, "contiguous"));
  Tensor at = a.transpose(0, 1).contiguous().transpose(0, 1);   // column-major a
  Tensor bt = b.transpose(0, 1).contiguous().transpose(0, 1);
  REQUIRE_FALSE(at.is_contiguous());
  CHECK(testing::expect_close(matmul(at, bt), ref, tol, "column-major operands"));
  // Stepped slices (stride 2 in both dims): not a BLAS layout, copied first.
  Tensor big = rand({24, 20}, DType::Float64);
  Tensor sa = big.slice(0, 0, 24, 2).slice(1, 0, 20, 2);
  CHECK(testing::expect_close(matmul(sa, b), naive_matmul(sa.contiguous(), b), tol, "stepped operand"));
  // A row slice with a larger leading dimension is read in place.
  Tensor ra = big.slice(1, 3, 13);
  CHECK(testing::expect_close(matmul(ra, b), naive_matmul(ra.contiguous(), b), tol, "leading-dimension operand"));
  // Float32 agrees with float64 to float precision.
  CHECK(testing::expect_close(matmul(a.to(DType::Float32), b.to(DType::Float32)), ref, {1e-5, 1e-5}, "float32"));
  // Batched: each batch equals its own 2-D product.
  Tensor a3 = rand({3, 4, 5}, DType::Float64), b3 = rand({3, 5, 2}, DType::Float64);
  Tensor c3 = matmul(a3, b3);
  for (int64_t i = 0; i < 3; ++i)
    CHECK(testing::expect_close(c3.select(0, i), naive_matmul(a3.select(0, i), b3.select(0, i)), tol, "batch"));
}

TEST_CASE("linear: empty inner dim gives the bias, empty batch gives an empty output") {
  Tensor x = Tensor::zeros({3, 0}, DType::Float64), w = Tensor::zeros({2, 0}, DType::Float64);
  Tensor b = Tensor::from_vector<double>({1.5, -2.0}, {2});
  Tensor y = linear(x, w, b);
  REQUIRE(y.sizes() == Shape{3, 2});
  CHECK(y.at({2, 0}) == 1.5);
  CHECK(y.at({1, 1}) == -2.0);
  CHECK(sum(linear(x, w)).item() == 0.0);
  CHECK(linear(Tensor::zeros({0, 4}), Tensor::ones({3, 4})).sizes() == Shape{0, 3});
}

TEST_CASE("matmul / linear: bad input names the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  std::string msg = expect_error([&] { matmul(a, b); });
  CHECK(contains(msg, "matmul"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[4, 5]"));
  CHECK(contains(expect_error([&] { matmul(Tensor::zeros({3}), Tensor::zeros({3, 2})); }), "matmul"));
  CHECK(contains(expect_error([&] { matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 2})); }), "batch"));
  CHECK(contains(expect_error([&] { matmul(a, Tensor::zeros({3, 2}, DType::Float64)); }), "matmul"));
  CHECK(contains(expect_error([&] { linear(Tensor::zeros({2, 4}), Tensor::zeros({5, 3})); }), "linear"));
  CHECK(contains(expect_error([&] { linear(Tensor::zeros({2, 3}), Tensor::zeros({5, 3}), Tensor::zeros({4})); }),
                 "bias"));
  CHECK(contains(expect_error([&] { linear(Tensor::zeros({2, 3}), Tensor::zeros({3})); }), "linear"));
}
