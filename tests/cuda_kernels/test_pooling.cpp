// pooling (kernels/cuda/pooling.cu) through CUDA-on-CPU against kernels/pooling.h and its
// autograd: max (k3 s2 p1 and k3 s4 p1 / k3 s8 p1 as in FRRN, k2 s2, k3 s1 p1 with heavy
// overlap), average (count_include_pad) and adaptive average pooling; forward and backward on
// N = 1 and 3, C = 3 and 5, odd H x W. Inputs are small integers, so ties are everywhere (first
// maximum must win) and one window holds a NaN and one plane is all -inf. Every comparison is
// exact: the kernels add in the CPU's order.
// covers: max_pool2d_forward_kernel max_pool2d_backward_kernel avg_pool2d_forward_kernel avg_pool2d_backward_kernel adaptive_avg_pool2d_forward_kernel adaptive_avg_pool2d_backward_kernel
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "kernels/pooling.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

struct PoolCase {
  int N, C, H, W, k, s, p;
};

std::vector<float> tie_input(size_t n, uint64_t seed) {
  auto x = random_vector(n, seed, -3.f, 3.f);
  for (auto& v : x) v = std::round(v);
  return x;
}

TEST_CASE("max_pool2d forward, indices and backward match the CPU op") {
  uint64_t seed = 500;
  for (const PoolCase& c : {PoolCase{3, 3, 9, 11, 3, 2, 1}, PoolCase{1, 5, 13, 7, 3, 4, 1}, PoolCase{1, 3, 17, 9, 3, 8, 1},
                            PoolCase{3, 3, 7, 6, 2, 2, 0}, PoolCase{1, 3, 5, 7, 3, 1, 1}}) {
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.k);
    CAPTURE(c.s);
    CAPTURE(c.p);
    const size_t n = size_t(c.N) * c.C * c.H * c.W;
    auto x = tie_input(n, seed += 7);
    x[5] = std::numeric_limits<float>::quiet_NaN();
    for (int i = 0; i < c.H * c.W; ++i) x[size_t(c.H) * c.W + i] = -INFINITY;   // plane 1: all -inf
    const int ho = coc::pool2d_out_size(c.H, c.k, c.s, c.p), wo = coc::pool2d_out_size(c.W, c.k, c.s, c.p);
    const size_t no = size_t(c.N) * c.C * ho * wo;
    const auto gy = random_vector(no, seed + 1);

    Tensor tx = Tensor::from_vector(x, {c.N, c.C, c.H, c.W}).set_requires_grad();
    Tensor ty = max_pool2d(tx, c.k, c.s, c.p);
    REQUIRE(ty.size(2) == ho);
    REQUIRE(ty.size(3) == wo);
    ty.backward(Tensor::from_vector(gy, {c.N, c.C, ho, wo}));

    DeviceBuffer<float> dx(x), dy(no), dgy(gy), dgx(random_vector(n, seed + 2));
    DeviceBuffer<int64_t> didx(no);
    coc::max_pool2d_forward(dx.ptr(), dy.ptr(), didx.ptr(), c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    expect_close("max_pool2d y", dy.download(), ty.to_vector<float>(), 0, 0);
    // Every index points at its output's value inside its plane (first-max order is checked by
    // the backward below: another tied index moves the gradient).
    const auto idx = didx.download();
    const auto y = dy.download();
    for (size_t o = 0; o < no; ++o) {
      const size_t plane = o / size_t(ho * wo);
      REQUIRE(idx[o] >= 0);
      REQUIRE(idx[o] < c.H * c.W);
      const float v = x[plane * c.H * c.W + size_t(idx[o])];
      CHECK(((v == y[o]) || (std::isnan(v) && std::isnan(y[o]))));
    }
    coc::max_pool2d_backward(dgy.ptr(), didx.ptr(), dgx.ptr(), c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    expect_close("max_pool2d grad x", dgx.download(), tx.grad().to_vector<float>(), 0, 0);
    // Eval form: no indices, same values.
    DeviceBuffer<float> dy2(no);
    coc::max_pool2d_forward(dx.ptr(), dy2.ptr(), nullptr, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    const auto y2 = dy2.download();
    CHECK(std::memcmp(y2.data(), y.data(), y.size() * sizeof(float)) == 0);   // bitwise (NaN included)
  }
}

TEST_CASE("avg_pool2d forward and backward match the CPU op") {
  uint64_t seed = 600;
  for (const PoolCase& c : {PoolCase{3, 3, 9, 11, 3, 2, 1}, PoolCase{1, 5, 7, 5, 2, 2, 0}, PoolCase{1, 3, 8, 9, 5, 3, 2},
                            PoolCase{1, 3, 5, 7, 3, 1, 1}}) {
    CAPTURE(c.H);
    CAPTURE(c.k);
    CAPTURE(c.s);
    CAPTURE(c.p);
    const size_t n = size_t(c.N) * c.C * c.H * c.W;
    const auto x = random_vector(n, seed += 7);
    const int ho = coc::pool2d_out_size(c.H, c.k, c.s, c.p), wo = coc::pool2d_out_size(c.W, c.k, c.s, c.p);
    const size_t no = size_t(c.N) * c.C * ho * wo;
    const auto gy = random_vector(no, seed + 1);
    Tensor tx = Tensor::from_vector(x, {c.N, c.C, c.H, c.W}).set_requires_grad();
    Tensor ty = avg_pool2d(tx, c.k, c.s, c.p);
    ty.backward(Tensor::from_vector(gy, {c.N, c.C, ho, wo}));
    DeviceBuffer<float> dx(x), dy(no), dgy(gy), dgx(n);
    coc::avg_pool2d_forward(dx.ptr(), dy.ptr(), c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    expect_close("avg_pool2d y", dy.download(), ty.to_vector<float>(), 0, 0);
    coc::avg_pool2d_backward(dgy.ptr(), dgx.ptr(), c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    expect_close("avg_pool2d grad x", dgx.download(), tx.grad().to_vector<float>(), 0, 0);
  }
}

TEST_CASE("adaptive_avg_pool2d forward and backward match the CPU op") {
  uint64_t seed = 700;
  struct A {
    int N, C, H, W, oh, ow;
  };
  for (const A& c : {A{3, 3, 9, 11, 1, 1}, A{1, 5, 7, 10, 3, 4}, A{1, 3, 5, 3, 7, 6}, A{3, 2, 13, 13, 5, 2}}) {
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.oh);
    CAPTURE(c.ow);
    const size_t n = size_t(c.N) * c.C * c.H * c.W, no = size_t(c.N) * c.C * c.oh * c.ow;
    const auto x = random_vector(n, seed += 7), gy = random_vector(no, seed + 1);
    Tensor tx = Tensor::from_vector(x, {c.N, c.C, c.H, c.W}).set_requires_grad();
    Tensor ty = adaptive_avg_pool2d(tx, c.oh, c.ow);
    ty.backward(Tensor::from_vector(gy, {c.N, c.C, c.oh, c.ow}));
    DeviceBuffer<float> dx(x), dy(no), dgy(gy), dgx(n);
    coc::adaptive_avg_pool2d_forward(dx.ptr(), dy.ptr(), c.N, c.C, c.H, c.W, c.oh, c.ow);
    expect_close("adaptive_avg_pool2d y", dy.download(), ty.to_vector<float>(), 0, 0);
    coc::adaptive_avg_pool2d_backward(dgy.ptr(), dgx.ptr(), c.N, c.C, c.H, c.W, c.oh, c.ow);
    expect_close("adaptive_avg_pool2d grad x", dgx.download(), tx.grad().to_vector<float>(), 0, 0);
  }
}

TEST_CASE("pooling launchers reject bad options") {
  DeviceBuffer<float> b(64);
  CHECK_THROWS_AS(coc::max_pool2d_forward(b.ptr(), b.ptr(), nullptr, 1, 1, 4, 4, 3, 2, 2), Error);   // pad > k/2
  CHECK_THROWS_AS(coc::avg_pool2d_forward(b.ptr(), b.ptr(), 1, 1, 2, 2, 5, 1, 1), Error);            // too small
  CHECK_THROWS_AS(coc::max_pool2d_backward(b.ptr(), nullptr, b.ptr(), 1, 1, 4, 4, 2, 2, 0), Error);  // no indices
}

}  // namespace
