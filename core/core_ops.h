// The ops the core itself needs: autograd's gradient accumulation (add, add_) and expand's
// backward (sum_to, the sum over broadcast dims). They live in kernels/ like every op; core/ must
// not include kernels/ (arrows point down: tests/architecture checks the include graph), so
// kernels/ installs them here at start-up (kernels/elementwise.cpp), the same way it installs the
// device copy kernels (set_device_copy_ops in core/tensor.h). Calling one before it is installed
// is an error naming it.
#pragma once
#include "core/tensor.h"

namespace moeseg {

struct CoreOps {
  Tensor (*add)(const Tensor& a, const Tensor& b) = nullptr;
  void (*add_)(const Tensor& dst, const Tensor& src) = nullptr;   // dst += src, in place
  Tensor (*sum_to)(const Tensor& g, const Shape& shape) = nullptr;
};

void set_core_ops(const CoreOps& ops);
const CoreOps& core_ops();   // throws if kernels/ has not installed them

}  // namespace moeseg
