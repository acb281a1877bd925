// Cross-entropy on logits fused with log-softmax over the class dim (dim 1), forward and backward
// w.r.t. the logits, with PyTorch F.cross_entropy semantics (see cross_entropy.h).
// Logits are viewed as [N, C, P] (P = H*W, or 1 for [N, C]) without permuting: a task handles
// one n and a block of up to kLanes pixels, walking c outermost so accesses stay unit-stride.
// Memory: only the per-pixel log-sum-exp (N*P values) is saved for backward, not the C-times
// larger softmax; backward recomputes p = exp(x - lse).
// Determinism: the mean/sum loss is reduced from per-task partial sums (double) combined in task
// order, so the result is bit-identical for any thread count. Tested by tests/ops/test_cross_entropy.cpp.
#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "core/autograd.h"
#include "core/named_enum.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_kernels.h"

namespace moeseg {

namespace {

constexpr int64_t kLanes = 64;
constexpr int64_t kParallelWork = 1 << 14;

const NamedValue<Reduction> kReductionNames[] = {
    {Reduction::Mean, "mean"}, {Reduction::Sum, "sum"}, {Reduction::None, "none"}};

struct Geometry {
  int64_t N = 1, C = 1, P = 1;
  int64_t blocks() const { return (P + kLanes - 1) / kLanes; }
  int64_t tasks() const { return N * blocks(); }
};

template <typename F>
void parallel_tasks(const Geometry& g, F&& task) {
  const int64_t tasks = g.tasks(), blocks = g.blocks();
#pragma omp parallel for if (tasks > 1 && g.N * g.C * g.P > kParallelWork) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / blocks, b = t % blocks;
    task(t, n, b * kLanes, std::min(g.P, (b + 1) * kLanes));
  }
}

// Forward over all pixels: writes lse (per pixel), the per-pixel loss when `loss` is non-null,
// and per-task partial sums of weighted loss and weight.
template <typename T>
void ce_forward(const T* x, const int64_t* target, const T* weight, int64_t ignore, const Geometry& g, T* lse_out,
                T* loss, std::vector<double>& part_loss, std::vector<double>& part_w) {
  const int64_t C = g.C, P = g.P;
  parallel_tasks(g, [&](int64_t task, int64_t n, int64_t p0, int64_t p1) {
    const T* xn = x + n * C * P;
    const int64_t L = p1 - p0;
    T m[kLanes];
    double s[kLanes];
    for (int64_t l = 0; l < L; ++l) { m[l] = -std::numeric_limits<T>::infinity(); s[l] = 0; }
    for (int64_t c = 0; c < C; ++c) {
      const T* xc = xn + c * P + p0;
      for (int64_t l = 0; l < L; ++l) m[l] = std::max(m[l], xc[l]);
    }
    for (int64_t c = 0; c < C; ++c) {
      const T* xc = xn + c * P + p0;
      for (int64_t l = 0; l < L; ++l) s[l] += std::exp(xc[l] - m[l]);   // exp in T, sum in double
    }
    double lsum = 0, wsum = 0;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t pix = n * P + p0 + l;
      const double lse = static_cast<double>(m[l]) + std::log(s[l]);
      lse_out[pix] = static_cast<T>(lse);
      const int64_t t = target[pix];
      double li = 0;
      if (t != ignore) {
        const double w = weight ? static_cast<double>(weight[t]) : 1.0;
        li = w * (lse - static_cast<double>(xn[t * P + p0 + l]));
        lsum += li;
        wsum += w;
      }
      if (loss) loss[pix] = static_cast<T>(li);
    }
    part_loss[task] = lsum;
    part_w[task] = wsum;
  });
}

// dx[n,c,p] = coef(n,p) * (exp(x - lse) - [c == t]); coef = upstream * w[t] (/ total weight for
// mean), zero for ignored pixels. With a zero total weight and a non-ignored target torch
// produces nan (0/0) for that pixel, and so does this.
template <typename T>
void ce_backward(const T* x, const int64_t* target, const T* weight, const T* lse, const T* gout, bool per_pixel,
                 double scale, int64_t ignore, const Geometry& g, T* dx) {
  const int64_t C = g.C, P = g.P;
  parallel_tasks(g, [&](int64_t, int64_t n, int64_t p0, int64_t p1) {
    const int64_t L = p1 - p0;
    double coef[kLanes];
    for (int64_t l = 0; l < L; ++l) {
      const int64_t pix = n * P + p0 + l;
      const int64_t t = target[pix];
      if (t == ignore) { coef[l] = 0; continue; }
      const double w = weight ? static_cast<double>(weight[t]) : 1.0;
      coef[l] = (per_pixel ? static_cast<double>(gout[pix]) : static_cast<double>(gout[0])) * w * scale;
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t k = (n * C + c) * P + p0;
      for (int64_t l = 0; l < L; ++l) {
        const int64_t pix = n * P + p0 + l;
        if (coef[l] == 0) { dx[k + l] = 0; continue; }
        const double p = std::exp(x[k + l] - lse[pix]);
        dx[k + l] = static_cast<T>(coef[l] * (p - (target[pix] == c ? 1.0 : 0.0)));
      }
    }
  });
}

struct CrossEntropyBackward final : autograd::Node {
  autograd::SavedTensor logits, target, weight, lse;   // logits contiguous; lse [N*P]
  Geometry geo;
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;
  double total_weight = 0;
  std::vector<Tensor> backward(const Tensor& grad) override {
    Tensor x = logits.get("cross_entropy"), t = target.get("cross_entropy"), l = lse.get("cross_entropy");
    Tensor w = weight.defined() ? weight.get("cross_entropy") : Tensor();
    Tensor gc = grad.contiguous();
    Tensor dx = Tensor::empty(x.sizes(), x.dtype(), x.device());
    if (dx.numel() == 0) return {dx};
    // 0/0 -> nan for mean with zero total weight, exactly as torch.
    const double scale = reduction == Reduction::Mean ? 1.0 / total_weight : 1.0;
    dispatch_float(x.dtype(), "cross_entropy", [&](auto tag) {
      using T = typename decltype(tag)::type;
      ce_backward<T>(x.data<T>(), t.data<int64_t>(), w.defined() ? w.data<T>() : nullptr, l.data<T>(), gc.data<T>(),
                     reduction == Reduction::None, scale, ignore_index, geo, dx.data<T>());
    });
    return {dx};
  }
  void release() override { logits.reset(); target.reset(); weight.reset(); lse.reset(); }
  std::string name() const override { return "CrossEntropyBackward"; }
};

std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(idx);
}

// ---- CUDA: the fused kernels of kernels/cuda/cross_entropy.cu (float32) --------------------

struct CrossEntropyCudaBackward final : autograd::Node {
  autograd::SavedTensor logits, target, weight, lse, result;   // result: {loss sum, weight sum, mean}
  Geometry geo;
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;
  std::vector<Tensor> backward(const Tensor& grad) override {
    Tensor x = logits.get("cross_entropy"), t = target.get("cross_entropy"), l = lse.get("cross_entropy");
    Tensor r = result.get("cross_entropy");
    Tensor w = weight.defined() ? weight.get("cross_entropy") : Tensor();
    Tensor gc = grad.contiguous();
    Tensor dx = Tensor::empty(x.sizes(), x.dtype(), x.device());
    if (dx.numel() == 0) return {dx};
    const int red = reduction == Reduction::None ? 0 : reduction == Reduction::Sum ? 1 : 2;
    gpu_kernels().cross_entropy_backward(x.data<float>(), t.data<int64_t>(), w.defined() ? w.data<float>() : nullptr,
                                         ignore_index, static_cast<int>(geo.N), static_cast<int>(geo.C), geo.P,
                                         l.data<float>(), r.data<float>(), gc.data<float>(), red, dx.data<float>());
    return {dx};
  }
  void release() override { logits.reset(); target.reset(); weight.reset(); lse.reset(); result.reset(); }
  std::string name() const override { return "CrossEntropyBackward"; }
};

Tensor cross_entropy_cuda(const Tensor& logits, const Tensor& x, const Tensor& t, const Tensor& w,
                          const Shape& tshape, const Geometry& geo, Reduction red, int64_t ignore_index) {
  const GpuKernels& k = gpu_kernels();
  const Device dev = logits.device();
  const int N = static_cast<int>(geo.N), C = static_cast<int>(geo.C);
  Tensor lse = Tensor::empty({geo.N * geo.P}, DType::Float32, dev);
  Tensor loss = red == Reduction::None ? Tensor::empty(tshape, DType::Float32, dev) : Tensor();
  Tensor result = Tensor::zeros({3}, DType::Float32, dev);
  if (x.numel() > 0) {
    Tensor ws = gpu_workspace(k.cross_entropy_workspace_floats(N, C, geo.P), dev);
    k.cross_entropy_forward(x.data<float>(), t.data<int64_t>(), w.defined() ? w.data<float>() : nullptr,
                            ignore_index, N, C, geo.P, lse.data<float>(), loss.defined() ? loss.data<float>() : nullptr,
                            result.data<float>(), ws.data<float>());
  } else if (red == Reduction::Mean) {
    result.slice(0, 2, 3).fill_(std::numeric_limits<double>::quiet_NaN());   // 0/0, as torch
  }
  Tensor out = red == Reduction::None ? loss : result.slice(0, red == Reduction::Sum ? 0 : 2, red == Reduction::Sum ? 1 : 3)
                                                   .reshape({}).contiguous();
  if (autograd::needs_grad({&logits})) {
    auto n = std::make_shared<CrossEntropyCudaBackward>();
    n->logits = autograd::SavedTensor(x);
    n->target = autograd::SavedTensor(t);
    if (w.defined()) n->weight = autograd::SavedTensor(w);
    n->lse = autograd::SavedTensor(lse);
    n->result = autograd::SavedTensor(result);
    n->geo = geo;
    n->reduction = red;
    n->ignore_index = ignore_index;
    autograd::connect(n, {&logits}, out);
  }
  return out;
}

}  // namespace

Reduction parse_reduction(const std::string& name, const std::string& where) {
  return parse_named(kReductionNames, name, where);
}
std::string to_string(Reduction r) { return name_of(kReductionNames, r); }

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& class_weights, int64_t ignore_index,
                     Reduction reduction) {
  const char* op = "cross_entropy";
  check_defined(logits, op, "logits");
  check_defined(target, op, "target");
  check_same_device(logits, target, op);
  MOESEG_CHECK(is_floating(logits.dtype()), "cross_entropy: logits must be float32 or float64, got ", logits.str());
  MOESEG_CHECK(logits.dim() >= 2, "cross_entropy: logits must be [N, C] or [N, C, H, W], got ", logits.str());
  MOESEG_CHECK(target.dtype() == DType::Int64, "cross_entropy: target must be int64 class indices, got ",
               target.str());
  const Reduction red = reduction;
  // Expected target shape: logits' shape without the class dim.
  Shape tshape = logits.sizes();
  tshape.erase(tshape.begin() + 1);
  MOESEG_CHECK(target.sizes() == tshape, "cross_entropy: target ", target.str(), " does not match logits ",
               logits.str(), " (expected target shape ", shape_str(tshape), ")");
  Geometry geo;
  geo.N = logits.size(0);
  geo.C = logits.size(1);
  for (int64_t d = 2; d < logits.dim(); ++d) geo.P *= logits.size(d);
  Tensor w;
  if (class_weights.defined()) {
    check_same_device(logits, class_weights, op);
    MOESEG_CHECK(class_weights.dim() == 1 && class_weights.size(0) == geo.C, "cross_entropy: class weights ",
                 class_weights.str(), " must be [C] = [", geo.C, "] for logits ", logits.str());
    MOESEG_CHECK(is_floating(class_weights.dtype()), "cross_entropy: class weights must be floating, got ",
                 class_weights.str());
    w = class_weights.detach().to(logits.dtype()).contiguous();
  }
  if (on_cuda(logits) && logits.dtype() != DType::Float32) {
    note_cpu_fallback("cross_entropy", "float64");
    return cross_entropy(cpu_copy(logits), cpu_copy(target), cpu_copy(class_weights), ignore_index, reduction)
        .to(logits.device());
  }
  Tensor x = logits.detach().contiguous();
  Tensor t = target.detach().contiguous();
  // Validate targets serially before the parallel pass (no throwing inside OpenMP regions). On a
  // CUDA device this reads a host copy of the targets: a clear error is worth the small copy.
  {
    const Tensor th = on_cuda(t) ? t.to(Device{}) : t;
    const int64_t* tp = th.data<int64_t>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      const int64_t v = tp[i];
      if (v != ignore_index && (v < 0 || v >= geo.C))
        MOESEG_FAIL("cross_entropy: target value ", v, " at position ", index_str(i, t.sizes()),
                    " is out of range for ", geo.C, " classes (ignore_index ", ignore_index, ")");
    }
  }
  if (on_cuda(logits)) return cross_entropy_cuda(logits, x, t, w, tshape, geo, red, ignore_index);
  const DType dt = logits.dtype();
  Tensor lse = Tensor::empty({geo.N * geo.P}, dt, logits.device());
  Tensor loss = red == Reduction::None ? Tensor::empty(tshape, dt, logits.device()) : Tensor();
  std::vector<double> part_loss(geo.tasks(), 0.0), part_w(geo.tasks(), 0.0);
  if (x.numel() > 0) {
    dispatch_float(dt, op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      ce_forward<T>(x.data<T>(), t.data<int64_t>(), w.defined() ? w.data<T>() : nullptr, ignore_index, geo,
                    lse.data<T>(), loss.defined() ? loss.data<T>() : nullptr, part_loss, part_w);
    });
  }
  double total_loss = 0, total_weight = 0;
  for (size_t i = 0; i < part_loss.size(); ++i) {   // fixed order: deterministic
    total_loss += part_loss[i];
    total_weight += part_w[i];
  }
  Tensor out = loss;
  if (red != Reduction::None) {
    // mean with no (weighted) targets is 0/0 = nan, as in torch.
    const double v = red == Reduction::Sum ? total_loss : total_loss / total_weight;
    out = Tensor::full(Shape{}, v, dt, logits.device());
  }
  if (autograd::needs_grad({&logits})) {
    auto n = std::make_shared<CrossEntropyBackward>();
    n->logits = autograd::SavedTensor(x);
    n->target = autograd::SavedTensor(t);
    if (w.defined()) n->weight = autograd::SavedTensor(w);
    n->lse = autograd::SavedTensor(lse);
    n->geo = geo;
    n->reduction = red;
    n->ignore_index = ignore_index;
    n->total_weight = total_weight;
    autograd::connect(n, {&logits}, out);
  }
  return out;
}

}  // namespace moeseg
