// Resizing of NCHW tensors to a given size, PyTorch F.interpolate semantics:
// bilinear with align_corners true (UpsamplingBilinear2d, used by FRRN) or false (DeepLabv3+),
// and nearest (legacy 'nearest': src = floor(dst * in / out)). Differentiable in x.
#pragma once
#include "core/tensor.h"

namespace moeseg {

Tensor upsample_bilinear2d(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners);
Tensor upsample_nearest2d(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace moeseg
