// See lab_problems.h. The references are the CPU backend's ops (kernels/conv2d_cpu.h, softmax +
// mul + add, cross_entropy); only the per-pixel log-sum-exp, which no CPU op returns, is computed
// here directly (in double).
#include "bench/kernel_lab/lab_problems.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "core/tensor.h"
#include "kernels/conv2d_cpu.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/softmax.h"

namespace moeseg::lab {
namespace {

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

}  // namespace

void ErrorStats::merge(const ErrorStats& o) {
  max_abs = std::max(max_abs, o.max_abs);
  max_rel = std::max(max_rel, o.max_rel);
  bad += o.bad;
  count += o.count;
}

ErrorStats compare(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>* scale,
                   double atol, double rtol) {
  ErrorStats e;
  e.count = want.size();
  if (got.size() != want.size()) {
    e.bad = want.size() + 1;
    return e;
  }
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(g) && std::isnan(w)) continue;
    const double err = (std::isnan(g) || std::isnan(w)) ? INFINITY : std::fabs(g - w);
    const double s = scale ? (*scale)[i] : std::fabs(w);
    e.max_abs = std::max(e.max_abs, err);
    if (s > 0) e.max_rel = std::max(e.max_rel, err / s);
    if (!(err <= atol + rtol * s)) ++e.bad;
  }
  return e;
}

void print_check(const char* kernel, const std::string& problem, int version, const char* version_name,
                 const ErrorStats& e) {
  std::printf("  %-5s %-36s v%d %-22s max abs err %9.2e  max rel err %9.2e  %s\n", kernel, problem.c_str(), version,
              version_name, e.max_abs, e.max_rel, e.ok() ? "ok" : "FAILED");
  if (!e.ok()) std::printf("        %zu of %zu elements out of tolerance\n", e.bad, e.count);
  std::fflush(stdout);
}

// ---- conv ----------------------------------------------------------------------------------------
double ConvProblem::rtol() const {
  // Float dot products of K terms: error ~ eps * sqrt(K) of sum |terms| typically, on both sides.
  return 1e-5 + 5e-7 * std::sqrt(double(c_in) * k * k);
}

std::vector<ConvProblem> conv_problems(bool small) {
  if (small)   // CUDA-on-CPU (one OS thread per CUDA thread): channels / 8 or more, odd sizes.
    return {
        {"frrn-ru 6>6 30x40 (/8)", 2, 6, 30, 40, 6, 3, 1},
        {"frru 16>12 15x21 (/8)", 2, 16, 15, 21, 12, 3, 1},
        {"frru 52>37 15x20 (/8)", 1, 52, 15, 20, 37, 3, 1},
        {"aspp r6 64>8 11x13 (/32)", 2, 64, 11, 13, 8, 3, 6},
        {"aspp r12 64>8 11x13 (/32)", 2, 64, 11, 13, 8, 3, 12},
        {"aspp r18 64>8 11x13 (/32)", 1, 64, 11, 13, 8, 3, 18},
    };
  // FRRN-A at 240x320, batch 2 (the shapes of `moeseg bench conv`): the RU at full resolution and
  // each FRRU stage's first conv (pooling stream + the 32-channel residual stream concatenated);
  // DeepLabv3+'s ASPP at 1/16 of 512x512, 2048 -> 256, rates 6/12/18 (padding = rate).
  return {
      {"frrn-ru 48>48 240x320", 2, 48, 240, 320, 48, 3, 1},
      {"frru96 128>96 120x160", 2, 128, 120, 160, 96, 3, 1},
      {"frru192 224>192 60x80", 2, 224, 60, 80, 192, 3, 1},
      {"frru384 416>384 30x40", 2, 416, 30, 40, 384, 3, 1},
      {"frru384 416>384 15x20", 2, 416, 15, 20, 384, 3, 1},
      {"aspp r6 2048>256 32x32", 2, 2048, 32, 32, 256, 3, 6},
      {"aspp r12 2048>256 32x32", 2, 2048, 32, 32, 256, 3, 12},
      {"aspp r18 2048>256 32x32", 2, 2048, 32, 32, 256, 3, 18},
  };
}

ConvData make_conv_data(const ConvProblem& p, uint64_t seed) {
  ConvData d;
  const float wscale = 1.f / std::sqrt(float(p.c_in * p.k * p.k));
  d.x = random_floats(size_t(p.n) * p.c_in * p.h * p.w, seed, -1.f, 1.f);
  d.w = random_floats(size_t(p.c_out) * p.c_in * p.k * p.k, seed + 1, -wscale, wscale);
  const cpu::Conv2dGeometry g{p.n, p.c_in, p.h, p.w, p.c_out, p.k, p.k, 1, 1, p.pad(), p.pad(), p.dil, p.dil, 1};
  d.y_ref.resize(size_t(p.n) * p.c_out * g.h_out() * g.w_out());
  d.scale.resize(d.y_ref.size());
  cpu::conv2d_forward<float>(g, d.x.data(), d.w.data(), nullptr, false, d.y_ref.data());
  std::vector<float> ax(d.x), aw(d.w);
  for (auto& v : ax) v = std::fabs(v);
  for (auto& v : aw) v = std::fabs(v);
  cpu::conv2d_forward<float>(g, ax.data(), aw.data(), nullptr, false, d.scale.data());
  return d;
}

// ---- gate softmax + combine ----------------------------------------------------------------------
std::vector<GateProblem> gate_problems(bool small) {
  if (small)
    return {
        {"simple gate C5 E2 9x13", 2, 1, 5, 9, 13, 2},
        {"classwise C7 E3 8x12 (float4)", 1, 7, 7, 8, 12, 3},
        {"simple gate C3 E5 7x11", 2, 1, 3, 7, 11, 5},
    };
  // The MoE of two FRRN-A experts (A2D2: 38 classes) at 240x320 with the simple and the
  // class-wise gate, and of two DeepLabv3+ experts at 512x512.
  return {
      {"frrn-a moe simple C38 E2 240x320", 2, 1, 38, 240, 320, 2},
      {"frrn-a moe classwise C38 E2 240x320", 2, 38, 38, 240, 320, 2},
      {"deeplab moe classwise C38 E2 512x512", 2, 38, 38, 512, 512, 2},
  };
}

GateData make_gate_data(const GateProblem& p, uint64_t seed) {
  GateData d;
  d.z = random_floats(size_t(p.B) * p.G * p.E, seed, -2.f, 2.f);
  for (int e = 0; e < p.E; ++e) d.experts.push_back(random_floats(p.elements(), seed + 1 + e, -3.f, 3.f));
  // CPU backend: w = softmax(z, 2); out = sum_e w[:, :, e] * x_e (broadcast over classes / pixels).
  Tensor tw = softmax(Tensor::from_vector(d.z, {p.B, p.G, p.E}), 2);
  Tensor out;
  for (int e = 0; e < p.E; ++e) {
    Tensor term = mul(tw.select(2, e).reshape({p.B, p.G, 1, 1}), Tensor::from_vector(d.experts[e], {p.B, p.C, p.H, p.W}));
    out = e == 0 ? term : add(out, term);
  }
  d.out_ref = out.to_vector<float>();
  d.w_ref = tw.to_vector<float>();
  return d;
}

// ---- cross-entropy -------------------------------------------------------------------------------
std::vector<CeProblem> ce_problems(bool small) {
  if (small)
    return {
        {"C38 9x13 batch2", 2, 38, 9, 13, 0.1},
        {"C5 17x19 batch1 (2 blocks)", 1, 5, 17, 19, 0.25},
        {"C3 33x35 batch2 (many blocks)", 2, 3, 33, 35, 0.05},
    };
  return {
      {"frrn-a C38 240x320", 2, 38, 240, 320, 0.05},
      {"deeplab C38 512x512", 2, 38, 512, 512, 0.05},
  };
}

CeData make_ce_data(const CeProblem& p, uint64_t seed) {
  CeData d;
  const int64_t HW = int64_t(p.H) * p.W, P = p.pixels();
  d.logits = random_floats(size_t(P) * p.C, seed, -4.f, 4.f);
  d.class_weights = random_floats(size_t(p.C), seed + 1, 0.2f, 2.f);
  std::mt19937_64 gen(seed + 2);
  std::uniform_real_distribution<double> u(0, 1);
  d.target.resize(size_t(P));
  for (auto& t : d.target) t = u(gen) < p.ignore_fraction ? kCeIgnoreIndex : int64_t(gen() % p.C);

  const Tensor x = Tensor::from_vector(d.logits, {p.N, p.C, p.H, p.W});
  const Tensor t = Tensor::from_vector(d.target, {p.N, p.H, p.W});
  const Tensor w = Tensor::from_vector(d.class_weights, {p.C});
  d.loss_ref = cross_entropy(x, t, w, kCeIgnoreIndex, Reduction::None).to_vector<float>();
  d.sum_ref = static_cast<float>(cross_entropy(x, t, w, kCeIgnoreIndex, Reduction::Sum).item());
  d.mean_ref = static_cast<float>(cross_entropy(x, t, w, kCeIgnoreIndex, Reduction::Mean).item());
  double wsum = 0;
  d.lse_ref.resize(size_t(P));
  for (int64_t i = 0; i < P; ++i) {
    const int64_t n = i / HW, q = i % HW;
    double m = -INFINITY, s = 0;
    for (int c = 0; c < p.C; ++c) m = std::max(m, double(d.logits[size_t((n * p.C + c) * HW + q)]));
    for (int c = 0; c < p.C; ++c) s += std::exp(double(d.logits[size_t((n * p.C + c) * HW + q)]) - m);
    d.lse_ref[size_t(i)] = static_cast<float>(m + std::log(s));
    if (d.target[size_t(i)] != kCeIgnoreIndex) wsum += d.class_weights[size_t(d.target[size_t(i)])];
  }
  d.weight_sum_ref = static_cast<float>(wsum);
  return d;
}

}  // namespace moeseg::lab
