// The kernel lab's FRRU problems (see lab_problems.h): the shapes of the two fused FRRU pieces of
// FRRN-A (spec/reference-systems.md §1.3: z = 32 channels at the input resolution, the FRRU stages
// at factors 2/4/8/16), seeded inputs and the CPU backend's answer (kernels/frru.h ops). Only the
// pooling argmax, which no CPU op returns, is computed here directly.
#include <algorithm>
#include <cmath>
#include <random>

#include "bench/kernel_lab/lab_problems.h"
#include "core/tensor.h"
#include "kernels/frru.h"

namespace moeseg::lab {
namespace {

std::vector<float> uniform(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

std::vector<float> abs_of(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

}  // namespace

ErrorStats compare_exact(const std::vector<int64_t>& got, const std::vector<int64_t>& want) {
  ErrorStats e;
  e.count = want.size();
  if (got.size() != want.size()) {
    e.bad = want.size() + 1;
    return e;
  }
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i]) {
      ++e.bad;
      e.max_abs = std::max(e.max_abs, std::fabs(double(got[i]) - double(want[i])));
    }
  return e;
}

double upadd_rtol(const FrruProblem& p) {
  // The Cy-term dot product of the 1x1 conv in float (in another order than the CPU's), then a
  // convex interpolation and one add: ~eps * sqrt(Cy) of sum |terms|, as the conv's tolerance.
  return 1e-5 + 5e-7 * std::sqrt(double(p.Cy));
}

std::vector<FrruProblem> frru_pool_problems(bool small) {
  if (small)   // CUDA-on-CPU: Cz = 32 as FRRN, odd sizes that no factor divides, h = 1 once.
    return {
        {"f2 y5 z32 17x23 batch2", 2, 5, 32, 17, 23, 2},
        {"f4 y12 z32 29x35", 1, 12, 32, 29, 35, 4},
        {"f8 y7 z32 37x50 batch2", 2, 7, 32, 37, 50, 8},
        {"f16 y37 z32 45x61", 1, 37, 32, 45, 61, 16},
        {"f16 y3 z32 14x33 (h=1)", 1, 3, 32, 14, 33, 16},
    };
  // FRRN-A at 240x320, batch 2: z 32x240x320; the y entering an FRRU of each stage (the rows of
  // the roofline table in kernels/cuda/frru.cu).
  return {
      {"f2 y48 (1st of stage) z32 240x320", 2, 48, 32, 240, 320, 2},
      {"f2 y96 z32 240x320", 2, 96, 32, 240, 320, 2},
      {"f4 y192 z32 240x320", 2, 192, 32, 240, 320, 4},
      {"f8 y384 z32 240x320", 2, 384, 32, 240, 320, 8},
      {"f16 y384 z32 240x320", 2, 384, 32, 240, 320, 16},
  };
}

std::vector<FrruProblem> frru_upadd_problems(bool small) {
  if (small)   // Cy not a multiple of the production's 32-channel tiles (70 takes three); z kept
               // small: each z element is a CUDA-on-CPU thread in two v1 kernels and one v2 kernel.
    return {
        {"f2 y37 z32 17x23 batch2", 2, 37, 32, 17, 23, 2},
        {"f4 y70 z32 29x35", 1, 70, 32, 29, 35, 4},
        {"f8 y5 z32 29x43 batch2", 2, 5, 32, 29, 43, 8},
        {"f16 y33 z32 35x50", 1, 33, 32, 35, 50, 16},
        {"f16 y3 z32 14x33 (h=1)", 1, 3, 32, 14, 33, 16},
    };
  return {
      {"f2 y96 z32 240x320", 2, 96, 32, 240, 320, 2},
      {"f4 y192 z32 240x320", 2, 192, 32, 240, 320, 4},
      {"f8 y384 z32 240x320", 2, 384, 32, 240, 320, 8},
      {"f16 y384 z32 240x320", 2, 384, 32, 240, 320, 16},
  };
}

FrruPoolData make_frru_pool_data(const FrruProblem& p, uint64_t seed) {
  FrruPoolData d;
  const int h = p.h(), w = p.w();
  d.y = uniform(size_t(p.ys()), seed, -1.f, 1.f);
  // z on a grid of 1/8: windows hold equal maxima, so the first-maximum rule of the argmax is tested.
  d.z = uniform(size_t(p.full()), seed + 1, -1.f, 1.f);
  for (auto& v : d.z) v = std::round(v * 8.f) / 8.f;
  d.out_ref = frru_pool_concat(Tensor::from_vector(d.y, {p.N, p.Cy, h, w}),
                               Tensor::from_vector(d.z, {p.N, p.Cz, p.H, p.W}), p.f)
                  .to_vector<float>();
  d.idx_ref.resize(size_t(p.low()));
  for (int64_t plane = 0; plane < int64_t(p.N) * p.Cz; ++plane)
    for (int oh = 0; oh < h; ++oh)
      for (int ow = 0; ow < w; ++ow) {
        const float* zp = d.z.data() + plane * p.H * p.W;
        int64_t arg = -1;
        for (int ih = std::max(oh * p.f - 1, 0); ih < std::min(oh * p.f + 2, p.H); ++ih)
          for (int iw = std::max(ow * p.f - 1, 0); iw < std::min(ow * p.f + 2, p.W); ++iw)
            if (arg < 0 || zp[int64_t(ih) * p.W + iw] > zp[arg]) arg = int64_t(ih) * p.W + iw;
        d.idx_ref[size_t((plane * h + oh) * w + ow)] = arg;
      }
  return d;
}

FrruUpData make_frru_upadd_data(const FrruProblem& p, uint64_t seed) {
  FrruUpData d;
  const int h = p.h(), w = p.w();
  const float ws = 1.f / std::sqrt(float(p.Cy));
  d.y = uniform(size_t(p.ys()), seed, -1.f, 1.f);
  d.z = uniform(size_t(p.full()), seed + 1, -1.f, 1.f);
  d.w = uniform(size_t(p.Cz) * p.Cy, seed + 2, -ws, ws);
  d.b = uniform(size_t(p.Cz), seed + 3, -0.5f, 0.5f);
  auto run = [&](const std::vector<float>& y, const std::vector<float>& z, const std::vector<float>& wt,
                 const std::vector<float>& b) {
    return frru_conv1x1_upsample_add(Tensor::from_vector(y, {p.N, p.Cy, h, w}),
                                     Tensor::from_vector(z, {p.N, p.Cz, p.H, p.W}),
                                     Tensor::from_vector(wt, {p.Cz, p.Cy, 1, 1}), Tensor::from_vector(b, {p.Cz}))
        .to_vector<float>();
  };
  d.out_ref = run(d.y, d.z, d.w, d.b);
  d.scale = run(abs_of(d.y), abs_of(d.z), abs_of(d.w), abs_of(d.b));
  return d;
}

}  // namespace moeseg::lab
