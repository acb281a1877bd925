// The CUDA paths of the spatial ops and top-k (pooling, upsampling, FRRU pieces): each launches
// its kernel from kernels/cuda/ through gpu_kernels() and records a node whose backward launches
// the matching backward kernel. Called by the ops themselves (pooling.cpp, upsample.cpp, frru.cpp,
// reduce.cpp) after their argument checks, for float32 CUDA tensors; nothing else calls them.
// Tests: tests/device/ (against the CPU backend on the emulated CUDA device).
#pragma once
#include <utility>

#include "core/tensor.h"

namespace moeseg::gpu {

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding, int64_t ho, int64_t wo);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding, int64_t ho, int64_t wo);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor upsample_bilinear2d(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners);
Tensor upsample_nearest2d(const Tensor& x, int64_t out_h, int64_t out_w);
// Top-k over the last dim of a contiguous tensor.
std::pair<Tensor, Tensor> topk_last_dim(const Tensor& x, int64_t k, bool largest);
Tensor frru_pool_concat(const Tensor& y, const Tensor& z, int64_t factor);
Tensor frru_conv1x1_upsample_add(const Tensor& y, const Tensor& z, const Tensor& weight, const Tensor& bias);

}  // namespace moeseg::gpu
