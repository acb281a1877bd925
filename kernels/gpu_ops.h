// The CUDA paths of the spatial ops, top-k and the sparse-MoE dispatch (pooling, upsampling, FRRU
// pieces, moe_*): each launches its kernel from kernels/cuda/ through gpu_kernels() and records a
// node whose backward launches the matching backward kernel. Called by the ops themselves
// (pooling.cpp, upsample.cpp, frru.cpp, reduce.cpp, moe_dispatch.cpp) after their argument
// checks, for float32 CUDA tensors (int64 indices for the routing plan); nothing else calls them.
// Tests: tests/device/ (against the CPU backend on the emulated CUDA device).
#pragma once
#include <utility>

#include "core/tensor.h"

namespace moeseg {
struct MoeRoutingPlan;   // kernels/moe_dispatch.h
}

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

// Sparse-MoE dispatch (kernels/moe_dispatch.h): the plan of a CUDA idx built on the device
// (capacity <= 0: none) and the three ops; each reads the plan's device copies, uploading them
// into plan.device_cache on first use.
MoeRoutingPlan moe_routing_plan(const Tensor& idx, int64_t num_experts, int64_t capacity);
Tensor moe_permute(const Tensor& x, const MoeRoutingPlan& plan);
Tensor moe_unpermute_combine(const Tensor& yp, const MoeRoutingPlan& plan, const Tensor& w);
Tensor moe_grouped_linear(const Tensor& xp, const MoeRoutingPlan& plan, const Tensor& weight, const Tensor& bias);

}  // namespace moeseg::gpu
