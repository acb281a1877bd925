// Linear layer: parameters, PyTorch default initialisation, forward through kernels/linear.h.
#include "layers/linear_layer.h"

#include <cmath>

#include "core/autograd.h"
#include "kernels/linear.h"

namespace moeseg {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen)
    : Module("Linear"), in_(in_features), out_(out_features) {
  MOESEG_CHECK(in_features > 0 && out_features > 0, "Linear: in_features=", in_features, " and out_features=",
               out_features, " must be positive");
  weight = register_parameter("weight", Tensor::empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", Tensor::empty({out_features}));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) {
  // kaiming_uniform_(a=sqrt(5)) on [out, in] gives bound 1/sqrt(in); the bias uses the same bound.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  NoGradGuard ng;
  uniform_(weight, -bound, bound, gen);
  if (bias.defined()) uniform_(bias, -bound, bound, gen);
}

Tensor Linear::forward(const Tensor& x) {
  MOESEG_CHECK(x.dim() >= 1 && x.size(-1) == in_, "Linear(", in_, " -> ", out_, "): input ", x.str(),
               " must end in ", in_, " features");
  return linear(x, weight, bias);
}

}  // namespace moeseg
