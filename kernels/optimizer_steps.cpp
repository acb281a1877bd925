// The fused SGD and Adam(W) updates (see optimizer_steps.h for the rules and their precision):
// a CPU loop per dtype here, one launch of kernels/cuda/elementwise.cu on a CUDA device.
#include "kernels/optimizer_steps.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_kernels.h"

namespace moeseg {

namespace {

constexpr int64_t kParallelMin = 1 << 15;

float* f32_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStep& s) {
  const bool use_momentum = momentum_buffer.defined();
  if (on_cuda(param)) {
    if (param.dtype() != DType::Float32) MOESEG_FAIL("SGD.step: CUDA parameters must be float32, got ", param.str());
    gpu_kernels().sgd_step(param.data<float>(), grad.data<float>(), f32_or_null(momentum_buffer), param.numel(), s.lr,
                           s.momentum, s.dampening, s.weight_decay, s.nesterov, s.first);
    return;
  }
  dispatch_float(param.dtype(), "SGD.step", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* buf = use_momentum ? momentum_buffer.template data<T>() : nullptr;
    const T wd = static_cast<T>(s.weight_decay), mom = static_cast<T>(s.momentum);
    const T one_minus_damp = static_cast<T>(1.0 - s.dampening), neg_lr = static_cast<T>(-s.lr);
    const bool has_wd = s.weight_decay != 0.0, nesterov = s.nesterov, first = s.first;
    const int64_t n = param.numel();
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      T d = has_wd ? std::fma(wd, p[i], g[i]) : g[i];
      if (buf) {
        buf[i] = first ? d : std::fma(one_minus_damp, d, buf[i] * mom);
        d = nesterov ? std::fma(mom, buf[i], d) : buf[i];
      }
      p[i] = std::fma(neg_lr, d, p[i]);
    }
  });
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamStep& s) {
  const char* name = s.decoupled ? "AdamW" : "Adam";
  if (on_cuda(param)) {
    if (param.dtype() != DType::Float32) MOESEG_FAIL(name, ".step: CUDA parameters must be float32, got ", param.str());
    gpu_kernels().adam_step(param.data<float>(), grad.data<float>(), exp_avg.data<float>(), exp_avg_sq.data<float>(),
                            f32_or_null(max_exp_avg_sq), param.numel(), s.step, s.lr, s.beta1, s.beta2, s.eps,
                            s.weight_decay, s.decoupled);
    return;
  }
  // Python-side scalars, in double as torch forms them.
  const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.step));
  const double step_size = s.lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  const double decay = 1.0 - s.lr * s.weight_decay;
  dispatch_float(param.dtype(), "Adam.step", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = exp_avg.template data<T>();
    T* v = exp_avg_sq.template data<T>();
    T* vmax = max_exp_avg_sq.defined() ? max_exp_avg_sq.template data<T>() : nullptr;
    const bool has_wd = s.weight_decay != 0.0, decoupled = s.decoupled;
    const T wd = static_cast<T>(s.weight_decay), decay_t = static_cast<T>(decay);
    const T w1 = static_cast<T>(1.0 - s.beta1), b2 = static_cast<T>(s.beta2);
    const T one_minus_b2 = static_cast<T>(1.0 - s.beta2);
    const T bc2s = static_cast<T>(bc2_sqrt), eps = static_cast<T>(s.eps), neg_step = static_cast<T>(-step_size);
    // ATen's lerp: weight < 0.5 ? start + w * (end - start) : end - (end - start) * (1 - w), as FMAs.
    const bool lerp_low = std::abs(static_cast<double>(w1)) < 0.5;
    const int64_t n = param.numel();
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      T gi = g[i];
      if (has_wd) {
        if (decoupled) p[i] = p[i] * decay_t;
        else gi = std::fma(wd, p[i], gi);
      }
      const T diff = gi - m[i];
      m[i] = lerp_low ? std::fma(w1, diff, m[i]) : std::fma(static_cast<T>(w1 - T(1)), diff, gi);
      v[i] = std::fma(one_minus_b2 * gi, gi, v[i] * b2);
      T vv = v[i];
      if (vmax) vv = vmax[i] = std::max(vmax[i], v[i]);
      const T denom = std::sqrt(vv) / bc2s + eps;
      p[i] = p[i] + neg_step * m[i] / denom;
    }
  });
}

}  // namespace moeseg
