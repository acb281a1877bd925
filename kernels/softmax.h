// Softmax and log-softmax over any dim (numerically stable: max subtracted). Differentiable.
#pragma once
#include "core/tensor.h"

namespace moeseg {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace moeseg
