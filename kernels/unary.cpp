// Unary element-wise ops and their derivatives. One generic node saves the input or the output
// (whichever the derivative needs) and multiplies the incoming gradient by f'(x).
#include <cmath>
#include <functional>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/elementwise.h"
#include "kernels/gpu_kernels.h"

namespace moeseg {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;

// Applies f element-wise to a (made contiguous) into a new tensor of the same dtype.
template <typename F>
Tensor map_float(const Tensor& a, const char* op, F&& f) {
  check_defined(a, op, "input");
  if (on_cuda(a)) {
    note_cpu_fallback(op);
    return map_float(a.detach().to(Device{}), op, std::forward<F>(f)).to(a.device());
  }
  Tensor x = a.detach().contiguous();
  Tensor out = Tensor::empty(a.sizes(), a.dtype(), a.device());
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    const int64_t n = out.numel();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) op_[i] = static_cast<T>(f(xp[i]));
  });
  return out;
}

// Element-wise product of g with d(x, y) where d is the local derivative.
template <typename D>
Tensor grad_times(const Tensor& g, const Tensor& x, const Tensor& y, const char* op, D&& d) {
  if (on_cuda(g)) {
    note_cpu_fallback(op);
    auto host = [](const Tensor& t) { return t.defined() ? t.detach().to(Device{}) : t; };
    return grad_times(host(g), host(x), host(y), op, std::forward<D>(d)).to(g.device());
  }
  Tensor gc = g.contiguous();
  Tensor xc = x.defined() ? x.contiguous() : Tensor();
  Tensor yc = y.defined() ? y.contiguous() : Tensor();
  Tensor out = Tensor::empty(g.sizes(), g.dtype(), g.device());
  dispatch_float(g.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* gp = gc.data<T>();
    const T* xp = xc.defined() ? xc.data<T>() : nullptr;
    const T* yp = yc.defined() ? yc.data<T>() : nullptr;
    T* o = out.data<T>();
    const int64_t n = out.numel();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = gp[i] * static_cast<T>(d(xp ? xp[i] : T(0), yp ? yp[i] : T(0)));
  });
  return out;
}

struct UnaryBackward final : autograd::Node {
  std::string op;
  autograd::SavedTensor x, y;   // input and/or output, as the derivative needs
  std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)> grad_fn;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor xv = x.defined() ? x.get(op.c_str()) : Tensor();
    Tensor yv = y.defined() ? y.get(op.c_str()) : Tensor();
    return {grad_fn(g, xv, yv)};
  }
  void release() override { x.reset(); y.reset(); }
  std::string name() const override { return op + "Backward"; }
};

// Records a unary node; save_x / save_y choose which tensors the derivative reads.
template <typename G>
Tensor record_unary(const Tensor& a, Tensor out, const char* op, bool save_x, bool save_y, G&& g) {
  if (!autograd::needs_grad({&a})) return out;
  auto n = std::make_shared<UnaryBackward>();
  n->op = op;
  if (save_x) n->x = autograd::SavedTensor(a.detach());
  if (save_y) n->y = autograd::SavedTensor(out.detach());
  n->grad_fn = std::forward<G>(g);
  autograd::connect(n, {&a}, out);
  return out;
}

}  // namespace

// relu's backward as a select on the saved output (torch's threshold_backward): g where y > 0
// (or y is NaN), else 0 — a 0 even where g is inf or NaN, which a multiply by 0 would not give.
// Its own loop because it is hot in training (a ReLU follows every conv): the generic
// grad_times multiplies in double through optional operands and does not vectorise.
// On a CUDA device kernels/cuda/elementwise.cu's relu_backward (x > 0 read from y > 0).
Tensor relu_grad(const Tensor& g, const Tensor& y) {
  Tensor gc = g.contiguous(), yc = y.contiguous();
  Tensor out = Tensor::empty(g.sizes(), g.dtype(), g.device());
  if (on_cuda(g) && g.dtype() == DType::Float32) {
    gpu_kernels().relu_backward(gc.data<float>(), yc.data<float>(), out.data<float>(), gc.numel());
    return out;
  }
  if (on_cuda(g)) return grad_times(g, Tensor(), y, "relu", [](auto, auto yv) { return yv <= 0 ? 0.0 : 1.0; });
  dispatch_float(g.dtype(), "relu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* gp = gc.data<T>();
    const T* yp = yc.data<T>();
    T* o = out.data<T>();
    const int64_t n = out.numel();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = yp[i] <= T(0) ? T(0) : gp[i];
  });
  return out;
}

Tensor relu(const Tensor& a) {
  check_defined(a, "relu", "input");
  Tensor out;
  if (on_cuda(a) && a.dtype() == DType::Float32) {
    Tensor x = a.detach().contiguous();
    out = Tensor::empty(a.sizes(), a.dtype(), a.device());
    gpu_kernels().relu_forward(x.data<float>(), out.data<float>(), x.numel());
  } else {
    // Written as "<= 0 gives 0" so that NaN passes through (and gets gradient 1), as in torch.
    out = map_float(a, "relu", [](auto v) { return v <= 0 ? decltype(v)(0) : v; });
  }
  return record_unary(a, out, "relu", false, true,
                      [](const Tensor& g, const Tensor&, const Tensor& y) { return relu_grad(g, y); });
}

Tensor exp(const Tensor& a) {
  Tensor out = map_float(a, "exp", [](auto v) { return std::exp(v); });
  return record_unary(a, out, "exp", false, true, [](const Tensor& g, const Tensor&, const Tensor& y) {
    return grad_times(g, Tensor(), y, "exp", [](auto, auto yv) { return yv; });
  });
}

Tensor log(const Tensor& a) {
  Tensor out = map_float(a, "log", [](auto v) { return std::log(v); });
  return record_unary(a, out, "log", true, false, [](const Tensor& g, const Tensor& x, const Tensor&) {
    return grad_times(g, x, Tensor(), "log", [](auto xv, auto) { return 1 / xv; });
  });
}

Tensor tanh(const Tensor& a) {
  Tensor out = map_float(a, "tanh", [](auto v) { return std::tanh(v); });
  return record_unary(a, out, "tanh", false, true, [](const Tensor& g, const Tensor&, const Tensor& y) {
    return grad_times(g, Tensor(), y, "tanh", [](auto, auto yv) { return 1 - yv * yv; });
  });
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = map_float(a, "sigmoid", [](auto v) { return 1 / (1 + std::exp(-v)); });
  return record_unary(a, out, "sigmoid", false, true, [](const Tensor& g, const Tensor&, const Tensor& y) {
    return grad_times(g, Tensor(), y, "sigmoid", [](auto, auto yv) { return yv * (1 - yv); });
  });
}

Tensor sign(const Tensor& a) {
  Tensor out = map_float(a, "sign", [](auto v) { return (v > 0) - (v < 0); });
  return record_unary(a, out, "sign", false, false, [](const Tensor& g, const Tensor&, const Tensor&) {
    return Tensor::zeros(g.sizes(), g.dtype(), g.device());
  });
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  MOESEG_CHECK(lo <= hi, "clamp: min ", lo, " > max ", hi);
  Tensor out = map_float(a, "clamp", [lo, hi](auto v) {
    using T = decltype(v);
    return v < T(lo) ? T(lo) : (v > T(hi) ? T(hi) : v);
  });
  return record_unary(a, out, "clamp", true, false, [lo, hi](const Tensor& g, const Tensor& x, const Tensor&) {
    // Strictly inside only: at x == lo or x == hi the gradient is 0, as torch.clamp(x, lo, hi).
    return grad_times(g, x, Tensor(), "clamp", [lo, hi](auto xv, auto) { return (xv > lo && xv < hi) ? 1.0 : 0.0; });
  });
}

Tensor sqrt(const Tensor& a) {
  Tensor out = map_float(a, "sqrt", [](auto v) { return std::sqrt(v); });
  return record_unary(a, out, "sqrt", false, true, [](const Tensor& g, const Tensor&, const Tensor& y) {
    return grad_times(g, Tensor(), y, "sqrt", [](auto, auto yv) { return 0.5 / yv; });
  });
}

Tensor square(const Tensor& a) {
  Tensor out = map_float(a, "square", [](auto v) { return v * v; });
  return record_unary(a, out, "square", true, false, [](const Tensor& g, const Tensor& x, const Tensor&) {
    return grad_times(g, x, Tensor(), "square", [](auto xv, auto) { return 2 * xv; });
  });
}

// erfc keeps the lower tail accurate (Phi(-8) ~ 6e-16 instead of 1 - 1 = 0).
Tensor normal_cdf(const Tensor& a) {
  Tensor out = map_float(a, "normal_cdf", [](auto v) { return 0.5 * std::erfc(-static_cast<double>(v) * M_SQRT1_2); });
  return record_unary(a, out, "normal_cdf", true, false, [](const Tensor& g, const Tensor& x, const Tensor&) {
    return grad_times(g, x, Tensor(), "normal_cdf", [](auto xv, auto) {
      const double v = static_cast<double>(xv);
      return std::exp(-0.5 * v * v) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
    });
  });
}

Tensor scale(const Tensor& a, double s) {
  Tensor out = map_float(a, "scale", [s](auto v) { return v * decltype(v)(s); });
  return record_unary(a, out, "scale", false, false, [s](const Tensor& g, const Tensor&, const Tensor&) {
    return scale(g, s);
  });
}

Tensor neg(const Tensor& a) { return scale(a, -1.0); }

Tensor add_scalar(const Tensor& a, double s) {
  Tensor out = map_float(a, "add_scalar", [s](auto v) { return v + decltype(v)(s); });
  return record_unary(a, out, "add_scalar", false, false, [](const Tensor& g, const Tensor&, const Tensor&) {
    return g;
  });
}

}  // namespace moeseg
