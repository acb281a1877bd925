// Resizing kernels: bilinear (align_corners true / false) and legacy nearest, forward and
// backward, with the semantics and the rounding of the CPU backend (kernels/upsample.h).
// Tested through CUDA-on-CPU against the CPU ops and their autograd: tests/cuda_kernels/test_upsample.cpp.
//
// Forward: one thread per output, its two taps per axis recomputed in double (a few FLOPs; the op
// moves 4 bytes per output plus the reused inputs, so it is memory-bound, and recomputing beats a
// table in memory). Backward: one thread per input pixel gathers from the outputs that read it
// (an interval per axis, found by binary search on the monotone source index; ~ (2 * out / in)^2
// of them when upsampling) in the CPU scatter's order, so no atomics, deterministic, and the
// CUDA-on-CPU result is bit-identical to the CPU backend's.
#include <cmath>

#include "kernels/cuda/bilinear_axis.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kUpsampleBlock = 256;

struct ResizeDims {
  long long planes;
  int H, W, Ho, Wo;
};

__global__ void __launch_bounds__(kUpsampleBlock)
upsample_bilinear2d_forward_kernel(const float* x, float* y, ResizeDims d, bool align_corners) {
  const long long per = static_cast<long long>(d.Ho) * d.Wo, total = d.planes * per;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per;
    const int r = static_cast<int>(t - plane * per), oy = r / d.Wo, ox = r - oy * d.Wo;
    const LinearTap ty = linear_tap(oy, d.H, d.Ho, align_corners), tx = linear_tap(ox, d.W, d.Wo, align_corners);
    y[t] = bilinear_sample(x + plane * d.H * d.W, d.W, ty, tx);
  }
}

__global__ void __launch_bounds__(kUpsampleBlock)
upsample_bilinear2d_backward_kernel(const float* gy, float* gx, ResizeDims d, bool align_corners) {
  const long long per_in = static_cast<long long>(d.H) * d.W, per_out = static_cast<long long>(d.Ho) * d.Wo;
  const long long total = d.planes * per_in;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per_in;
    const int r = static_cast<int>(t - plane * per_in), iy = r / d.W, ix = r - iy * d.W;
    gx[t] = bilinear_grad_gather(gy + plane * per_out, d.H, d.W, d.Ho, d.Wo, align_corners, iy, ix);
  }
}

// Legacy nearest (PyTorch nearest_idx): equal sizes and x2 exact, else floor(o * float(in / out)).
MOESEG_DEVICE int nearest_src(int o, int in, int out) {
  if (out == in) return o;
  if (out == 2 * in) return o >> 1;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const int s = static_cast<int>(floorf(static_cast<float>(o) * scale));
  return s < in - 1 ? s : in - 1;
}
// Outputs [*lo, *hi) reading input i (nearest_src is non-decreasing in o).
MOESEG_DEVICE void nearest_readers(int i, int in, int out, int* lo, int* hi) {
  int a = 0, b = out;
  while (a < b) {
    const int m = (a + b) / 2;
    if (nearest_src(m, in, out) >= i) b = m;
    else a = m + 1;
  }
  *lo = a;
  while (b < out && nearest_src(b, in, out) == i) ++b;
  *hi = b;
}

__global__ void __launch_bounds__(kUpsampleBlock) upsample_nearest2d_forward_kernel(const float* x, float* y, ResizeDims d) {
  const long long per = static_cast<long long>(d.Ho) * d.Wo, total = d.planes * per;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per;
    const int r = static_cast<int>(t - plane * per), oy = r / d.Wo, ox = r - oy * d.Wo;
    y[t] = x[plane * d.H * d.W + static_cast<long long>(nearest_src(oy, d.H, d.Ho)) * d.W + nearest_src(ox, d.W, d.Wo)];
  }
}

__global__ void __launch_bounds__(kUpsampleBlock)
upsample_nearest2d_backward_kernel(const float* gy, float* gx, ResizeDims d) {
  const long long per_in = static_cast<long long>(d.H) * d.W, per_out = static_cast<long long>(d.Ho) * d.Wo;
  const long long total = d.planes * per_in;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per_in;
    const int r = static_cast<int>(t - plane * per_in), iy = r / d.W, ix = r - iy * d.W;
    int oy0, oy1, ox0, ox1;
    nearest_readers(iy, d.H, d.Ho, &oy0, &oy1);
    nearest_readers(ix, d.W, d.Wo, &ox0, &ox1);
    const float* g = gy + plane * per_out;
    float acc = 0.f;   // row by row, column by column: the CPU scatter's order
    for (int oy = oy0; oy < oy1; ++oy)
      for (int ox = ox0; ox < ox1; ++ox) acc += g[static_cast<long long>(oy) * d.Wo + ox];
    gx[t] = acc;
  }
}

inline ResizeDims resize_dims(const char* op, int N, int C, int H, int W, int out_h, int out_w) {
  MOESEG_CHECK(N >= 1 && C >= 1 && H >= 1 && W >= 1 && out_h >= 1 && out_w >= 1, op, ": input [", N, ", ", C, ", ",
               H, ", ", W, "] and output size ", out_h, "x", out_w, " must be non-empty");
  return ResizeDims{static_cast<long long>(N) * C, H, W, out_h, out_w};
}

}  // namespace detail

void upsample_bilinear2d_forward(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w,
                                 bool align_corners, cudaStream_t stream) {
  using namespace detail;
  const ResizeDims d = resize_dims("upsample_bilinear2d_forward", N, C, H, W, out_h, out_w);
  MOESEG_LAUNCH(upsample_bilinear2d_forward_kernel, grid_for(d.planes * out_h * out_w, kUpsampleBlock),
                kUpsampleBlock, 0, stream)(x, y, d, align_corners);
  check_launch("upsample_bilinear2d_forward");
}

void upsample_bilinear2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                  int out_w, bool align_corners, cudaStream_t stream) {
  using namespace detail;
  const ResizeDims d = resize_dims("upsample_bilinear2d_backward", N, C, H, W, out_h, out_w);
  MOESEG_LAUNCH(upsample_bilinear2d_backward_kernel, grid_for(d.planes * H * W, kUpsampleBlock), kUpsampleBlock, 0,
                stream)(grad_y, grad_x, d, align_corners);
  check_launch("upsample_bilinear2d_backward");
}

void upsample_nearest2d_forward(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w,
                                cudaStream_t stream) {
  using namespace detail;
  const ResizeDims d = resize_dims("upsample_nearest2d_forward", N, C, H, W, out_h, out_w);
  MOESEG_LAUNCH(upsample_nearest2d_forward_kernel, grid_for(d.planes * out_h * out_w, kUpsampleBlock),
                kUpsampleBlock, 0, stream)(x, y, d);
  check_launch("upsample_nearest2d_forward");
}

void upsample_nearest2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                 int out_w, cudaStream_t stream) {
  using namespace detail;
  const ResizeDims d = resize_dims("upsample_nearest2d_backward", N, C, H, W, out_h, out_w);
  MOESEG_LAUNCH(upsample_nearest2d_backward_kernel, grid_for(d.planes * H * W, kUpsampleBlock), kUpsampleBlock, 0,
                stream)(grad_y, grad_x, d);
  check_launch("upsample_nearest2d_backward");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
