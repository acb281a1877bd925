// Kernel lab v1 of the fused cross-entropy forward: one thread per pixel, a max pass then a
// sum-of-exp pass over the C classes (two reads of the logits where production's online
// log-sum-exp does one), the loss and weight totals gathered with double atomicAdd, and a
// one-thread kernel for result = {sum, weight sum, mean}. Run by bench/kernel_lab (kernel_lab).
#include "bench/kernel_lab/lab_kernels.cuh"
#include "core/error.h"
#include "kernels/device_helpers.cuh"

namespace moeseg::lab::MOESEG_KERNEL_NS {
namespace {

__global__ void cross_entropy_naive_kernel(const float* logits, const int64_t* target, const float* class_weights,
                                           long long ignore_index, int C, long long HW, long long pixels, float* lse_out,
                                           float* loss_out, double* accum) {
  for (long long i = dev::global_index_x(); i < pixels; i += dev::grid_stride_x()) {
    const long long n = i / HW, p = i % HW;
    const float* x = logits + n * C * HW + p;
    float m = x[0];
    for (int c = 1; c < C; ++c) m = fmaxf(m, x[c * HW]);
    float s = 0.f;
    for (int c = 0; c < C; ++c) s += expf(x[c * HW] - m);
    const float lse = m + logf(s);
    lse_out[i] = lse;
    const long long t = target[i];
    float loss = 0.f;
    if (t != ignore_index) {
      const bool valid = t >= 0 && t < C;
      const float w = valid ? (class_weights ? class_weights[t] : 1.f) : 0.f;
      loss = valid ? w * (lse - x[t * HW]) : __int_as_float(0x7fc00000);   // NaN for a bad target
      atomicAdd(&accum[0], static_cast<double>(loss));
      atomicAdd(&accum[1], static_cast<double>(w));
    }
    if (loss_out) loss_out[i] = loss;
  }
}

__global__ void cross_entropy_naive_finalize_kernel(const double* accum, float* result) {
  result[0] = static_cast<float>(accum[0]);
  result[1] = static_cast<float>(accum[1]);
  result[2] = static_cast<float>(accum[0] / accum[1]);
}

}  // namespace

void cross_entropy_forward_naive(const float* logits, const int64_t* target, const float* class_weights,
                                 int64_t ignore_index, int N, int C, int64_t HW, float* lse, float* loss_per_pixel,
                                 float* result, double* accum, cudaStream_t stream) {
  MOESEG_CHECK(N >= 1 && C >= 1 && HW >= 1, "cross_entropy_forward_naive: need N, C, HW >= 1, got N=", N, " C=", C,
               " HW=", HW);
  cudaError_t err = cudaMemsetAsync(accum, 0, 2 * sizeof(double), stream);
  MOESEG_CHECK(err == cudaSuccess, "cross_entropy_forward_naive: memset failed: ", cudaGetErrorString(err));
  const long long pixels = 1ll * N * HW;
  const int block = 256;
  const long long blocks = (pixels + block - 1) / block;
  MOESEG_LAUNCH(cross_entropy_naive_kernel, static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), block, 0,
                stream)(logits, target, class_weights, static_cast<long long>(ignore_index), C,
                        static_cast<long long>(HW), pixels, lse, loss_per_pixel, accum);
  err = cudaGetLastError();
  MOESEG_CHECK(err == cudaSuccess, "cross_entropy_forward_naive: launch failed: ", cudaGetErrorString(err));
  MOESEG_LAUNCH(cross_entropy_naive_finalize_kernel, 1, 1, 0, stream)(accum, result);
  err = cudaGetLastError();
  MOESEG_CHECK(err == cudaSuccess, "cross_entropy_forward_naive (finalize): launch failed: ", cudaGetErrorString(err));
}

}  // namespace moeseg::lab::MOESEG_KERNEL_NS
