// The shared skeleton of the per-plane resampling ops (max / average / adaptive-average pooling,
// bilinear / nearest upsampling) on NCHW tensors, forward and backward:
//  - map_planes: y = empty([N, C, out_h, out_w]); for each of the N*C planes body(p, xr, yr, dims)
//    fills the plane yr [ho*wo] from the input plane xr [h*w];
//  - scatter_planes: dx = zeros(in_sizes); body(p, gr, d, dims) adds the plane's output gradient
//    gr [ho*wo] into its input gradient d [h*w].
// One thread owns a plane, so the scatter needs no atomics and adds in a fixed order: results are
// identical for any thread count.
#pragma once
#include "core/tensor.h"

namespace moeseg {

struct PlaneDims {
  int64_t planes, h, w, ho, wo;
};

namespace plane_loops_detail {
constexpr int64_t kParallelGrain = 1 << 14;   // elements below which one thread is faster
}

// work_per_plane (both): the inner work of one plane, compared with a grain to decide whether
// threads pay.
template <typename Body>
Tensor map_planes(const Tensor& x, int64_t out_h, int64_t out_w, const char* op, int64_t work_per_plane, Body&& body) {
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  const PlaneDims dims{x.size(0) * x.size(1), x.size(2), x.size(3), out_h, out_w};
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = xc.data<T>();
    T* yp = y.data<T>();
#pragma omp parallel for schedule(static) if (dims.planes * work_per_plane > plane_loops_detail::kParallelGrain)
    for (int64_t p = 0; p < dims.planes; ++p) body(p, xp + p * dims.h * dims.w, yp + p * dims.ho * dims.wo, dims);
  });
  return y;
}

template <typename Body>
Tensor scatter_planes(const Tensor& grad_out, const Shape& in_sizes, const char* op, int64_t work_per_plane,
                      Body&& body) {
  Tensor g = grad_out.contiguous();
  Tensor dx = Tensor::zeros(in_sizes, g.dtype(), g.device());
  const PlaneDims dims{in_sizes[0] * in_sizes[1], in_sizes[2], in_sizes[3], g.size(2), g.size(3)};
  dispatch_float(g.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* gp = g.data<T>();
    T* dp = dx.data<T>();
#pragma omp parallel for schedule(static) if (dims.planes * work_per_plane > plane_loops_detail::kParallelGrain)
    for (int64_t p = 0; p < dims.planes; ++p) body(p, gp + p * dims.ho * dims.wo, dp + p * dims.h * dims.w, dims);
  });
  return dx;
}

}  // namespace moeseg
