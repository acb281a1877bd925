// The two data-movement pieces of a full-resolution residual unit (FRRU, spec §1.3-1.4), as ops so
// that a device can run each as one fused kernel (kernels/cuda/frru.cu):
//   frru_pool_concat(y, z, f)      = concat([y, max_pool2d(z, k3, stride f, pad 1)], dim 1)
//   frru_conv1x1_upsample_add(y, z, w, b)
//                                  = z + upsample_bilinear2d(conv1x1(y; w, b), z's H x W, align_corners)
// y is the pooling stream [N, Cy, h, w], z the full-resolution residual stream [N, Cz, H, W]
// (Cz = 32 in FRRN), w [Cz, Cy, 1, 1], b [Cz]. Differentiable in every tensor argument.
// The CPU runs them as the composition written above (bit-identical to calling those ops).
// Tests: tests/ops/test_frru.cpp (gradients, PyTorch fixtures), tests/device/ (CUDA path).
#pragma once
#include "core/tensor.h"

namespace moeseg {

Tensor frru_pool_concat(const Tensor& y, const Tensor& z, int64_t factor);
Tensor frru_conv1x1_upsample_add(const Tensor& y, const Tensor& z, const Tensor& weight, const Tensor& bias);

}  // namespace moeseg
