// Softmax and log-softmax over any dim, forward and backward, float32/float64 on the CPU.
// The input is viewed as [outer, C, inner] (C = the softmax dim) without any permute copy: for
// the last dim (inner == 1) each row is contiguous; for a middle dim (e.g. the class/expert dim of
// NCHW gates, inner = H*W) a block of up to kLanes neighbouring inner positions is processed at
// once, walking c in the outer loop so every memory access is unit-stride across the block.
// Work is split into (outer x inner-block) tasks that OpenMP runs in parallel; each output element
// is written by exactly one task, so there are no races and results do not depend on threads.
// Tested by tests/ops/test_softmax.cpp (gradcheck + PyTorch fixtures).
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "kernels/device_fallback.h"

namespace moeseg {

namespace {

constexpr int64_t kLanes = 64;               // inner positions per task (stack buffers below)
constexpr int64_t kParallelWork = 1 << 14;   // elements below which threads cost more than they save

struct Geometry {
  int64_t outer = 1, C = 1, inner = 1;
};

Geometry geometry(const Shape& s, int64_t d) {
  Geometry g;
  for (int64_t i = 0; i < d; ++i) g.outer *= s[i];
  g.C = s[d];
  for (size_t i = d + 1; i < s.size(); ++i) g.inner *= s[i];
  return g;
}

// Calls task(o, i0, i1) for every (outer row, block of inner positions), in parallel.
template <typename F>
void for_each_task(const Geometry& g, F&& task) {
  const int64_t blocks = g.inner == 1 ? 1 : (g.inner + kLanes - 1) / kLanes;
  const int64_t tasks = g.outer * blocks;
#pragma omp parallel for if (tasks > 1 && tasks * g.C * std::min(g.inner, kLanes) > kParallelWork) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / blocks, b = t % blocks;
    const int64_t i0 = b * kLanes, i1 = std::min(g.inner, i0 + kLanes);
    task(o, i0, i1);
  }
}

// Forward: y = softmax(x) or log_softmax(x) along C. The max is subtracted before exp so nothing
// overflows; exp runs in T (expf for float32: ~1 ulp, and much cheaper than a double exp), and the
// sum of exps (each <= 1) is accumulated in double so it does not lose digits over many classes.
template <typename T, bool LOG>
void softmax_forward(const T* x, T* y, const Geometry& g) {
  const int64_t C = g.C, inner = g.inner;
  for_each_task(g, [&](int64_t o, int64_t i0, int64_t i1) {
    const T* xo = x + o * C * inner;
    T* yo = y + o * C * inner;
    if (inner == 1) {   // contiguous row
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t c = 0; c < C; ++c) m = std::max(m, xo[c]);
      if (std::isinf(m) && m < 0) m = 0;   // row of -inf: exp gives 0 / log gives -inf, as torch (nan)
      double s = 0;
      if constexpr (LOG) {
        for (int64_t c = 0; c < C; ++c) s += std::exp(xo[c] - m);
        const T shift = static_cast<T>(static_cast<double>(m) + std::log(s));
        for (int64_t c = 0; c < C; ++c) yo[c] = xo[c] - shift;
      } else {
        // exp is evaluated once: stored into y, then scaled by 1/sum.
        for (int64_t c = 0; c < C; ++c) {
          const T e = std::exp(xo[c] - m);
          yo[c] = e;
          s += e;
        }
        const T inv = static_cast<T>(1.0 / s);
        for (int64_t c = 0; c < C; ++c) yo[c] *= inv;
      }
      return;
    }
    const int64_t L = i1 - i0;
    T m[kLanes];
    double s[kLanes];
    for (int64_t l = 0; l < L; ++l) { m[l] = -std::numeric_limits<T>::infinity(); s[l] = 0; }
    for (int64_t c = 0; c < C; ++c) {
      const T* xc = xo + c * inner + i0;
      for (int64_t l = 0; l < L; ++l) m[l] = std::max(m[l], xc[l]);
    }
    for (int64_t l = 0; l < L; ++l) if (std::isinf(m[l]) && m[l] < 0) m[l] = 0;
    if constexpr (LOG) {
      for (int64_t c = 0; c < C; ++c) {
        const T* xc = xo + c * inner + i0;
        for (int64_t l = 0; l < L; ++l) s[l] += std::exp(xc[l] - m[l]);
      }
      T shift[kLanes];
      for (int64_t l = 0; l < L; ++l) shift[l] = static_cast<T>(static_cast<double>(m[l]) + std::log(s[l]));
      for (int64_t c = 0; c < C; ++c) {
        const T* xc = xo + c * inner + i0;
        T* yc = yo + c * inner + i0;
        for (int64_t l = 0; l < L; ++l) yc[l] = xc[l] - shift[l];
      }
    } else {
      for (int64_t c = 0; c < C; ++c) {
        const T* xc = xo + c * inner + i0;
        T* yc = yo + c * inner + i0;
        for (int64_t l = 0; l < L; ++l) {
          const T e = std::exp(xc[l] - m[l]);
          yc[l] = e;
          s[l] += e;
        }
      }
      T inv[kLanes];
      for (int64_t l = 0; l < L; ++l) inv[l] = static_cast<T>(1.0 / s[l]);
      for (int64_t c = 0; c < C; ++c) {
        T* yc = yo + c * inner + i0;
        for (int64_t l = 0; l < L; ++l) yc[l] *= inv[l];
      }
    }
  });
}

// Backward from the saved output y:
//   softmax:     dx = y * (g - sum_c g*y)
//   log_softmax: dx = g - exp(y) * sum_c g
// The per-position sums are accumulated in double.
template <typename T, bool LOG>
void softmax_backward(const T* gy, const T* y, T* gx, const Geometry& g) {
  const int64_t C = g.C, inner = g.inner;
  for_each_task(g, [&](int64_t o, int64_t i0, int64_t i1) {
    const int64_t base = o * C * inner;
    const int64_t L = i1 - i0;
    double acc[kLanes];
    for (int64_t l = 0; l < L; ++l) acc[l] = 0;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t k = base + c * inner + i0;
      for (int64_t l = 0; l < L; ++l) {
        if constexpr (LOG) acc[l] += gy[k + l];
        else acc[l] += static_cast<double>(gy[k + l]) * y[k + l];
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t k = base + c * inner + i0;
      for (int64_t l = 0; l < L; ++l) {
        if constexpr (LOG) gx[k + l] = static_cast<T>(gy[k + l] - std::exp(y[k + l]) * acc[l]);
        else gx[k + l] = static_cast<T>(y[k + l] * (gy[k + l] - acc[l]));
      }
    }
  });
}

struct SoftmaxBackward final : autograd::Node {
  autograd::SavedTensor y;   // the output (contiguous), enough for both derivatives
  int64_t dim = 0;
  bool log = false;
  std::vector<Tensor> backward(const Tensor& grad) override {
    const char* op = log ? "log_softmax" : "softmax";
    Tensor yv = y.get(op);
    Tensor gc = grad.contiguous();
    Tensor gx = Tensor::empty(yv.sizes(), yv.dtype(), yv.device());
    if (gx.numel() == 0) return {gx.view(grad.sizes())};
    const Geometry geo = geometry(yv.sizes(), dim);
    dispatch_float(yv.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (log) softmax_backward<T, true>(gc.data<T>(), yv.data<T>(), gx.data<T>(), geo);
      else softmax_backward<T, false>(gc.data<T>(), yv.data<T>(), gx.data<T>(), geo);
    });
    return {gx.view(grad.sizes())};   // undoes the [1] of a 0-d input
  }
  void release() override { y.reset(); }
  std::string name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
};

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_defined(x, op, "input");
  if (on_cuda(x)) {
    note_cpu_fallback(op);
    return softmax_impl(cpu_copy(x), dim, log).to(x.device());
  }
  MOESEG_CHECK(is_floating(x.dtype()), op, ": input must be float32 or float64, got ", x.str());
  // A 0-d tensor behaves as one element along dim 0 / -1 (torch accepts dim in [-1, 0]).
  const bool scalar = x.dim() == 0;
  Tensor xv = scalar ? x.detach().reshape({1}) : x.detach();
  const int64_t d = wrap_dim(dim, xv.dim(), op);
  Tensor xc = xv.contiguous();
  Tensor out = Tensor::empty(xc.sizes(), x.dtype(), x.device());
  if (out.numel() > 0) {
    const Geometry geo = geometry(xc.sizes(), d);
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (log) softmax_forward<T, true>(xc.data<T>(), out.data<T>(), geo);
      else softmax_forward<T, false>(xc.data<T>(), out.data<T>(), geo);
    });
  }
  if (scalar) out = out.view({});
  if (autograd::needs_grad({&x})) {
    auto n = std::make_shared<SoftmaxBackward>();
    // Saved as [.., C, ..] with the same dim index; a 0-d output is saved as [1].
    n->y = autograd::SavedTensor(scalar ? out.detach().view({1}) : out.detach());
    n->dim = d;
    n->log = log;
    autograd::connect(n, {&x}, out);
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace moeseg
