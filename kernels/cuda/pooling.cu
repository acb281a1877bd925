// 2-D pooling kernels (max with int64 argmax, average with count_include_pad=True, adaptive
// average), forward and backward, with the semantics of the CPU backend (kernels/pooling.h).
// Tested through CUDA-on-CPU against the CPU ops and their autograd: tests/cuda_kernels/test_pooling.cpp.
//
// One thread per output (forward) or per input pixel (backward), grid-stride over all planes.
// Backward is a gather, not a scatter: each input pixel walks the few outputs whose window covers
// it (ceil(k / s)^2 of them) and adds their contributions in output order, the order in which the
// CPU backend's sequential scatter adds them. So overlapping windows (k3 s2 p1, FRRN) need no
// atomics, every result is deterministic, and the CUDA-on-CPU run is bit-identical to the CPU.
// Window sums of the average pools are in double, as on the CPU (cheap: these ops are memory-bound,
// ~8 bytes moved per output at k = s).
#include "kernels/cuda/pool_window.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kPoolBlock = 256;

struct PoolDims {
  long long planes;
  int H, W, Ho, Wo;
};

__global__ void __launch_bounds__(kPoolBlock)
max_pool2d_forward_kernel(const float* x, float* y, int64_t* idx, PoolDims d, int k, int s, int p) {
  const long long per = static_cast<long long>(d.Ho) * d.Wo, total = d.planes * per;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per;
    const int r = static_cast<int>(t - plane * per), oh = r / d.Wo, ow = r - oh * d.Wo;
    long long arg;
    y[t] = max_pool_window(x + plane * d.H * d.W, d.H, d.W, oh, ow, k, s, p, &arg);
    if (idx) idx[t] = arg;
  }
}

__global__ void __launch_bounds__(kPoolBlock)
max_pool2d_backward_kernel(const float* gy, const int64_t* idx, float* gx, PoolDims d, int k, int s, int p) {
  const long long per_in = static_cast<long long>(d.H) * d.W, per_out = static_cast<long long>(d.Ho) * d.Wo;
  const long long total = d.planes * per_in;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per_in;
    const int r = static_cast<int>(t - plane * per_in), ih = r / d.W, iw = r - ih * d.W;
    gx[t] = max_pool_grad_gather(gy + plane * per_out, idx + plane * per_out, d.W, d.Ho, d.Wo, ih, iw, k, s, p);
  }
}

// count_include_pad divisor of output o along one axis: the window clipped to the padded border.
MOESEG_DEVICE int avg_extent(int o, int k, int s, int p, int in) {
  const int st = o * s - p, en = st + k < in + p ? st + k : in + p;
  return en - st;
}

__global__ void __launch_bounds__(kPoolBlock)
avg_pool2d_forward_kernel(const float* x, float* y, PoolDims d, int k, int s, int p) {
  const long long per = static_cast<long long>(d.Ho) * d.Wo, total = d.planes * per;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per;
    const int r = static_cast<int>(t - plane * per), oh = r / d.Wo, ow = r - oh * d.Wo;
    const float* xr = x + plane * d.H * d.W;
    const int hs = oh * s - p, ws = ow * s - p;
    const int h0 = hs > 0 ? hs : 0, w0 = ws > 0 ? ws : 0;
    const int h1 = hs + k < d.H ? hs + k : d.H, w1 = ws + k < d.W ? ws + k : d.W;
    double acc = 0;
    for (int i = h0; i < h1; ++i)
      for (int j = w0; j < w1; ++j) acc += xr[static_cast<long long>(i) * d.W + j];
    const int div = avg_extent(oh, k, s, p, d.H) * avg_extent(ow, k, s, p, d.W);
    y[t] = static_cast<float>(acc / static_cast<double>(div));
  }
}

__global__ void __launch_bounds__(kPoolBlock)
avg_pool2d_backward_kernel(const float* gy, float* gx, PoolDims d, int k, int s, int p) {
  const long long per_in = static_cast<long long>(d.H) * d.W, per_out = static_cast<long long>(d.Ho) * d.Wo;
  const long long total = d.planes * per_in;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per_in;
    const int r = static_cast<int>(t - plane * per_in), ih = r / d.W, iw = r - ih * d.W;
    const float* g = gy + plane * per_out;
    int oh0, oh1, ow0, ow1;
    covering_outputs(ih, k, s, p, d.Ho, &oh0, &oh1);
    covering_outputs(iw, k, s, p, d.Wo, &ow0, &ow1);
    float acc = 0.f;
    for (int oh = oh0; oh <= oh1; ++oh) {
      const int eh = avg_extent(oh, k, s, p, d.H);
      for (int ow = ow0; ow <= ow1; ++ow)
        acc += g[static_cast<long long>(oh) * d.Wo + ow] / static_cast<float>(eh * avg_extent(ow, k, s, p, d.W));
    }
    gx[t] = acc;
  }
}

// PyTorch's adaptive bins: [floor(i * in / out), ceil((i + 1) * in / out)).
MOESEG_DEVICE int bin_start(int i, int in, int out) {
  return static_cast<int>((static_cast<long long>(i) * in) / out);
}
MOESEG_DEVICE int bin_end(int i, int in, int out) {
  return static_cast<int>(((static_cast<long long>(i) + 1) * in + out - 1) / out);
}
// Bins [*lo, *hi] containing input coordinate i: bins are monotone, so a candidate interval
// (one wider than the arithmetic gives) filtered by the exact test.
MOESEG_DEVICE void covering_bins(int i, int in, int out, int* lo, int* hi) {
  long long a = static_cast<long long>(i) * out / in - 1, b = ((static_cast<long long>(i) + 1) * out + in - 1) / in;
  if (a < 0) a = 0;
  if (b > out - 1) b = out - 1;
  while (a <= b && bin_end(static_cast<int>(a), in, out) <= i) ++a;
  while (b >= a && bin_start(static_cast<int>(b), in, out) > i) --b;
  *lo = static_cast<int>(a);
  *hi = static_cast<int>(b);
}

__global__ void __launch_bounds__(kPoolBlock) adaptive_avg_pool2d_forward_kernel(const float* x, float* y, PoolDims d) {
  const long long per = static_cast<long long>(d.Ho) * d.Wo, total = d.planes * per;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per;
    const int r = static_cast<int>(t - plane * per), oh = r / d.Wo, ow = r - oh * d.Wo;
    const float* xr = x + plane * d.H * d.W;
    const int h0 = bin_start(oh, d.H, d.Ho), h1 = bin_end(oh, d.H, d.Ho);
    const int w0 = bin_start(ow, d.W, d.Wo), w1 = bin_end(ow, d.W, d.Wo);
    double acc = 0;
    for (int i = h0; i < h1; ++i)
      for (int j = w0; j < w1; ++j) acc += xr[static_cast<long long>(i) * d.W + j];
    y[t] = static_cast<float>(acc / static_cast<double>(static_cast<long long>(h1 - h0) * (w1 - w0)));
  }
}

__global__ void __launch_bounds__(kPoolBlock)
adaptive_avg_pool2d_backward_kernel(const float* gy, float* gx, PoolDims d) {
  const long long per_in = static_cast<long long>(d.H) * d.W, per_out = static_cast<long long>(d.Ho) * d.Wo;
  const long long total = d.planes * per_in;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / per_in;
    const int r = static_cast<int>(t - plane * per_in), ih = r / d.W, iw = r - ih * d.W;
    const float* g = gy + plane * per_out;
    int oh0, oh1, ow0, ow1;
    covering_bins(ih, d.H, d.Ho, &oh0, &oh1);
    covering_bins(iw, d.W, d.Wo, &ow0, &ow1);
    float acc = 0.f;
    for (int oh = oh0; oh <= oh1; ++oh) {
      const int eh = bin_end(oh, d.H, d.Ho) - bin_start(oh, d.H, d.Ho);
      for (int ow = ow0; ow <= ow1; ++ow) {
        const int ew = bin_end(ow, d.W, d.Wo) - bin_start(ow, d.W, d.Wo);
        acc += g[static_cast<long long>(oh) * d.Wo + ow] / static_cast<float>(eh * ew);
      }
    }
    gx[t] = acc;
  }
}

// The CPU op's option checks (kernels/pooling.cpp pooled_size), with the shape in the message.
inline PoolDims pool_dims(const char* op, int N, int C, int H, int W, int k, int s, int p) {
  MOESEG_CHECK(N >= 1 && C >= 1 && H >= 1 && W >= 1, op, ": input [", N, ", ", C, ", ", H, ", ", W,
               "] must be non-empty");
  MOESEG_CHECK(k > 0 && s > 0 && p >= 0 && p <= k / 2, op, ": kernel ", k, ", stride ", s, ", padding ", p,
               " invalid (positive kernel and stride, 0 <= padding <= kernel / 2) for input [", N, ", ", C, ", ",
               H, ", ", W, "]");
  MOESEG_CHECK(H + 2 * p >= k && W + 2 * p >= k, op, ": input [", N, ", ", C, ", ", H, ", ", W,
               "] is too small for kernel ", k, " with padding ", p);
  return PoolDims{static_cast<long long>(N) * C, H, W, pool2d_out_size(H, k, s, p), pool2d_out_size(W, k, s, p)};
}

inline PoolDims adaptive_dims(const char* op, int N, int C, int H, int W, int out_h, int out_w) {
  MOESEG_CHECK(N >= 1 && C >= 1 && H >= 1 && W >= 1 && out_h >= 1 && out_w >= 1, op, ": input [", N, ", ", C,
               ", ", H, ", ", W, "] and output size ", out_h, "x", out_w, " must be non-empty");
  return PoolDims{static_cast<long long>(N) * C, H, W, out_h, out_w};
}

inline int pool_grid(const PoolDims& d, bool per_input) {
  return grid_for(d.planes * (per_input ? static_cast<long long>(d.H) * d.W : static_cast<long long>(d.Ho) * d.Wo),
                  kPoolBlock);
}

}  // namespace detail

void max_pool2d_forward(const float* x, float* y, int64_t* indices, int N, int C, int H, int W, int kernel,
                        int stride, int padding, cudaStream_t stream) {
  using namespace detail;
  const PoolDims d = pool_dims("max_pool2d_forward", N, C, H, W, kernel, stride, padding);
  MOESEG_LAUNCH(max_pool2d_forward_kernel, pool_grid(d, false), kPoolBlock, 0, stream)(x, y, indices, d, kernel,
                                                                                       stride, padding);
  check_launch("max_pool2d_forward");
}

void max_pool2d_backward(const float* grad_y, const int64_t* indices, float* grad_x, int N, int C, int H, int W,
                         int kernel, int stride, int padding, cudaStream_t stream) {
  using namespace detail;
  const PoolDims d = pool_dims("max_pool2d_backward", N, C, H, W, kernel, stride, padding);
  MOESEG_CHECK(indices != nullptr, "max_pool2d_backward: indices are required (input [", N, ", ", C, ", ", H, ", ",
               W, "])");
  MOESEG_LAUNCH(max_pool2d_backward_kernel, pool_grid(d, true), kPoolBlock, 0, stream)(grad_y, indices, grad_x, d,
                                                                                      kernel, stride, padding);
  check_launch("max_pool2d_backward");
}

void avg_pool2d_forward(const float* x, float* y, int N, int C, int H, int W, int kernel, int stride, int padding,
                        cudaStream_t stream) {
  using namespace detail;
  const PoolDims d = pool_dims("avg_pool2d_forward", N, C, H, W, kernel, stride, padding);
  MOESEG_LAUNCH(avg_pool2d_forward_kernel, pool_grid(d, false), kPoolBlock, 0, stream)(x, y, d, kernel, stride,
                                                                                       padding);
  check_launch("avg_pool2d_forward");
}

void avg_pool2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int kernel, int stride,
                         int padding, cudaStream_t stream) {
  using namespace detail;
  const PoolDims d = pool_dims("avg_pool2d_backward", N, C, H, W, kernel, stride, padding);
  MOESEG_LAUNCH(avg_pool2d_backward_kernel, pool_grid(d, true), kPoolBlock, 0, stream)(grad_y, grad_x, d, kernel,
                                                                                      stride, padding);
  check_launch("avg_pool2d_backward");
}

void adaptive_avg_pool2d_forward(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w,
                                 cudaStream_t stream) {
  using namespace detail;
  const PoolDims d = adaptive_dims("adaptive_avg_pool2d_forward", N, C, H, W, out_h, out_w);
  MOESEG_LAUNCH(adaptive_avg_pool2d_forward_kernel, pool_grid(d, false), kPoolBlock, 0, stream)(x, y, d);
  check_launch("adaptive_avg_pool2d_forward");
}

void adaptive_avg_pool2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                  int out_w, cudaStream_t stream) {
  using namespace detail;
  const PoolDims d = adaptive_dims("adaptive_avg_pool2d_backward", N, C, H, W, out_h, out_w);
  MOESEG_LAUNCH(adaptive_avg_pool2d_backward_kernel, pool_grid(d, true), kPoolBlock, 0, stream)(grad_y, grad_x, d);
  check_launch("adaptive_avg_pool2d_backward");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
