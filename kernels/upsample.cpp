// upsample_bilinear2d and upsample_nearest2d (F.interpolate semantics, see upsample.h).
// Source indices and weights are computed once per output row and per output column (they are
// separable), then every N*C plane is processed by one thread. The backward scatters with the
// same indices/weights plane by plane: sequential within a plane, planes in parallel, so it is
// deterministic without atomics. Tested by tests/ops/test_upsample.cpp.
#include "kernels/upsample.h"

#include "kernels/plane_loops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_ops.h"

namespace moeseg {

namespace {


void check_args(const Tensor& x, int64_t out_h, int64_t out_w, const char* op) {
  check_defined(x, op, "input");
  MOESEG_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op, ": input ", x.str(),
               " must be float32 or float64");
  MOESEG_CHECK(x.dim() == 4, op, ": input must be 4-D [N, C, H, W], got ", x.str());
  MOESEG_CHECK(x.numel() > 0, op, ": empty input ", x.str());
  MOESEG_CHECK(out_h > 0 && out_w > 0, op, ": output size ", out_h, "x", out_w, " must be positive (input ",
               x.str(), ")");
}

// One axis of bilinear interpolation: out[i] = l0[i] * in[i0[i]] + l1[i] * in[i0[i] + off[i]].
struct LinearAxis {
  std::vector<int64_t> i0, off;
  std::vector<double> l0, l1;
};

// PyTorch's area_pixel_compute_scale / area_pixel_compute_source_index (scales not given), in
// double: the fixtures are float64 torch, and a float32 run only differs in the rounding of the
// weights, which bilinear's continuity keeps within tolerance.
LinearAxis linear_axis(int64_t in, int64_t out, bool align_corners) {
  LinearAxis a;
  a.i0.resize(out); a.off.resize(out); a.l0.resize(out); a.l1.resize(out);
  double scale;
  if (align_corners) scale = out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  else scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t i = 0; i < out; ++i) {
    double src = align_corners ? scale * static_cast<double>(i) : scale * (static_cast<double>(i) + 0.5) - 0.5;
    if (!align_corners && src < 0) src = 0;   // the clamp: no negative source coordinates
    const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
    const double l1 = std::min(std::max(src - static_cast<double>(i0), 0.0), 1.0);
    a.i0[i] = i0;
    a.off[i] = i0 < in - 1 ? 1 : 0;
    a.l1[i] = l1;
    a.l0[i] = 1.0 - l1;
  }
  return a;
}

// Legacy 'nearest' (PyTorch nearest_idx): exact copies for equal sizes and x2, otherwise
// floor(dst * scale) with scale = in / out computed in float, as PyTorch does (a double scale
// would pick a different source pixel where dst * scale lands on an integer).
std::vector<int64_t> nearest_axis(int64_t in, int64_t out) {
  std::vector<int64_t> idx(out);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t i = 0; i < out; ++i) {
    if (out == in) idx[i] = i;
    else if (out == 2 * in) idx[i] = i >> 1;
    else idx[i] = std::min(static_cast<int64_t>(std::floor(static_cast<float>(i) * scale)), in - 1);
  }
  return idx;
}

struct UpsampleBilinear2dBackward final : autograd::Node {
  Shape in_sizes;
  bool align_corners = false;
  std::vector<Tensor> backward(const Tensor& grad_out) override {
    const int64_t ho = grad_out.size(2), wo = grad_out.size(3);
    const LinearAxis ay = linear_axis(in_sizes[2], ho, align_corners), ax = linear_axis(in_sizes[3], wo, align_corners);
    return {scatter_planes(grad_out, in_sizes, "upsample_bilinear2d", ho * wo, [&](int64_t, const auto* gr, auto* d, const PlaneDims& pd) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(gr)>>;
      for (int64_t oy = 0; oy < pd.ho; ++oy) {
        T* r0 = d + ay.i0[oy] * pd.w;
        T* r1 = r0 + ay.off[oy] * pd.w;
        const T wy0 = static_cast<T>(ay.l0[oy]), wy1 = static_cast<T>(ay.l1[oy]);
        for (int64_t ox = 0; ox < pd.wo; ++ox) {
          const T v = gr[oy * pd.wo + ox];
          const int64_t c0 = ax.i0[ox], c1 = c0 + ax.off[ox];
          const T wx0 = static_cast<T>(ax.l0[ox]), wx1 = static_cast<T>(ax.l1[ox]);
          r0[c0] += wy0 * wx0 * v;
          r0[c1] += wy0 * wx1 * v;
          r1[c0] += wy1 * wx0 * v;
          r1[c1] += wy1 * wx1 * v;
        }
      }
    })};
  }
  std::string name() const override { return "UpsampleBilinear2dBackward"; }
};

struct UpsampleNearest2dBackward final : autograd::Node {
  Shape in_sizes;
  std::vector<Tensor> backward(const Tensor& grad_out) override {
    const int64_t ho = grad_out.size(2), wo = grad_out.size(3);
    const std::vector<int64_t> iy = nearest_axis(in_sizes[2], ho), ix = nearest_axis(in_sizes[3], wo);
    return {scatter_planes(grad_out, in_sizes, "upsample_nearest2d", ho * wo, [&](int64_t, const auto* gr, auto* d, const PlaneDims& pd) {
      for (int64_t oy = 0; oy < pd.ho; ++oy) {
        auto* r = d + iy[oy] * pd.w;
        for (int64_t ox = 0; ox < pd.wo; ++ox) r[ix[ox]] += gr[oy * pd.wo + ox];
      }
    })};
  }
  std::string name() const override { return "UpsampleNearest2dBackward"; }
};

}  // namespace

Tensor upsample_bilinear2d(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  check_args(x, out_h, out_w, "upsample_bilinear2d");
  if (on_cuda(x)) {
    if (x.dtype() == DType::Float32) return gpu::upsample_bilinear2d(x, out_h, out_w, align_corners);
    note_cpu_fallback("upsample_bilinear2d", "float64");
    return upsample_bilinear2d(cpu_copy(x), out_h, out_w, align_corners).to(x.device());
  }
  const int64_t h = x.size(2), w = x.size(3);
  const LinearAxis ay = linear_axis(h, out_h, align_corners), ax = linear_axis(w, out_w, align_corners);
  Tensor y = map_planes(x, out_h, out_w, "upsample_bilinear2d", out_h * out_w, [&](int64_t, const auto* xr, auto* yr, const PlaneDims&) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(xr)>>;
    for (int64_t oy = 0; oy < out_h; ++oy) {
      const T* r0 = xr + ay.i0[oy] * w;
      const T* r1 = r0 + ay.off[oy] * w;
      const T wy0 = static_cast<T>(ay.l0[oy]), wy1 = static_cast<T>(ay.l1[oy]);
      for (int64_t ox = 0; ox < out_w; ++ox) {
        const int64_t c0 = ax.i0[ox], c1 = c0 + ax.off[ox];
        const T wx0 = static_cast<T>(ax.l0[ox]), wx1 = static_cast<T>(ax.l1[ox]);
        yr[oy * out_w + ox] = wy0 * (wx0 * r0[c0] + wx1 * r0[c1]) + wy1 * (wx0 * r1[c0] + wx1 * r1[c1]);
      }
    }
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<UpsampleBilinear2dBackward>();
    node->in_sizes = x.sizes();
    node->align_corners = align_corners;
    autograd::connect(node, {&x}, y);
  }
  return y;
}

Tensor upsample_nearest2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_args(x, out_h, out_w, "upsample_nearest2d");
  if (on_cuda(x)) {
    if (x.dtype() == DType::Float32) return gpu::upsample_nearest2d(x, out_h, out_w);
    note_cpu_fallback("upsample_nearest2d", "float64");
    return upsample_nearest2d(cpu_copy(x), out_h, out_w).to(x.device());
  }
  const int64_t h = x.size(2), w = x.size(3);
  const std::vector<int64_t> iy = nearest_axis(h, out_h), ix = nearest_axis(w, out_w);
  Tensor y = map_planes(x, out_h, out_w, "upsample_nearest2d", out_h * out_w, [&](int64_t, const auto* xr, auto* yr, const PlaneDims&) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(xr)>>;
    for (int64_t oy = 0; oy < out_h; ++oy) {
      const T* r = xr + iy[oy] * w;
      for (int64_t ox = 0; ox < out_w; ++ox) yr[oy * out_w + ox] = r[ix[ox]];
    }
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<UpsampleNearest2dBackward>();
    node->in_sizes = x.sizes();
    autograd::connect(node, {&x}, y);
  }
  return y;
}

}  // namespace moeseg
