// cross_entropy: fused log-softmax + NLL over the class dim of logits [N, C, HW] (PyTorch
// F.cross_entropy with ignore_index and class weights), forward and backward w.r.t. the logits.
// Same semantics as the CPU backend (kernels/cross_entropy.h), which is the test oracle:
// tests/cuda_kernels/test_cross_entropy.cpp runs these kernels through CUDA-on-CPU against it.
//
// Launch shape: one thread per pixel (grid-stride over N*HW), walking the C classes at stride HW,
// so the 32 lanes of a warp read 32 consecutive pixels of one class plane: coalesced without
// transposing to [N*HW, C].
// Memory: forward reads the logits once (an online log-sum-exp: running max and rescaled sum
// in one pass, not max-then-sum) and writes 4 bytes of lse per pixel, which backward reads
// instead of recomputing the max and sum (backward = one read of logits + one write of dlogits).
// FRRN-A (N=2, C=38, 480x640): 93 MB forward, 187 MB backward -> 28 / 56 us at 3.35 TB/s; with
// one expf per element (23 M) the SFU is not the limit either. DeepLabv3+ at the A2D2 crop of the
// gate note (N=2, C=38, 912x912: 63.2 M logits): forward 253 MB of logits + 13 MB of int64
// targets + 7 MB of lse = 273 MB -> 81 us; backward reads logits, targets and lse and writes
// dlogits, 526 MB -> 157 us. About 5 FLOP per logit (max, exp, add, sub, mul): ~1.2 FLOP/byte,
// far under the H100's ridge (~20), so these byte floors are the floors.
// Determinism (no float atomics): per-block partial sums (double) of loss and weight, then one
// block sums the partials in a fixed order; the block count depends only on the sizes.
#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kCeBlock = 256;
constexpr int kCeMaxBlocks = 1024;

inline int ce_blocks(long long pixels) { return grid_for(pixels, kCeBlock, kCeMaxBlocks); }

// No __launch_bounds__ here: with it ptxas capped this kernel at 32 registers and spilled 8
// bytes (sm_80); without it, 38 registers and no spill (occupancy is still 6 blocks/SM).
__global__ void
cross_entropy_forward_kernel(const float* logits, const int64_t* target, const float* class_weights,
                             long long ignore_index, int C, long long HW, long long pixels, float* lse_out,
                             float* loss_out, double* partial) {
  double lsum = 0.0, wsum = 0.0;
  for (long long i = global_index_x(); i < pixels; i += grid_stride_x()) {
    const long long n = i / HW, p = i - n * HW;
    const float* x = logits + n * C * HW + p;
    // Online log-sum-exp: when a new max arrives the running sum is rescaled by exp(old - new).
    float m = x[0], s = 1.f;
    for (int c = 1; c < C; ++c) {
      const float v = x[static_cast<long long>(c) * HW];
      if (v > m) {
        s = s * expf(m - v) + 1.f;
        m = v;
      } else {
        s += expf(v - m);
      }
    }
    const float lse = m + logf(s);
    lse_out[i] = lse;
    const long long t = target[i];
    float loss = 0.f;
    if (t != ignore_index) {
      if (t >= 0 && t < C) {
        const float w = class_weights ? class_weights[t] : 1.f;
        loss = w * (lse - x[t * HW]);
        wsum += w;
      } else {
        loss = __int_as_float(0x7fc00000);   // NaN: an invalid target must not pass silently
      }
      lsum += loss;
    }
    if (loss_out) loss_out[i] = loss;
  }
  // Every thread reaches both reductions (no early exit above).
  lsum = block_reduce_sum(lsum);
  wsum = block_reduce_sum(wsum);
  if (linear_thread_id() == 0) {
    partial[2 * blockIdx.x] = lsum;
    partial[2 * blockIdx.x + 1] = wsum;
  }
}

// One block: result = {sum, weight sum, sum / weight sum}. 0/0 = NaN when every pixel is
// ignored, as in PyTorch's mean reduction.
__global__ void __launch_bounds__(kCeBlock)
cross_entropy_finalize_kernel(const double* partial, int blocks, float* result) {
  double l = 0.0, w = 0.0;
  for (int j = static_cast<int>(linear_thread_id()); j < blocks; j += static_cast<int>(blockDim.x)) {
    l += partial[2 * j];
    w += partial[2 * j + 1];
  }
  l = block_reduce_sum(l);
  w = block_reduce_sum(w);
  if (linear_thread_id() == 0) {
    result[0] = static_cast<float>(l);
    result[1] = static_cast<float>(w);
    result[2] = static_cast<float>(l / w);
  }
}

// dx[n,c,p] = coef * (softmax - [c == t]); coef = gout * w[t] (/ weight sum for mean); ignored
// pixels get 0. softmax = exp(x - lse) from the saved lse.
__global__ void __launch_bounds__(kCeBlock)
cross_entropy_backward_kernel(const float* logits, const int64_t* target, const float* class_weights,
                              long long ignore_index, int C, long long HW, long long pixels, const float* lse,
                              const float* result, const float* grad_output, int reduction, float* grad_logits) {
  // Mean: the divisor is read on the device, so no host synchronisation is needed between the
  // forward and the backward.
  const float scale = reduction == 2 ? 1.f / result[1] : 1.f;
  for (long long i = global_index_x(); i < pixels; i += grid_stride_x()) {
    const long long n = i / HW, p = i - n * HW;
    const float* x = logits + n * C * HW + p;
    float* dx = grad_logits + n * C * HW + p;
    const long long t = target[i];
    if (t == ignore_index) {
      for (int c = 0; c < C; ++c) dx[static_cast<long long>(c) * HW] = 0.f;
      continue;
    }
    const float g = reduction == 0 ? grad_output[i] : grad_output[0];
    const float w = (t >= 0 && t < C) ? (class_weights ? class_weights[t] : 1.f) : __int_as_float(0x7fc00000);
    const float coef = g * w * scale;
    const float l = lse[i];
    for (int c = 0; c < C; ++c) {
      const float pr = expf(x[static_cast<long long>(c) * HW] - l);
      dx[static_cast<long long>(c) * HW] = coef * (c == t ? pr - 1.f : pr);
    }
  }
}

inline void ce_check(const char* op, int N, int C, int64_t HW) {
  MOESEG_CHECK(N >= 1 && C >= 1 && HW >= 1, op, ": need N, C, HW >= 1, got N=", N, " C=", C, " HW=", HW);
}

}  // namespace detail

// Partials are doubles: 2 per block, counted here in floats.
size_t cross_entropy_workspace_floats(int N, int C, int64_t HW) {
  return static_cast<size_t>(detail::ce_blocks(static_cast<long long>(N) * HW)) * 4;
}

void cross_entropy_forward(const float* logits, const int64_t* target, const float* class_weights,
                           int64_t ignore_index, int N, int C, int64_t HW, float* lse, float* loss_per_pixel,
                           float* result, float* workspace, cudaStream_t stream) {
  using namespace detail;
  ce_check("cross_entropy_forward", N, C, HW);
  MOESEG_CHECK(detail::is_aligned16(workspace), "cross_entropy_forward: workspace must be 16-byte aligned");
  const long long pixels = static_cast<long long>(N) * HW;
  const int blocks = ce_blocks(pixels);
  double* partial = reinterpret_cast<double*>(workspace);
  MOESEG_LAUNCH(cross_entropy_forward_kernel, blocks, kCeBlock, 0, stream)(
      logits, target, class_weights, static_cast<long long>(ignore_index), C, static_cast<long long>(HW), pixels,
      lse, loss_per_pixel, partial);
  check_launch("cross_entropy_forward");
  MOESEG_LAUNCH(cross_entropy_finalize_kernel, 1, kCeBlock, 0, stream)(partial, blocks, result);
  check_launch("cross_entropy_forward (finalize)");
}

void cross_entropy_backward(const float* logits, const int64_t* target, const float* class_weights,
                            int64_t ignore_index, int N, int C, int64_t HW, const float* lse, const float* result,
                            const float* grad_output, CEReduction reduction, float* grad_logits, cudaStream_t stream) {
  using namespace detail;
  ce_check("cross_entropy_backward", N, C, HW);
  const long long pixels = static_cast<long long>(N) * HW;
  MOESEG_LAUNCH(cross_entropy_backward_kernel, ce_blocks(pixels), kCeBlock, 0, stream)(
      logits, target, class_weights, static_cast<long long>(ignore_index), C, static_cast<long long>(HW), pixels,
      lse, result, grad_output, static_cast<int>(reduction), grad_logits);
  check_launch("cross_entropy_backward");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
