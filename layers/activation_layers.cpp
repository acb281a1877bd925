// ReLU and Dropout layers over kernels/elementwise.h and kernels/dropout.h.
#include "layers/activation_layers.h"

#include "kernels/dropout.h"
#include "kernels/elementwise.h"

namespace moeseg {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Dropout::Dropout(double p, Generator& gen) : Module("Dropout"), p_(p), gen_(&gen) {
  MOESEG_CHECK(p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), *gen_); }

}  // namespace moeseg
