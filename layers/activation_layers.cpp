// ReLU and Dropout layers over kernels/elementwise.h and kernels/dropout.h.
#include "layers/activation_layers.h"

#include "kernels/dropout.h"
#include "kernels/elementwise.h"

namespace moeseg {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Dropout::Dropout(double p, Generator& gen) : Module("Dropout"), p_(p), gen_(&gen) {
  MOESEG_CHECK(p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1), got ", p);
}

void Dropout::set_monte_carlo(bool on, double p, Generator* gen) {
  if (!on) {
    mc_gen_ = nullptr;
    return;
  }
  MOESEG_CHECK(p >= 0.0 && p < 1.0, "Dropout: the Monte-Carlo rate must be in [0, 1), got ", p);
  MOESEG_CHECK(gen != nullptr, "Dropout: Monte-Carlo mode needs a generator");
  mc_p_ = p;
  mc_gen_ = gen;
}

Tensor Dropout::forward(const Tensor& x) {
  if (mc_gen_) return dropout(x, mc_p_, /*training=*/true, *mc_gen_);
  return dropout(x, p_, is_training(), *gen_);
}

}  // namespace moeseg
