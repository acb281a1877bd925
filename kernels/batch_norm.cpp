// batch_norm2d: BatchNorm2d forward/backward on NCHW tensors (semantics in batch_norm.h).
// One pass per channel over its N planes; channels are independent, so OpenMP splits them and
// no reduction crosses threads (deterministic for any thread count).
// Tested by tests/ops/test_batch_norm.cpp (finite differences, PyTorch fixtures incl. the
// running statistics after a training step).
#include "kernels/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_kernels.h"

namespace moeseg {

namespace {

// Per-channel sums are accumulated in double whatever T is: with N*H*W in the millions a float
// accumulator loses several digits of the mean and, worse, of the variance.
template <typename T>
void channel_stats(const T* x, int64_t n, int64_t c, int64_t hw, int64_t ch, double& mean, double& var) {
  const int64_t m = n * hw;
  double s = 0;
  for (int64_t b = 0; b < n; ++b) {
    const T* p = x + (b * c + ch) * hw;
    for (int64_t i = 0; i < hw; ++i) s += p[i];
  }
  mean = s / static_cast<double>(m);
  // Two-pass (centred) variance: E[x^2] - E[x]^2 cancels catastrophically for large means.
  double q = 0;
  for (int64_t b = 0; b < n; ++b) {
    const T* p = x + (b * c + ch) * hw;
    for (int64_t i = 0; i < hw; ++i) {
      const double d = p[i] - mean;
      q += d * d;
    }
  }
  var = q / static_cast<double>(m);
}

struct BatchNorm2dBackward final : autograd::Node {
  autograd::SavedTensor x, weight;   // weight undefined when affine is off
  std::vector<double> mean, invstd;  // the statistics used by the forward (batch or running)
  bool training = true;
  bool need_x = false, need_w = false, need_b = false;

  std::vector<Tensor> backward(const Tensor& grad_out) override {
    Tensor xv = x.get("batch_norm2d");
    Tensor wv = weight.defined() ? weight.get("batch_norm2d").contiguous() : Tensor();
    Tensor g = grad_out.contiguous();
    const int64_t n = xv.size(0), c = xv.size(1), hw = xv.size(2) * xv.size(3);
    const double m = static_cast<double>(n * hw);
    Tensor dx = need_x ? Tensor::empty(xv.sizes(), xv.dtype(), xv.device()) : Tensor();
    Tensor dw = need_w ? Tensor::empty({c}, xv.dtype(), xv.device()) : Tensor();
    Tensor db = need_b ? Tensor::empty({c}, xv.dtype(), xv.device()) : Tensor();
    dispatch_float(xv.dtype(), "batch_norm2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* xp = xv.data<T>();
      const T* gp = g.data<T>();
      const T* wp = wv.defined() ? wv.data<T>() : nullptr;
      T* dxp = dx.defined() ? dx.data<T>() : nullptr;
      T* dwp = dw.defined() ? dw.data<T>() : nullptr;
      T* dbp = db.defined() ? db.data<T>() : nullptr;
#pragma omp parallel for schedule(dynamic, 1) if (c > 1 && n * c * hw > (1 << 14))
      for (int64_t ch = 0; ch < c; ++ch) {
        const double mu = mean[ch], is = invstd[ch];
        // sum(g) and sum(g * xhat) over N, H, W, in double.
        double sg = 0, sgx = 0;
        for (int64_t b = 0; b < n; ++b) {
          const T* xr = xp + (b * c + ch) * hw;
          const T* gr = gp + (b * c + ch) * hw;
          for (int64_t i = 0; i < hw; ++i) {
            sg += gr[i];
            sgx += gr[i] * ((xr[i] - mu) * is);
          }
        }
        if (dbp) dbp[ch] = static_cast<T>(sg);
        if (dwp) dwp[ch] = static_cast<T>(sgx);
        if (!dxp) continue;
        const double w = wp ? static_cast<double>(wp[ch]) : 1.0;
        if (training) {
          // d/dx of w * (x - mean(x)) / sqrt(var(x) + eps): the batch statistics depend on x,
          // giving dx = w * invstd * (g - mean(g) - xhat * mean(g * xhat)).
          const double k = w * is, mg = sg / m, mgx = sgx / m;
          for (int64_t b = 0; b < n; ++b) {
            const T* xr = xp + (b * c + ch) * hw;
            const T* gr = gp + (b * c + ch) * hw;
            T* dr = dxp + (b * c + ch) * hw;
            for (int64_t i = 0; i < hw; ++i) {
              const double xhat = (xr[i] - mu) * is;
              dr[i] = static_cast<T>(k * (gr[i] - mg - xhat * mgx));
            }
          }
        } else {
          // Eval: running statistics are constants, the op is affine in x.
          const T k = static_cast<T>(w * is);
          for (int64_t b = 0; b < n; ++b) {
            const T* gr = gp + (b * c + ch) * hw;
            T* dr = dxp + (b * c + ch) * hw;
            for (int64_t i = 0; i < hw; ++i) dr[i] = k * gr[i];
          }
        }
      }
    });
    return {dx, dw, db};
  }
  void release() override {
    x.reset();
    weight.reset();
  }
  std::string name() const override { return "BatchNorm2dBackward"; }
};

void check_param(const Tensor& p, const Tensor& x, int64_t c, const char* what) {
  if (!p.defined()) return;
  check_same_device(x, p, "batch_norm2d");
  check_same_dtype(x, p, "batch_norm2d");
  MOESEG_CHECK(p.dim() == 1 && p.size(0) == c, "batch_norm2d: ", what, " ", p.str(), " must be [", c,
               "] for input ", x.str());
}

}  // namespace

namespace {

// ---- CUDA: kernels/cuda/batch_norm.cu (float32, contiguous running statistics) ---------------

struct BatchNorm2dCudaBackward final : autograd::Node {
  autograd::SavedTensor x, weight, save_mean, save_invstd;
  bool training = true, need_x = false, need_w = false, need_b = false;
  std::vector<Tensor> backward(const Tensor& grad_out) override {
    Tensor xv = x.get("batch_norm2d"), sm = save_mean.get("batch_norm2d"), si = save_invstd.get("batch_norm2d");
    Tensor wv = weight.defined() ? weight.get("batch_norm2d").contiguous() : Tensor();
    Tensor g = grad_out.contiguous();
    const int N = static_cast<int>(xv.size(0)), C = static_cast<int>(xv.size(1));
    const int64_t HW = xv.size(2) * xv.size(3);
    const Device d = xv.device();
    Tensor dx = need_x ? Tensor::empty(xv.sizes(), DType::Float32, d) : Tensor();
    Tensor dw = need_w ? Tensor::empty({C}, DType::Float32, d) : Tensor();
    Tensor db = need_b ? Tensor::empty({C}, DType::Float32, d) : Tensor();
    const GpuKernels& k = gpu_kernels();
    Tensor ws = gpu_workspace(k.batch_norm_workspace_floats(N, C, HW), d);
    auto p = [](const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
    k.batch_norm_backward(g.data<float>(), xv.data<float>(), p(wv), sm.data<float>(), si.data<float>(), training,
                          p(dx), p(dw), p(db), ws.data<float>(), N, C, HW);
    return {dx, dw, db};
  }
  void release() override { x.reset(); weight.reset(); save_mean.reset(); save_invstd.reset(); }
  std::string name() const override { return "BatchNorm2dBackward"; }
};

Tensor batch_norm2d_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                         const Tensor& running_var, bool training, double momentum, double eps) {
  const GpuKernels& k = gpu_kernels();
  const int N = static_cast<int>(x.size(0)), C = static_cast<int>(x.size(1));
  const int64_t HW = x.size(2) * x.size(3);
  const Device d = x.device();
  Tensor xc = x.detach().contiguous();
  Tensor wc = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty(x.sizes(), DType::Float32, d);
  Tensor sm = Tensor::empty({C}, DType::Float32, d), si = Tensor::empty({C}, DType::Float32, d);
  Tensor ws = gpu_workspace(k.batch_norm_workspace_floats(N, C, HW), d);
  auto p = [](const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
  if (training) {
    k.batch_norm_forward_training(xc.data<float>(), p(wc), p(bc), p(running_mean), p(running_var), y.data<float>(),
                                  sm.data<float>(), si.data<float>(), ws.data<float>(), N, C, HW, momentum, eps);
    if (running_mean.defined()) {
      running_mean.bump_version();
      running_var.bump_version();
    }
  } else {
    k.batch_norm_forward_eval(xc.data<float>(), p(wc), p(bc), running_mean.data<float>(), running_var.data<float>(),
                              y.data<float>(), sm.data<float>(), si.data<float>(), ws.data<float>(), N, C, HW, eps);
  }
  if (autograd::needs_grad({&x, &weight, &bias})) {
    auto n = std::make_shared<BatchNorm2dCudaBackward>();
    n->x = autograd::SavedTensor(xc);
    if (wc.defined()) n->weight = autograd::SavedTensor(wc);
    n->save_mean = autograd::SavedTensor(sm);
    n->save_invstd = autograd::SavedTensor(si);
    n->training = training;
    n->need_x = x.requires_grad();
    n->need_w = weight.defined() && weight.requires_grad();
    n->need_b = bias.defined() && bias.requires_grad();
    autograd::connect(n, {&x, &weight, &bias}, y);
  }
  return y;
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                    const Tensor& running_var, bool training, double momentum, double eps) {
  check_defined(x, "batch_norm2d", "input");
  MOESEG_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, "batch_norm2d: input ", x.str(),
               " must be float32 or float64");
  MOESEG_CHECK(x.dim() == 4, "batch_norm2d: input must be 4-D [N, C, H, W], got ", x.str());
  MOESEG_CHECK(x.numel() > 0, "batch_norm2d: empty input ", x.str());
  MOESEG_CHECK(eps > 0, "batch_norm2d: eps must be positive, got ", eps);
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  check_param(weight, x, c, "weight");
  check_param(bias, x, c, "bias");
  check_param(running_mean, x, c, "running_mean");
  check_param(running_var, x, c, "running_var");
  MOESEG_CHECK(running_mean.defined() == running_var.defined(), "batch_norm2d: running_mean and running_var must "
               "both be given or both be undefined (input ", x.str(), ")");
  MOESEG_CHECK(training || running_mean.defined(), "batch_norm2d: evaluation mode needs running_mean and "
               "running_var (input ", x.str(), ")");
  MOESEG_CHECK(!training || n * hw > 1, "batch_norm2d: training needs more than 1 value per channel, got input ",
               x.str());

  if (on_cuda(x)) {
    const bool stats_ok = !running_mean.defined() || (running_mean.is_contiguous() && running_var.is_contiguous());
    if (x.dtype() == DType::Float32 && stats_ok)
      return batch_norm2d_cuda(x, weight, bias, running_mean, running_var, training, momentum, eps);
    // The running statistics are buffers updated in place: run on host copies, copy them back.
    note_cpu_fallback("batch_norm2d", "float64 or strided running statistics");
    Tensor rm = running_mean.defined() ? running_mean.detach().to(Device{}) : Tensor();
    Tensor rv = running_var.defined() ? running_var.detach().to(Device{}) : Tensor();
    Tensor y = batch_norm2d(cpu_copy(x), cpu_copy(weight), cpu_copy(bias), rm, rv, training, momentum, eps)
                   .to(x.device());
    if (training && rm.defined()) {
      NoGradGuard ng;
      Tensor(running_mean).copy_(rm);   // a handle on the same buffer
      Tensor(running_var).copy_(rv);
    }
    return y;
  }

  Tensor xc = x.detach().contiguous();
  Tensor wc = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty(x.sizes(), x.dtype(), x.device());
  std::vector<double> mean(c), invstd(c);
  const double m = static_cast<double>(n * hw);

  dispatch_float(x.dtype(), "batch_norm2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = xc.data<T>();
    const T* wp = wc.defined() ? wc.data<T>() : nullptr;
    const T* bp = bc.defined() ? bc.data<T>() : nullptr;
    T* yp = y.data<T>();
    // Running statistics are 1-D and may be strided views (e.g. a slice of a packed buffer):
    // read and write them through their stride instead of a contiguous copy.
    T* rm = running_mean.defined() ? running_mean.data<T>() : nullptr;
    T* rv = running_var.defined() ? running_var.data<T>() : nullptr;
    const int64_t rms = rm ? running_mean.stride(0) : 0, rvs = rv ? running_var.stride(0) : 0;
#pragma omp parallel for schedule(dynamic, 1) if (c > 1 && n * c * hw > (1 << 14))
    for (int64_t ch = 0; ch < c; ++ch) {
      double mu, var;
      if (training) {
        channel_stats(xp, n, c, hw, ch, mu, var);
        if (rm) {
          // Unbiased variance for the running estimate (PyTorch); each channel is written by
          // exactly one thread.
          const double unbiased = var * m / (m - 1);
          rm[ch * rms] = static_cast<T>((1 - momentum) * rm[ch * rms] + momentum * mu);
          rv[ch * rvs] = static_cast<T>((1 - momentum) * rv[ch * rvs] + momentum * unbiased);
        }
      } else {
        mu = rm[ch * rms];
        var = rv[ch * rvs];
      }
      const double is = 1.0 / std::sqrt(var + eps);
      mean[ch] = mu;
      invstd[ch] = is;
      // y = x * scale + shift with scale = w * invstd, shift = b - mean * scale (in double).
      const double w = wp ? static_cast<double>(wp[ch]) : 1.0;
      const double b0 = bp ? static_cast<double>(bp[ch]) : 0.0;
      const double sc = w * is, sh = b0 - mu * sc;
      for (int64_t b = 0; b < n; ++b) {
        const T* xr = xp + (b * c + ch) * hw;
        T* yr = yp + (b * c + ch) * hw;
        for (int64_t i = 0; i < hw; ++i) yr[i] = static_cast<T>(xr[i] * sc + sh);
      }
    }
  });
  if (training && running_mean.defined()) {
    running_mean.bump_version();
    running_var.bump_version();
  }

  if (autograd::needs_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<BatchNorm2dBackward>();
    node->x = autograd::SavedTensor(xc);
    if (wc.defined()) node->weight = autograd::SavedTensor(wc);
    node->mean = std::move(mean);
    node->invstd = std::move(invstd);
    node->training = training;
    node->need_x = x.requires_grad();
    node->need_w = weight.defined() && weight.requires_grad();
    node->need_b = bias.defined() && bias.requires_grad();
    autograd::connect(node, {&x, &weight, &bias}, y);
  }
  return y;
}

}  // namespace moeseg
