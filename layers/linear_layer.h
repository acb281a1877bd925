// Linear layer (torch.nn.Linear): y = x W^T + b, weight [out, in], bias [out], PyTorch default
// initialisation U(-1/sqrt(in), 1/sqrt(in)) for both, drawn with Philox from the given generator.
#pragma once
#include "core/rng.h"
#include "layers/module.h"

namespace moeseg {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator& gen = default_generator());

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  Tensor weight, bias;

 private:
  int64_t in_, out_;
};

}  // namespace moeseg
