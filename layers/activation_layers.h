// Parameter-free layers: ReLU and Dropout (inverted; identity in eval mode). Dropout draws its
// mask with Philox from the generator it was given (default: the global one), so a seed
// reproduces it.
#pragma once
#include "core/rng.h"
#include "layers/module.h"

namespace moeseg {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  double p() const { return p_; }

 private:
  double p_;
  Generator* gen_;   // not owned; must outlive the layer (the default generator always does)
};

}  // namespace moeseg
