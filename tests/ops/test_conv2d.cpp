// Tests of conv2d (kernels/conv2d.h): float64 finite-difference gradients on awkward shapes
// (batch 1, odd sizes, 3 and 37 channels, dilation 1/2/6/12 with zero and "same" padding,
// stride 2, groups 2, depthwise, bias off/on, fused ReLU), PyTorch fixtures (cases_nn.py),
// a hand-computed value and bad-input errors.
// Run: ./build/tests/test_ops -tc='conv2d*'
#include <doctest/doctest.h>

#include <string>

#include "kernels/conv2d.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using namespace moeseg::testing;

MOESEG_OP_TEST("conv2d", "grad");
MOESEG_OP_TEST("conv2d", "torch");

namespace {

struct ConvSpec {
  Shape x;
  int64_t c_out, kh, kw;
  Conv2dOptions opt;
  bool bias;
};

Conv2dOptions opts(int64_t stride, int64_t pad, int64_t dil = 1, int64_t groups = 1, bool relu = false) {
  Conv2dOptions o = Conv2dOptions::same(stride, pad, dil, groups);
  o.fuse_relu = relu;
  return o;
}

void conv_gradcheck(const ConvSpec& s, uint64_t seed) {
  Tensor x = rand_input(s.x, -1.0, 1.0, seed);
  Tensor w = rand_input({s.c_out, s.x[1] / s.opt.groups, s.kh, s.kw}, -0.5, 0.5, seed + 1);
  std::vector<Tensor> in = {x, w};
  if (s.bias) in.push_back(rand_input({s.c_out}, -1.0, 1.0, seed + 2));
  const Conv2dOptions o = s.opt;
  CHECK(check_gradients(
      "conv2d", [o](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), o); },
      in));
}


}  // namespace

TEST_CASE("conv2d: gradients, plain, strided, odd sizes") {
  conv_gradcheck({{1, 3, 7, 11}, 4, 3, 3, opts(1, 1), true}, 11);     // batch 1, odd width, same
  conv_gradcheck({{2, 3, 7, 9}, 4, 3, 3, opts(2, 1), false}, 12);     // stride 2, no bias
  conv_gradcheck({{1, 2, 8, 7}, 3, 3, 3, opts(2, 0), true}, 13);      // stride 2, no padding
  conv_gradcheck({{1, 37, 3, 4}, 2, 3, 3, opts(1, 1), true}, 14);     // 37 input channels
  conv_gradcheck({{1, 3, 5, 6}, 37, 1, 1, opts(1, 0), true}, 15);     // 37 output channels, 1x1
  Conv2dOptions nsq = opts(1, 0);
  nsq.pad_w = 1;
  conv_gradcheck({{1, 2, 5, 7}, 3, 1, 3, nsq, true}, 16);             // 1x3 kernel, asymmetric padding
}

TEST_CASE("conv2d: gradients, dilation 2/6/12 with zero and same padding") {
  conv_gradcheck({{1, 2, 9, 7}, 3, 3, 3, opts(1, 0, 2), true}, 21);
  conv_gradcheck({{1, 2, 7, 9}, 3, 3, 3, opts(1, 2, 2), false}, 22);
  conv_gradcheck({{1, 2, 14, 13}, 2, 3, 3, opts(1, 0, 6), true}, 23);
  conv_gradcheck({{1, 2, 9, 8}, 2, 3, 3, opts(1, 6, 6), true}, 24);
  conv_gradcheck({{1, 1, 26, 25}, 2, 3, 3, opts(1, 0, 12), false}, 25);
  conv_gradcheck({{1, 2, 9, 10}, 2, 3, 3, opts(1, 12, 12), true}, 26);   // most taps in the padding
  conv_gradcheck({{1, 2, 11, 9}, 2, 3, 3, opts(2, 6, 6), true}, 27);     // dilated and strided
}

TEST_CASE("conv2d: gradients, groups 2, depthwise, fused relu") {
  conv_gradcheck({{1, 4, 7, 5}, 6, 3, 3, opts(1, 1, 1, 2), true}, 31);
  conv_gradcheck({{2, 4, 5, 7}, 4, 3, 3, opts(2, 1, 1, 2), false}, 32);
  conv_gradcheck({{1, 3, 7, 11}, 3, 3, 3, opts(1, 1, 1, 3), true}, 33);    // depthwise
  conv_gradcheck({{1, 4, 9, 7}, 8, 3, 3, opts(1, 2, 2, 4), false}, 34);    // depthwise x2, dilated
  conv_gradcheck({{2, 3, 5, 7}, 4, 3, 3, opts(1, 1, 1, 1, true), true}, 35);
  conv_gradcheck({{1, 4, 7, 6}, 4, 3, 3, opts(1, 2, 2, 2, true), false}, 36);
}

TEST_CASE("conv2d: gradient of the bias alone (frozen input and weight)") {
  Tensor x = rand_input({1, 3, 5, 7}, -1, 1, 41).set_requires_grad(false);
  Tensor w = rand_input({4, 3, 3, 3}, -1, 1, 42).set_requires_grad(false);
  Tensor b = rand_input({4}, -1, 1, 43);
  CHECK(check_gradients("conv2d", [&](const std::vector<Tensor>& v) { return conv2d(x, w, v[0], opts(1, 1)); }, {b}));
}

TEST_CASE("conv2d: hand-computed values and fused relu") {
  // All-ones 3x3 input and kernel with padding 1: corners see 4 taps, edges 6, the centre 9.
  Tensor x = Tensor::ones({1, 1, 3, 3});
  Tensor w = Tensor::ones({1, 1, 3, 3});
  Tensor b = Tensor::full({1}, -5.0);
  Tensor y = conv2d(x, w, b, opts(1, 1));
  CHECK(y.at({0, 0, 0, 0}) == doctest::Approx(-1.0));
  CHECK(y.at({0, 0, 0, 1}) == doctest::Approx(1.0));
  CHECK(y.at({0, 0, 1, 1}) == doctest::Approx(4.0));
  Tensor yr = conv2d(x, w, b, opts(1, 1, 1, 1, true));
  CHECK(yr.at({0, 0, 0, 0}) == 0.0);
  CHECK(yr.at({0, 0, 2, 2}) == 0.0);
  CHECK(yr.at({0, 0, 0, 1}) == doctest::Approx(1.0));
  CHECK(yr.at({0, 0, 1, 1}) == doctest::Approx(4.0));
  // A non-contiguous input (a transposed view) gives the same result as its contiguous copy.
  Tensor xt = rand_input({1, 2, 6, 5}, -1, 1, 44).set_requires_grad(false).transpose(2, 3);
  Tensor w2 = rand_input({3, 2, 3, 3}, -1, 1, 45).set_requires_grad(false);
  expect_close(conv2d(xt, w2, Tensor(), opts(1, 1)), conv2d(xt.contiguous(), w2, Tensor(), opts(1, 1)), kTolF64,
               "conv2d on a transposed view");
}

TEST_CASE("conv2d: matches PyTorch") {
  for (const char* name : {"conv2d_k3_bias", "conv2d_dil2_same", "conv2d_dil6_pad0", "conv2d_dil12_same",
                           "conv2d_stride2", "conv2d_groups2", "conv2d_depthwise", "conv2d_relu", "conv2d_c37_1x1",
                           "conv2d_k5_stride2_dil2"}) {
    INFO("case " << name);
    run_fixture("conv2d", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      const auto& p = f.params;
      Conv2dOptions o = opts(p["stride"].get<int64_t>(), p["pad"].get<int64_t>(), p["dil"].get<int64_t>(),
                             p["groups"].get<int64_t>(), p["relu"].get<bool>());
      return conv2d(in.at("x"), in.at("weight"), in.count("bias") ? in.at("bias") : Tensor(), o);
    });
  }
}

TEST_CASE("conv2d: bad input names the op and the shapes") {
  Tensor x = Tensor::zeros({1, 4, 8, 8});
  Tensor w = Tensor::zeros({6, 4, 3, 3});
  expect_error([&] { conv2d(Tensor::zeros({4, 8, 8}), w, Tensor()); }, "conv2d");               // 3-D input
  expect_error([&] { conv2d(x, Tensor::zeros({6, 4, 3}), Tensor()); }, "conv2d");               // 3-D weight
  expect_error([&] { conv2d(x, Tensor::zeros({6, 3, 3, 3}), Tensor()); }, "conv2d");            // C_in mismatch
  expect_error([&] { conv2d(x, Tensor::zeros({6, 4, 3, 3}), Tensor(), opts(1, 0, 1, 3)); }, "conv2d");  // 4 % 3
  expect_error([&] { conv2d(x, Tensor::zeros({5, 2, 3, 3}), Tensor(), opts(1, 0, 1, 2)); }, "conv2d");  // 5 % 2
  expect_error([&] { conv2d(x, w, Tensor::zeros({5})); }, "conv2d");                             // bias size
  expect_error([&] { conv2d(x, Tensor::zeros({6, 4, 3, 3}, DType::Float64), Tensor()); }, "conv2d");   // dtypes
  expect_error([&] { conv2d(Tensor::zeros({1, 4, 8, 8}, DType::Int32), Tensor::zeros({6, 4, 3, 3}, DType::Int32),
                            Tensor()); }, "conv2d");                                             // int dtype
  expect_error([&] { conv2d(Tensor::zeros({0, 4, 8, 8}), w, Tensor()); }, "conv2d");            // empty batch
  expect_error([&] { conv2d(x, w, Tensor(), opts(1, 0, 6)); }, "conv2d");                        // kernel 13 > 8
  expect_error([&] { conv2d(x, w, Tensor(), opts(0, 1)); }, "conv2d");                           // stride 0
  expect_error([&] { conv2d(x, w, Tensor(), opts(1, 1, 1, 0)); }, "conv2d");                     // groups 0
  // The message carries the shapes, not just the op name.
  try {
    conv2d(x, Tensor::zeros({6, 3, 3, 3}), Tensor());
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("[1, 4, 8, 8]") != std::string::npos);
    CHECK(std::string(e.what()).find("[6, 3, 3, 3]") != std::string::npos);
  }
}
