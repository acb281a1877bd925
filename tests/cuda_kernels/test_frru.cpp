// frru (kernels/cuda/frru.cu) through CUDA-on-CPU against the composition of the CPU ops and
// their autograd: concat([y, max_pool2d(z, 3, f, 1)], 1) and
// add(z_in, upsample_bilinear2d(conv2d(y_out, W[Cz, Cy, 1, 1], b), H, W, align_corners=true)).
// Factors 2, 4 and 8 (and 16 with a one-pixel-wide y), N = 1 and 3, Cy = 5, 37 and 40, Cz = 32 (FRRN) and 7,
// z sizes that are and are not multiples of f. The pool/concat path is exact (same comparisons,
// gather in output order); the 1x1 conv sums Cy (or Cz) products in another order than the
// CPU's GEMM, so those outputs get a few-ulp tolerance.
// covers: frru_pool_concat_forward_kernel frru_pool_concat_backward_kernel frru_conv1x1_kernel frru_upsample_add_kernel frru_upsample_grad_kernel frru_conv1x1_wgrad_partial_kernel frru_conv1x1_wgrad_final_kernel
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/pooling.h"
#include "kernels/shape_ops.h"
#include "kernels/upsample.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

struct FrruCase {
  int N, Cy, Cz, h, w, H, W, f;
};

const FrruCase kCases[] = {{1, 37, 32, 5, 3, 9, 6, 2},
                           {3, 5, 7, 3, 4, 12, 13, 4},
                           {1, 40, 32, 2, 3, 16, 17, 8},
                           {1, 5, 7, 2, 1, 17, 16, 16}};

TEST_CASE("frru_pool_concat forward and backward match max_pool2d + concat") {
  uint64_t seed = 1400;
  for (const FrruCase& c : kCases) {
    CAPTURE(c.f);
    CAPTURE(c.H);
    CAPTURE(c.W);
    const size_t ny = size_t(c.N) * c.Cy * c.h * c.w, nz = size_t(c.N) * c.Cz * c.H * c.W;
    const size_t no = size_t(c.N) * (c.Cy + c.Cz) * c.h * c.w;
    auto z = random_vector(nz, seed += 7, -3.f, 3.f);
    for (auto& v : z) v = std::round(v);   // ties: the first maximum must win
    const auto y = random_vector(ny, seed + 1), gout = random_vector(no, seed + 2);
    Tensor ty = Tensor::from_vector(y, {c.N, c.Cy, c.h, c.w}).set_requires_grad();
    Tensor tz = Tensor::from_vector(z, {c.N, c.Cz, c.H, c.W}).set_requires_grad();
    Tensor tout = concat({ty, max_pool2d(tz, 3, c.f, 1)}, 1);
    tout.backward(Tensor::from_vector(gout, {c.N, c.Cy + c.Cz, c.h, c.w}));

    DeviceBuffer<float> dy(y), dz(z), dout(no), dgout(gout), dgy(ny), dgz(random_vector(nz, seed + 3));
    DeviceBuffer<int64_t> didx(size_t(c.N) * c.Cz * c.h * c.w);
    coc::frru_pool_concat_forward(dy.ptr(), dz.ptr(), dout.ptr(), didx.ptr(), c.N, c.Cy, c.h, c.w, c.Cz, c.H, c.W, c.f);
    expect_close("pool_concat out", dout.download(), tout.to_vector<float>(), 0, 0);
    coc::frru_pool_concat_backward(dgout.ptr(), didx.ptr(), dgy.ptr(), dgz.ptr(), c.N, c.Cy, c.h, c.w, c.Cz, c.H, c.W,
                                   c.f);
    expect_close("pool_concat grad y", dgy.download(), ty.grad().to_vector<float>(), 0, 0);
    expect_close("pool_concat grad z", dgz.download(), tz.grad().to_vector<float>(), 0, 0);
    // grad_y may be skipped; grad_z is unchanged.
    DeviceBuffer<float> dgz2(nz);
    coc::frru_pool_concat_backward(dgout.ptr(), didx.ptr(), nullptr, dgz2.ptr(), c.N, c.Cy, c.h, c.w, c.Cz, c.H, c.W, c.f);
    CHECK(dgz2.download() == dgz.download());
  }
}

TEST_CASE("frru_conv1x1_upsample_add forward and backward match conv2d + upsample + add") {
  uint64_t seed = 1500;
  for (const FrruCase& c : kCases) {
    CAPTURE(c.f);
    CAPTURE(c.Cy);
    CAPTURE(c.Cz);
    const size_t ny = size_t(c.N) * c.Cy * c.h * c.w, nz = size_t(c.N) * c.Cz * c.H * c.W;
    const auto y = random_vector(ny, seed += 7), zin = random_vector(nz, seed + 1), gz = random_vector(nz, seed + 2);
    const auto wt = random_vector(size_t(c.Cz) * c.Cy, seed + 3, -0.5f, 0.5f), b = random_vector(size_t(c.Cz), seed + 4);
    Tensor ty = Tensor::from_vector(y, {c.N, c.Cy, c.h, c.w}).set_requires_grad();
    Tensor tw = Tensor::from_vector(wt, {c.Cz, c.Cy, 1, 1}).set_requires_grad();
    Tensor tb = Tensor::from_vector(b, {c.Cz}).set_requires_grad();
    Tensor tz = Tensor::from_vector(zin, {c.N, c.Cz, c.H, c.W});
    Tensor tout = add(tz, upsample_bilinear2d(conv2d(ty, tw, tb), c.H, c.W, true));
    tout.backward(Tensor::from_vector(gz, {c.N, c.Cz, c.H, c.W}));

    DeviceBuffer<float> dy(y), dw(wt), db(b), dz(zin), dout(nz);
    DeviceBuffer<float> fws(coc::frru_conv1x1_upsample_add_forward_workspace_floats(c.N, c.Cz, c.h, c.w));
    coc::frru_conv1x1_upsample_add_forward(dy.ptr(), dw.ptr(), db.ptr(), dz.ptr(), dout.ptr(), fws.ptr(), c.N, c.Cy,
                                           c.h, c.w, c.Cz, c.H, c.W);
    expect_close("z_out", dout.download(), tout.to_vector<float>(), 1e-5, 1e-5);
    // In place (z_out == z_in) gives the same bits.
    coc::frru_conv1x1_upsample_add_forward(dy.ptr(), dw.ptr(), db.ptr(), dz.ptr(), dz.ptr(), fws.ptr(), c.N, c.Cy, c.h,
                                           c.w, c.Cz, c.H, c.W);
    CHECK(dz.download() == dout.download());

    DeviceBuffer<float> dgz(gz), dgy(random_vector(ny, seed + 5)), dgw(wt.size()), dgb(b.size());
    DeviceBuffer<float> bws(coc::frru_conv1x1_upsample_add_backward_workspace_floats(c.N, c.Cy, c.h, c.w, c.Cz));
    auto backward = [&] {
      coc::frru_conv1x1_upsample_add_backward(dgz.ptr(), dy.ptr(), dw.ptr(), dgy.ptr(), dgw.ptr(), dgb.ptr(), bws.ptr(),
                                              c.N, c.Cy, c.h, c.w, c.Cz, c.H, c.W);
    };
    backward();
    const auto gw1 = dgw.download();
    expect_close("grad y_out", dgy.download(), ty.grad().to_vector<float>(), 1e-4, 1e-5);
    expect_close("grad weight", gw1, tw.grad().to_vector<float>(), 1e-4, 1e-5);
    expect_close("grad bias", dgb.download(), tb.grad().to_vector<float>(), 1e-4, 1e-5);
    backward();
    CHECK(dgw.download() == gw1);
  }
}

TEST_CASE("frru launchers reject mismatched y and z sizes") {
  DeviceBuffer<float> b(4096);
  DeviceBuffer<int64_t> i(4096);
  // maxpool(k3, s2, p1) of 9 x 6 is 5 x 3, not 4 x 3.
  CHECK_THROWS_AS(coc::frru_pool_concat_forward(b.ptr(), b.ptr(), b.ptr(), i.ptr(), 1, 3, 4, 3, 2, 9, 6, 2), Error);
  CHECK_THROWS_AS(coc::frru_pool_concat_forward(b.ptr(), b.ptr(), b.ptr(), i.ptr(), 1, 3, 5, 3, 2, 9, 6, 0), Error);
  CHECK_THROWS_AS(coc::frru_conv1x1_upsample_add_forward(b.ptr(), b.ptr(), nullptr, b.ptr(), b.ptr(), nullptr, 1, 3,
                                                         5, 3, 2, 9, 6),
                  Error);
}

}  // namespace
