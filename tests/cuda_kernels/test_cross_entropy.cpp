// cross_entropy (kernels/cuda/cross_entropy.cu) through CUDA-on-CPU against the CPU backend's
// cross_entropy (kernels/cross_entropy.h) with autograd: reductions none / sum / mean, class
// weights, ignore_index, C = 3 and 37, batch 1, pixel counts not a multiple of the block, more
// than one block (two-level reduction), and every pixel ignored (mean = NaN, grads 0).
// covers: cross_entropy_forward_kernel cross_entropy_finalize_kernel cross_entropy_backward_kernel
#include <doctest/doctest.h>

#include "kernels/cross_entropy.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

struct CeCase {
  int N, C, H, W;
  bool weighted;
  double ignore_fraction;   // 1.0 = every pixel ignored
  coc::CEReduction reduction;
};

void run_case(const CeCase& k, uint64_t seed) {
  CAPTURE(k.N);
  CAPTURE(k.C);
  CAPTURE(k.H);
  CAPTURE(k.W);
  CAPTURE(k.weighted);
  CAPTURE(k.ignore_fraction);
  CAPTURE(static_cast<int>(k.reduction));
  const int64_t HW = int64_t(k.H) * k.W, P = k.N * HW;
  const int64_t ignore = 255;
  const auto x = random_vector(size_t(k.N) * k.C * HW, seed, -4.f, 4.f);
  const auto wv = random_vector(size_t(k.C), seed + 1, 0.2f, 2.f);
  std::mt19937_64 gen(seed + 2);
  std::vector<int64_t> t(static_cast<size_t>(P));
  for (auto& v : t) v = std::uniform_real_distribution<double>(0, 1)(gen) < k.ignore_fraction ? ignore : int64_t(gen() % k.C);
  const Reduction red = k.reduction == coc::CEReduction::None  ? Reduction::None
                        : k.reduction == coc::CEReduction::Sum ? Reduction::Sum
                                                               : Reduction::Mean;
  const auto gout = random_vector(k.reduction == coc::CEReduction::None ? size_t(P) : 1, seed + 3, 0.5f, 1.5f);

  Tensor tx = Tensor::from_vector(x, {k.N, k.C, k.H, k.W}).set_requires_grad();
  Tensor tt = Tensor::from_vector(t, {k.N, k.H, k.W});
  Tensor tw = k.weighted ? Tensor::from_vector(wv, {k.C}) : Tensor();
  Tensor loss = cross_entropy(tx, tt, tw, ignore, red);
  const bool all_ignored = k.ignore_fraction >= 1.0;
  // Every pixel ignored under mean: torch's loss is 0/0 = NaN and so is autograd's seed; the
  // gradient is still 0 everywhere (no pixel contributes).
  if (!(all_ignored && k.reduction == coc::CEReduction::Mean))
    loss.backward(k.reduction == coc::CEReduction::None ? Tensor::from_vector(gout, {k.N, k.H, k.W})
                                                        : Tensor::from_vector(gout, {}));

  DeviceBuffer<float> dx(x), dw(wv), dlse{size_t(P)}, dloss{size_t(P)}, dres(3), dg(gout), dgx(x.size());
  DeviceBuffer<int64_t> dt(t);
  DeviceBuffer<float> ws(coc::cross_entropy_workspace_floats(k.N, k.C, HW));
  const float* wptr = k.weighted ? dw.ptr() : nullptr;
  coc::cross_entropy_forward(dx.ptr(), dt.ptr(), wptr, ignore, k.N, k.C, HW, dlse.ptr(), dloss.ptr(), dres.ptr(), ws.ptr());
  const auto res = dres.download();
  // Online log-sum-exp in float vs. the CPU's max-then-sum with a double sum: a few ulp of lse.
  if (k.reduction == coc::CEReduction::None) {
    expect_close("loss per pixel", dloss.download(), loss.to_vector<float>(), 1e-5, 1e-5);
  } else {
    const float want = loss.item();
    const float got = k.reduction == coc::CEReduction::Sum ? res[0] : res[2];
    CAPTURE(got);
    CAPTURE(want);
    if (all_ignored && k.reduction == coc::CEReduction::Mean) {
      CHECK(std::isnan(got));
      CHECK(std::isnan(want));
    } else {
      CHECK(std::fabs(got - want) <= 1e-5 + 1e-5 * std::fabs(want));
    }
  }
  coc::cross_entropy_backward(dx.ptr(), dt.ptr(), wptr, ignore, k.N, k.C, HW, dlse.ptr(), dres.ptr(), dg.ptr(),
                              k.reduction, dgx.ptr());
  const auto gx = dgx.download();
  if (all_ignored) {
    CHECK(gx == std::vector<float>(gx.size(), 0.f));
  } else {
    expect_close("grad logits", gx, tx.grad().to_vector<float>(), 1e-6, 1e-5);
  }
}

TEST_CASE("cross_entropy C37 weighted mean with ignored pixels") { run_case({2, 37, 5, 7, true, 0.2, coc::CEReduction::Mean}, 21); }
TEST_CASE("cross_entropy C3 unweighted sum batch1") { run_case({1, 3, 9, 13, false, 0.1, coc::CEReduction::Sum}, 22); }
TEST_CASE("cross_entropy C37 weighted none per-pixel grad") { run_case({2, 37, 3, 5, true, 0.3, coc::CEReduction::None}, 23); }
// 323 pixels: two blocks of 256, the second partial; two partials in the final sum.
TEST_CASE("cross_entropy C3 weighted mean two blocks") { run_case({1, 3, 17, 19, true, 0.25, coc::CEReduction::Mean}, 24); }
TEST_CASE("cross_entropy all pixels ignored mean is NaN") { run_case({1, 3, 4, 5, true, 1.0, coc::CEReduction::Mean}, 25); }
TEST_CASE("cross_entropy all pixels ignored sum is 0") { run_case({2, 3, 4, 5, false, 1.0, coc::CEReduction::Sum}, 26); }

}  // namespace
