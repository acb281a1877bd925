// 2-D pooling on NCHW tensors, PyTorch semantics (floor mode; padding counts as -inf for max
// and, for avg, is included in the divisor as with count_include_pad=True).
#pragma once
#include "core/tensor.h"

namespace moeseg {

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
// Output [N, C, out_h, out_w]; bin i covers [floor(i*H/out), ceil((i+1)*H/out)).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace moeseg
