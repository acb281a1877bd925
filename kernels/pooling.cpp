// max_pool2d, avg_pool2d and adaptive_avg_pool2d on NCHW tensors (semantics in pooling.h).
// Every op works plane by plane (one N*C plane = one independent problem), so OpenMP splits
// planes and the backward scatters of overlapping windows stay sequential inside a plane:
// deterministic, no atomics. Tested by tests/ops/test_pooling.cpp.
#include "kernels/pooling.h"

#include "kernels/plane_loops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_ops.h"

namespace moeseg {

namespace {


void check_input(const Tensor& x, const char* op) {
  check_defined(x, op, "input");
  MOESEG_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op, ": input ", x.str(),
               " must be float32 or float64");
  MOESEG_CHECK(x.dim() == 4, op, ": input must be 4-D [N, C, H, W], got ", x.str());
  MOESEG_CHECK(x.numel() > 0, op, ": empty input ", x.str());
}

// Output size of a floor-mode window op; checks the options the way PyTorch does.
int64_t pooled_size(const Tensor& x, int64_t in, int64_t kernel, int64_t stride, int64_t padding, const char* op) {
  MOESEG_CHECK(kernel > 0 && stride > 0 && padding >= 0, op, ": kernel ", kernel, " and stride ", stride,
               " must be positive and padding ", padding, " non-negative (input ", x.str(), ")");
  MOESEG_CHECK(padding <= kernel / 2, op, ": padding ", padding, " must be at most half the kernel size ", kernel,
               " (input ", x.str(), ")");
  const int64_t out = (in + 2 * padding - kernel) / stride + 1;
  MOESEG_CHECK(in + 2 * padding >= kernel && out > 0, op, ": input ", x.str(), " is too small for kernel ", kernel,
               " with padding ", padding);
  return out;
}

// ---- max pooling ------------------------------------------------------------------------------

struct MaxPool2dBackward final : autograd::Node {
  Shape in_sizes;
  autograd::SavedTensor indices;   // int64 [N, C, Ho, Wo]: flat h*W + w of the argmax in its plane
  std::vector<Tensor> backward(const Tensor& grad_out) override {
    Tensor idx = indices.get("max_pool2d");
    const int64_t* ip = idx.data<int64_t>();
    const int64_t hw_out = grad_out.size(2) * grad_out.size(3);
    // Overlapping windows can route several outputs to one input: accumulated in output order.
    return {scatter_planes(grad_out, in_sizes, "max_pool2d", hw_out, [&](int64_t p, const auto* gr, auto* d, const PlaneDims&) {
      for (int64_t o = 0; o < hw_out; ++o) d[ip[p * hw_out + o]] += gr[o];
    })};
  }
  void release() override { indices.reset(); }
  std::string name() const override { return "MaxPool2dBackward"; }
};

// ---- average pooling --------------------------------------------------------------------------

// Calls f(oh, ow, h0, h1, w0, w1, divisor) for every output of a count_include_pad=True window:
// the window clipped to the input is [h0, h1) x [w0, w1); the divisor counts padded cells too
// but not cells beyond the padded border (PyTorch's pool_size).
template <typename F>
void for_each_avg_window(int64_t h, int64_t w, int64_t ho, int64_t wo, int64_t k, int64_t s, int64_t pad, F&& f) {
  for (int64_t oh = 0; oh < ho; ++oh) {
    int64_t hs = oh * s - pad, he = std::min(hs + k, h + pad);
    const int64_t ph = he - hs;
    hs = std::max<int64_t>(hs, 0);
    he = std::min(he, h);
    for (int64_t ow = 0; ow < wo; ++ow) {
      int64_t ws = ow * s - pad, we = std::min(ws + k, w + pad);
      const int64_t pw = we - ws;
      ws = std::max<int64_t>(ws, 0);
      we = std::min(we, w);
      f(oh, ow, hs, he, ws, we, ph * pw);
    }
  }
}

struct AvgPool2dBackward final : autograd::Node {
  Shape in_sizes;
  int64_t kernel = 1, stride = 1, padding = 0;
  std::vector<Tensor> backward(const Tensor& grad_out) override {
    const int64_t work = grad_out.size(2) * grad_out.size(3) * kernel * kernel;
    return {scatter_planes(grad_out, in_sizes, "avg_pool2d", work, [&](int64_t, const auto* gr, auto* d, const PlaneDims& pd) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(gr)>>;
      for_each_avg_window(pd.h, pd.w, pd.ho, pd.wo, kernel, stride, padding,
                          [&](int64_t oh, int64_t ow, int64_t h0, int64_t h1, int64_t w0, int64_t w1, int64_t div) {
                            const T v = gr[oh * pd.wo + ow] / static_cast<T>(div);
                            for (int64_t i = h0; i < h1; ++i)
                              for (int64_t j = w0; j < w1; ++j) d[i * pd.w + j] += v;
                          });
    })};
  }
  std::string name() const override { return "AvgPool2dBackward"; }
};

// ---- adaptive average pooling -----------------------------------------------------------------

// PyTorch's bins: [floor(i*in/out), ceil((i+1)*in/out)).
inline int64_t bin_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t bin_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

struct AdaptiveAvgPool2dBackward final : autograd::Node {
  Shape in_sizes;
  std::vector<Tensor> backward(const Tensor& grad_out) override {
    const int64_t work = in_sizes[2] * in_sizes[3];
    return {scatter_planes(grad_out, in_sizes, "adaptive_avg_pool2d", work, [&](int64_t, const auto* gr, auto* d, const PlaneDims& pd) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(gr)>>;
      for (int64_t oh = 0; oh < pd.ho; ++oh) {
        const int64_t h0 = bin_start(oh, pd.h, pd.ho), h1 = bin_end(oh, pd.h, pd.ho);
        for (int64_t ow = 0; ow < pd.wo; ++ow) {
          const int64_t w0 = bin_start(ow, pd.w, pd.wo), w1 = bin_end(ow, pd.w, pd.wo);
          const T v = gr[oh * pd.wo + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
          for (int64_t i = h0; i < h1; ++i)
            for (int64_t j = w0; j < w1; ++j) d[i * pd.w + j] += v;
        }
      }
    })};
  }
  std::string name() const override { return "AdaptiveAvgPool2dBackward"; }
};

}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  check_input(x, "max_pool2d");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ho = pooled_size(x, h, kernel, stride, padding, "max_pool2d");
  const int64_t wo = pooled_size(x, w, kernel, stride, padding, "max_pool2d");
  if (on_cuda(x)) {
    if (x.dtype() == DType::Float32) return gpu::max_pool2d(x, kernel, stride, padding, ho, wo);
    note_cpu_fallback("max_pool2d", "float64");
    return max_pool2d(cpu_copy(x), kernel, stride, padding).to(x.device());
  }
  // The argmax indices are only needed for backward: without a graph they are not written
  // (they would be a third of the memory traffic of a 3x3 / stride-2 pool).
  const bool keep_indices = autograd::needs_grad({&x});
  Tensor idx = keep_indices ? Tensor::empty({n, c, ho, wo}, DType::Int64, x.device()) : Tensor();
  int64_t* ip = keep_indices ? idx.data<int64_t>() : nullptr;
  Tensor y = map_planes(x, ho, wo, "max_pool2d", ho * wo * kernel * kernel, [&](int64_t p, const auto* xr, auto* yr, const PlaneDims&) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(xr)>>;
    for (int64_t oh = 0; oh < ho; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * stride - padding, 0);
      const int64_t h1 = std::min(oh * stride - padding + kernel, h);
      for (int64_t ow = 0; ow < wo; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * stride - padding, 0);
        const int64_t w1 = std::min(ow * stride - padding + kernel, w);
        // Padding counts as -inf; the first maximum in row-major order wins ties (strict >),
        // and a NaN wins and propagates, as in PyTorch.
        int64_t best_i = h0 * w + w0;
        T best = -std::numeric_limits<T>::infinity();
        for (int64_t i = h0; i < h1; ++i)
          for (int64_t j = w0; j < w1; ++j) {
            const T v = xr[i * w + j];
            if (v > best || std::isnan(v)) {
              best = v;
              best_i = i * w + j;
              if (std::isnan(v)) goto done;
            }
          }
      done:
        yr[oh * wo + ow] = best;
        if (ip) ip[p * ho * wo + oh * wo + ow] = best_i;
      }
    }
  });
  if (keep_indices) {
    auto node = std::make_shared<MaxPool2dBackward>();
    node->in_sizes = x.sizes();
    node->indices = autograd::SavedTensor(idx);
    autograd::connect(node, {&x}, y);
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  check_input(x, "avg_pool2d");
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t ho = pooled_size(x, h, kernel, stride, padding, "avg_pool2d");
  const int64_t wo = pooled_size(x, w, kernel, stride, padding, "avg_pool2d");
  if (on_cuda(x)) {
    if (x.dtype() == DType::Float32) return gpu::avg_pool2d(x, kernel, stride, padding, ho, wo);
    note_cpu_fallback("avg_pool2d", "float64");
    return avg_pool2d(cpu_copy(x), kernel, stride, padding).to(x.device());
  }
  Tensor y = map_planes(x, ho, wo, "avg_pool2d", ho * wo * kernel * kernel, [&](int64_t, const auto* xr, auto* yr, const PlaneDims&) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(xr)>>;
    for_each_avg_window(h, w, ho, wo, kernel, stride, padding,
                        [&](int64_t oh, int64_t ow, int64_t h0, int64_t h1, int64_t w0, int64_t w1, int64_t div) {
                          // Window sums in double: cheap here and keeps float32 within 1 ulp.
                          double s = 0;
                          for (int64_t i = h0; i < h1; ++i)
                            for (int64_t j = w0; j < w1; ++j) s += xr[i * w + j];
                          yr[oh * wo + ow] = static_cast<T>(s / static_cast<double>(div));
                        });
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<AvgPool2dBackward>();
    node->in_sizes = x.sizes();
    node->kernel = kernel;
    node->stride = stride;
    node->padding = padding;
    autograd::connect(node, {&x}, y);
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_input(x, "adaptive_avg_pool2d");
  MOESEG_CHECK(out_h > 0 && out_w > 0, "adaptive_avg_pool2d: output size ", out_h, "x", out_w,
               " must be positive (input ", x.str(), ")");
  if (on_cuda(x)) {
    if (x.dtype() == DType::Float32) return gpu::adaptive_avg_pool2d(x, out_h, out_w);
    note_cpu_fallback("adaptive_avg_pool2d", "float64");
    return adaptive_avg_pool2d(cpu_copy(x), out_h, out_w).to(x.device());
  }
  const int64_t h = x.size(2), w = x.size(3);
  Tensor y = map_planes(x, out_h, out_w, "adaptive_avg_pool2d", h * w, [&](int64_t, const auto* xr, auto* yr, const PlaneDims&) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(xr)>>;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const int64_t h0 = bin_start(oh, h, out_h), h1 = bin_end(oh, h, out_h);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t w0 = bin_start(ow, w, out_w), w1 = bin_end(ow, w, out_w);
        // Global pooling sums a whole plane: accumulate in double.
        double s = 0;
        for (int64_t i = h0; i < h1; ++i)
          for (int64_t j = w0; j < w1; ++j) s += xr[i * w + j];
        yr[oh * out_w + ow] = static_cast<T>(s / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
    }
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<AdaptiveAvgPool2dBackward>();
    node->in_sizes = x.sizes();
    autograd::connect(node, {&x}, y);
  }
  return y;
}

}  // namespace moeseg
