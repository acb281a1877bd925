// Batch normalisation over N, H, W of an NCHW tensor (PyTorch BatchNorm2d semantics).
// Training: normalise with the batch statistics (biased variance) and update the running
// statistics in place with the unbiased variance: running = (1 - momentum) * running + momentum * batch.
// Evaluation: normalise with the running statistics. Differentiable in x, weight and bias.
#pragma once
#include "core/tensor.h"

namespace moeseg {

// weight/bias [C] (either may be undefined: affine off); running_mean/var [C] (may be undefined in
// training: no tracking; required in eval).
Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                    const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace moeseg
