// batch_norm (kernels/cuda/batch_norm.cu) through CUDA-on-CPU against kernels/batch_norm.h and its
// autograd: training forward (output, running statistics after the update, saved mean / invstd),
// eval forward, backward in both modes (grad x, weight, bias), affine on and off, running stats
// on and off. Shapes: N = 1 and 3, C = 1, 5, 6 and 19, odd H x W, one plane of 65 x 67 (two chunks
// per plane), a channel with a large mean (the shifted one-pass sums must not cancel).
// Tolerances: the statistics are summed in another order than the CPU's (both in double), so
// float outputs agree to a few ulp, not bitwise; backward is run twice for bitwise determinism.
// covers: batch_norm_stats_partial_kernel batch_norm_stats_finalize_kernel batch_norm_eval_prepare_kernel batch_norm_apply_kernel batch_norm_backward_partial_kernel batch_norm_backward_finalize_kernel batch_norm_backward_dx_training_kernel batch_norm_backward_dx_eval_kernel
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "kernels/batch_norm.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

struct BnCase {
  int N, C, H, W;
  bool affine, running;
  float mean_offset;   // added to channel 0 (large mean vs std)
};

void run_bn(const BnCase& k, bool training, uint64_t seed) {
  CAPTURE(k.N);
  CAPTURE(k.C);
  CAPTURE(k.H);
  CAPTURE(k.W);
  CAPTURE(k.affine);
  CAPTURE(k.running);
  CAPTURE(training);
  const int64_t HW = int64_t(k.H) * k.W;
  const size_t n = size_t(k.N) * k.C * HW;
  auto x = random_vector(n, seed, -2.f, 3.f);
  for (int b = 0; b < k.N; ++b)
    for (int64_t i = 0; i < HW; ++i) x[size_t(b) * k.C * HW + i] += k.mean_offset;
  const auto w = random_vector(size_t(k.C), seed + 1, 0.5f, 1.5f), bias = random_vector(size_t(k.C), seed + 2);
  const auto rm0 = random_vector(size_t(k.C), seed + 3, -1.f, 1.f), rv0 = random_vector(size_t(k.C), seed + 4, 0.5f, 2.f);
  const auto gy = random_vector(n, seed + 5);
  const double momentum = 0.1, eps = 1e-5;

  // ---- CPU reference with autograd ----
  Tensor tx = Tensor::from_vector(x, {k.N, k.C, k.H, k.W}).set_requires_grad();
  Tensor tw = k.affine ? Tensor::from_vector(w, {k.C}).set_requires_grad() : Tensor();
  Tensor tb = k.affine ? Tensor::from_vector(bias, {k.C}).set_requires_grad() : Tensor();
  Tensor trm = k.running ? Tensor::from_vector(rm0, {k.C}) : Tensor();
  Tensor trv = k.running ? Tensor::from_vector(rv0, {k.C}) : Tensor();
  Tensor ty = batch_norm2d(tx, tw, tb, trm, trv, training, momentum, eps);
  ty.backward(Tensor::from_vector(gy, {k.N, k.C, k.H, k.W}));

  // ---- kernels ----
  DeviceBuffer<float> dx(x), dw(w), db(bias), drm(rm0), drv(rv0), dy(n), dmean(size_t(k.C)), dinv(size_t(k.C));
  DeviceBuffer<float> ws(coc::batch_norm_workspace_floats(k.N, k.C, HW));
  const float* pw = k.affine ? dw.ptr() : nullptr;
  const float* pb = k.affine ? db.ptr() : nullptr;
  if (training)
    coc::batch_norm_forward_training(dx.ptr(), pw, pb, k.running ? drm.ptr() : nullptr, k.running ? drv.ptr() : nullptr,
                                     dy.ptr(), dmean.ptr(), dinv.ptr(), ws.ptr(), k.N, k.C, HW, momentum, eps);
  else
    coc::batch_norm_forward_eval(dx.ptr(), pw, pb, drm.ptr(), drv.ptr(), dy.ptr(), dmean.ptr(), dinv.ptr(), ws.ptr(), k.N,
                                 k.C, HW, eps);
  expect_close("y", dy.download(), ty.to_vector<float>(), 2e-6, 2e-6);
  if (k.running) {
    expect_close("running_mean", drm.download(), trm.to_vector<float>(), 1e-6, 1e-6);
    expect_close("running_var", drv.download(), trv.to_vector<float>(), 1e-6, 1e-6);
  }
  // Saved statistics against double ones computed here.
  std::vector<float> want_mean(size_t(k.C)), want_inv(size_t(k.C));
  for (int c = 0; c < k.C; ++c) {
    double s = 0, q = 0;
    for (int b = 0; b < k.N; ++b)
      for (int64_t i = 0; i < HW; ++i) s += x[(size_t(b) * k.C + c) * HW + i];
    const double mu = s / double(k.N * HW);
    for (int b = 0; b < k.N; ++b)
      for (int64_t i = 0; i < HW; ++i) q += std::pow(x[(size_t(b) * k.C + c) * HW + i] - mu, 2);
    const double var = training ? q / double(k.N * HW) : rv0[size_t(c)];
    want_mean[size_t(c)] = training ? float(mu) : rm0[size_t(c)];
    want_inv[size_t(c)] = float(1.0 / std::sqrt(var + eps));
  }
  expect_close("save_mean", dmean.download(), want_mean, 1e-6, 1e-6);
  expect_close("save_invstd", dinv.download(), want_inv, 0, 1e-6);

  // ---- backward ----
  DeviceBuffer<float> dgy(gy), dgx(random_vector(n, seed + 9)), dgw(size_t(k.C)), dgb(size_t(k.C));
  auto backward = [&] {
    coc::batch_norm_backward(dgy.ptr(), dx.ptr(), pw, dmean.ptr(), dinv.ptr(), training, dgx.ptr(),
                             k.affine ? dgw.ptr() : nullptr, k.affine ? dgb.ptr() : nullptr, ws.ptr(), k.N, k.C, HW);
  };
  backward();
  const auto gx1 = dgx.download();
  expect_close("grad x", gx1, tx.grad().to_vector<float>(), 2e-5, 2e-5);
  if (k.affine) {
    expect_close("grad weight", dgw.download(), tw.grad().to_vector<float>(), 1e-4, 1e-5);
    expect_close("grad bias", dgb.download(), tb.grad().to_vector<float>(), 1e-4, 1e-6);
  }
  backward();
  CHECK(dgx.download() == gx1);
}

TEST_CASE("batch_norm training forward and backward match the CPU op") {
  uint64_t seed = 100;
  for (const BnCase& k : {BnCase{3, 5, 7, 9, true, true, 0.f}, BnCase{1, 19, 3, 5, false, true, 0.f},
                          BnCase{3, 1, 1, 3, true, false, 0.f}, BnCase{1, 2, 65, 67, true, true, 300.f},
                          BnCase{3, 5, 5, 3, false, false, 1000.f}})
    run_bn(k, true, seed += 10);
}

TEST_CASE("batch_norm eval forward and backward match the CPU op") {
  uint64_t seed = 300;
  for (const BnCase& k : {BnCase{3, 5, 7, 9, true, true, 0.f}, BnCase{1, 6, 3, 5, false, true, 0.f},
                          BnCase{1, 1, 1, 1, true, true, 5.f}})
    run_bn(k, false, seed += 10);
}

TEST_CASE("batch_norm launchers reject bad arguments") {
  DeviceBuffer<float> b(64);
  CHECK_THROWS_AS(coc::batch_norm_forward_training(b.ptr(), nullptr, nullptr, nullptr, nullptr, b.ptr(), nullptr,
                                                   nullptr, b.ptr(), 1, 3, 1, 0.1, 1e-5),
                  Error);   // one value per channel
  CHECK_THROWS_AS(coc::batch_norm_forward_eval(b.ptr(), nullptr, nullptr, nullptr, nullptr, b.ptr(), nullptr, nullptr,
                                               b.ptr(), 1, 3, 4, 1e-5),
                  Error);   // eval without running stats
  CHECK_THROWS_AS(coc::batch_norm_forward_training(b.ptr(), nullptr, nullptr, b.ptr(), nullptr, b.ptr(), nullptr,
                                                   nullptr, b.ptr(), 2, 3, 4, 0.1, 1e-5),
                  Error);   // only one running statistic
}

}  // namespace
