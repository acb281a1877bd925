// The fused in-place parameter updates behind training/optimizer.h: one SGD step and one
// Adam/AdamW step over a whole parameter tensor, on the CPU (OpenMP loop) or on a CUDA device
// (kernels/cuda/elementwise.cu, one launch). The optimisers keep the state and the schedule; these
// functions are only the arithmetic, so that training/ reaches the kernels through an op here and
// never through the GPU launchers (the include rule of tests/architecture/check_includes.cmake).
// Precision: the rules are PyTorch's _single_tensor_sgd / _single_tensor_adam. Scalars (lr, betas,
// bias corrections) are formed in double as Python forms them and cast to the parameter type where
// torch casts them; where torch's float kernels round once (add with alpha, lerp, addcmul are FMAs
// in its CPU build) std::fma is used, elsewhere separate operations (the build is ISO C++, so GCC
// contracts nothing else). Against torch 2.x in float32 SGD is bit-identical; Adam differs in the
// last bit on a few percent of the elements of large tensors, where torch's vectorised sqrt is not
// correctly rounded and std::sqrt is.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace moeseg {

struct SgdStep {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first = false;   // the momentum buffer is uninitialised: it becomes the first direction
};

// param -= lr * direction, with momentum_buffer (undefined without momentum) updated in place.
// param, grad and the buffer share shape, dtype, device and are contiguous.
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStep& s);

struct AdamStep {
  int64_t step = 1;                 // 1 on the first update (bias corrections)
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;           // AdamW: decay the parameter instead of adding wd*p to the gradient
};

// One Adam(W) update in place; max_exp_avg_sq defined for AMSGrad, undefined otherwise.
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamStep& s);

}  // namespace moeseg
