// Matrix products on the BLAS: matmul of 2-D tensors (and batched 3-D with equal batch), and
// linear(x, W, b) = x W^T + b with x [..., in], W [out, in], b [out]. Differentiable.
#pragma once
#include "core/tensor.h"

namespace moeseg {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace moeseg
