// The kernel lab's own kernels (bench/kernel_lab/*_naive.cu): the "v1" of each flagship kernel,
// written the plain way (one thread per output, no shared memory, no tiling) as the starting
// point the production kernels in kernels/cuda are measured against (for the FRRU pieces: the
// unfused sequence of such kernels, with its temporaries). Compiled twice like
// kernels/cuda: by the host compiler against CUDA-on-CPU (namespace moeseg::lab::coc) and by nvcc
// (moeseg::lab::cuda, bench/kernel_lab/lab_kernels_device.cu). Not part of kernels/: `moeseg
// kernels` does not list them and no model calls them.
#pragma once
#include <cstdint>

#include "kernels/cuda/cuda_kernels.cuh"

namespace moeseg::lab::MOESEG_KERNEL_NS {

using moeseg::MOESEG_KERNEL_NS::Conv2dShape;

// y = conv(x, w) (+ bias) (then ReLU): one thread per output element, a direct triple loop over
// (input channel of the group, kernel row, kernel column).
void conv2d_forward_naive(const Conv2dShape& s, const float* x, const float* w, const float* bias, bool fuse_relu,
                          float* y, cudaStream_t stream = nullptr);

// Most experts the naive combine takes (their pointers travel by value in the kernel arguments).
constexpr int kNaiveMaxExperts = 8;
// Same contract as moeseg::*::gate_softmax_combine_forward: one thread per output element, each
// recomputing the softmax of its (b, g) row of gate logits.
void gate_softmax_combine_forward_naive(const float* gate_logits, const float* const* expert_logits, float* out,
                                        float* weights, int B, int G, int C, int64_t HW, int E,
                                        cudaStream_t stream = nullptr);

// Same outputs as moeseg::*::cross_entropy_forward (lse, loss_per_pixel, result[3]): one thread per
// pixel (max pass, then sum-of-exp pass), the totals accumulated with double atomicAdd into
// `accum` (2 doubles, zeroed here), then one thread writes result. Not deterministic in the last
// bits (atomic order), which is why production does not do it this way.
void cross_entropy_forward_naive(const float* logits, const int64_t* target, const float* class_weights,
                                 int64_t ignore_index, int N, int C, int64_t HW, float* lse, float* loss_per_pixel,
                                 float* result, double* accum, cudaStream_t stream = nullptr);

// frru_pool_concat unfused (frru_naive.cu): a max-pool kernel (k3, stride factor, pad 1) of z into
// `pooled` [N, Cz, h, w] (argmax into indices, nullable, as the production launcher), then a
// concat-copy kernel of (y, pooled) into out [N, Cy + Cz, h, w].
void frru_pool_concat_forward_naive(const float* y, const float* z, float* pooled, float* out, int64_t* indices, int N,
                                    int Cy, int h, int w, int Cz, int H, int W, int factor,
                                    cudaStream_t stream = nullptr);
// frru_conv1x1_upsample_add unfused (frru_naive.cu): low [N, Cz, h, w] = conv1x1(y_out) + bias
// (nullable), up [N, Cz, H, W] = bilinear align_corners(low), z_out = z_in + up: three kernels,
// two temporaries.
void frru_conv1x1_upsample_add_forward_naive(const float* y_out, const float* weight, const float* bias,
                                             const float* z_in, float* z_out, float* low, float* up, int N, int Cy,
                                             int h, int w, int Cz, int H, int W, cudaStream_t stream = nullptr);

}  // namespace moeseg::lab::MOESEG_KERNEL_NS
