// Kernel lab v1 of the atrous convolution forward: one thread per output element, direct loops.
// Every thread reads its (c_in/groups)*kh*kw inputs and weights straight from global memory, so
// each input is read up to c_out*kh*kw times (caches absorb some): the version the implicit GEMM
// of kernels/cuda/conv2d_implicit_gemm.cu is measured against. Run by bench/kernel_lab (kernel_lab).
#include "bench/kernel_lab/lab_kernels.cuh"
#include "core/error.h"
#include "kernels/device_helpers.cuh"

namespace moeseg::lab::MOESEG_KERNEL_NS {
namespace {

__global__ void conv2d_forward_naive_kernel(Conv2dShape s, const float* x, const float* w, const float* bias,
                                            int fuse_relu, float* y, int ho, int wo, long long total) {
  // (ho, wo come from the host: Conv2dShape's helpers are host functions.)
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  for (long long i = dev::global_index_x(); i < total; i += dev::grid_stride_x()) {
    const int ow = static_cast<int>(i % wo);
    const int oh = static_cast<int>((i / wo) % ho);
    const int co = static_cast<int>((i / (1ll * wo * ho)) % s.c_out);
    const int n = static_cast<int>(i / (1ll * wo * ho * s.c_out));
    const int g = co / cout_g;
    float acc = bias ? bias[co] : 0.f;
    for (int ci = 0; ci < cin_g; ++ci) {
      const float* xp = x + (static_cast<long long>(n) * s.c_in + g * cin_g + ci) * s.h_in * s.w_in;
      const float* wp = w + (static_cast<long long>(co) * cin_g + ci) * s.kh * s.kw;
      for (int r = 0; r < s.kh; ++r) {
        const int ih = oh * s.stride_h - s.pad_h + r * s.dil_h;
        if (ih < 0 || ih >= s.h_in) continue;
        for (int q = 0; q < s.kw; ++q) {
          const int iw = ow * s.stride_w - s.pad_w + q * s.dil_w;
          if (iw < 0 || iw >= s.w_in) continue;
          acc += xp[static_cast<long long>(ih) * s.w_in + iw] * wp[r * s.kw + q];
        }
      }
    }
    y[i] = fuse_relu && acc < 0.f ? 0.f : acc;
  }
}

}  // namespace

void conv2d_forward_naive(const Conv2dShape& s, const float* x, const float* w, const float* bias, bool fuse_relu,
                          float* y, cudaStream_t stream) {
  MOESEG_CHECK(s.groups >= 1 && s.c_in % s.groups == 0 && s.c_out % s.groups == 0 && s.h_out() > 0 && s.w_out() > 0,
               "conv2d_forward_naive: invalid shape");
  const long long total = 1ll * s.n * s.c_out * s.h_out() * s.w_out();
  const int block = 256;
  const long long blocks = (total + block - 1) / block;
  MOESEG_LAUNCH(conv2d_forward_naive_kernel, static_cast<unsigned>(blocks < 65535 * 32 ? blocks : 65535 * 32), block,
                0, stream)(s, x, w, bias, fuse_relu ? 1 : 0, y, s.h_out(), s.w_out(), total);
  const cudaError_t err = cudaGetLastError();
  MOESEG_CHECK(err == cudaSuccess, "conv2d_forward_naive: launch failed: ", cudaGetErrorString(err));
}

}  // namespace moeseg::lab::MOESEG_KERNEL_NS
