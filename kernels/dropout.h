// Inverted dropout: in training, zero each element with probability p (Philox draws from the
// given generator, so a seed reproduces the mask on CPU and GPU) and scale the rest by 1/(1-p);
// identity in evaluation. Differentiable (the mask is saved).
#pragma once
#include "core/rng.h"
#include "core/tensor.h"

namespace moeseg {

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

}  // namespace moeseg
