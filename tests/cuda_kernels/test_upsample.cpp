// upsample (kernels/cuda/upsample.cu) through CUDA-on-CPU against kernels/upsample.h and its
// autograd: bilinear with align_corners true and false, nearest; factors 2, 4 and 8 (FRRN's z
// path) on odd sizes, awkward ratios (5 -> 13, 7 -> 3: downsampling, sizes 1 on either side).
// The kernels compute the CPU's weights in double and add the gathered contributions in the CPU
// scatter's order, so they would agree bitwise, but g++ -std=c++20 contracts a * b + c into FMAs
// (-ffp-contract=fast is GCC's default outside ISO C) wherever its optimiser chooses, in the CPU
// op and in the CUDA-on-CPU build alike, so bilinear results may differ by an ulp or so: a
// tolerance of a few ulp (a wrong source pixel or weight is off by far more). Nearest is exact.
// covers: upsample_bilinear2d_forward_kernel upsample_bilinear2d_backward_kernel upsample_nearest2d_forward_kernel upsample_nearest2d_backward_kernel
#include <doctest/doctest.h>

#include "core/error.h"
#include "kernels/upsample.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

struct UpCase {
  int N, C, H, W, oh, ow;
};

const UpCase kCases[] = {{3, 3, 5, 7, 10, 14}, {1, 5, 3, 5, 12, 20}, {1, 3, 3, 2, 24, 16},
                         {1, 3, 5, 4, 13, 9},  {3, 2, 7, 9, 3, 4},   {1, 2, 1, 3, 4, 1}};

TEST_CASE("upsample_bilinear2d forward and backward match the CPU op") {
  uint64_t seed = 800;
  for (bool ac : {true, false}) {
    for (const UpCase& c : kCases) {
      CAPTURE(ac);
      CAPTURE(c.H);
      CAPTURE(c.W);
      CAPTURE(c.oh);
      CAPTURE(c.ow);
      const size_t n = size_t(c.N) * c.C * c.H * c.W, no = size_t(c.N) * c.C * c.oh * c.ow;
      const auto x = random_vector(n, seed += 7), gy = random_vector(no, seed + 1);
      Tensor tx = Tensor::from_vector(x, {c.N, c.C, c.H, c.W}).set_requires_grad();
      Tensor ty = upsample_bilinear2d(tx, c.oh, c.ow, ac);
      ty.backward(Tensor::from_vector(gy, {c.N, c.C, c.oh, c.ow}));
      DeviceBuffer<float> dx(x), dy(no), dgy(gy), dgx(random_vector(n, seed + 2));
      coc::upsample_bilinear2d_forward(dx.ptr(), dy.ptr(), c.N, c.C, c.H, c.W, c.oh, c.ow, ac);
      expect_close("bilinear y", dy.download(), ty.to_vector<float>(), 1e-6, 1e-6);
      coc::upsample_bilinear2d_backward(dgy.ptr(), dgx.ptr(), c.N, c.C, c.H, c.W, c.oh, c.ow, ac);
      expect_close("bilinear grad x", dgx.download(), tx.grad().to_vector<float>(), 4e-6, 1e-6);
    }
  }
}

TEST_CASE("upsample_nearest2d forward and backward match the CPU op") {
  uint64_t seed = 900;
  for (const UpCase& c : kCases) {
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.oh);
    CAPTURE(c.ow);
    const size_t n = size_t(c.N) * c.C * c.H * c.W, no = size_t(c.N) * c.C * c.oh * c.ow;
    const auto x = random_vector(n, seed += 7), gy = random_vector(no, seed + 1);
    Tensor tx = Tensor::from_vector(x, {c.N, c.C, c.H, c.W}).set_requires_grad();
    Tensor ty = upsample_nearest2d(tx, c.oh, c.ow);
    ty.backward(Tensor::from_vector(gy, {c.N, c.C, c.oh, c.ow}));
    DeviceBuffer<float> dx(x), dy(no), dgy(gy), dgx(random_vector(n, seed + 2));
    coc::upsample_nearest2d_forward(dx.ptr(), dy.ptr(), c.N, c.C, c.H, c.W, c.oh, c.ow);
    expect_close("nearest y", dy.download(), ty.to_vector<float>(), 0, 0);
    coc::upsample_nearest2d_backward(dgy.ptr(), dgx.ptr(), c.N, c.C, c.H, c.W, c.oh, c.ow);
    expect_close("nearest grad x", dgx.download(), tx.grad().to_vector<float>(), 0, 0);
  }
}

TEST_CASE("upsample launchers reject empty sizes") {
  DeviceBuffer<float> b(16);
  CHECK_THROWS_AS(coc::upsample_bilinear2d_forward(b.ptr(), b.ptr(), 1, 1, 2, 2, 0, 4, true), Error);
  CHECK_THROWS_AS(coc::upsample_nearest2d_backward(b.ptr(), b.ptr(), 1, 0, 2, 2, 4, 4), Error);
}

}  // namespace
