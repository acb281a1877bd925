// Parameter-free layers: ReLU and Dropout (inverted; identity in eval mode). Dropout draws its
// mask with Philox from the generator it was given (default: the global one), so a seed
// reproduces it. Monte-Carlo mode (set_monte_carlo, used by training/mc_dropout.h) keeps a Dropout
// active in eval mode with another rate and generator, so that BatchNorm keeps its running
// statistics while the masks vary; off again, the layer is exactly what it was.
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
  // On: drop with rate `p` (in [0, 1)) in any mode, drawing from `gen` (not owned, non-null).
  void set_monte_carlo(bool on, double p = 0.0, Generator* gen = nullptr);
  bool monte_carlo() const { return mc_gen_ != nullptr; }

 private:
  double p_;
  Generator* gen_;   // not owned; must outlive the layer (the default generator always does)
  double mc_p_ = 0.0;
  Generator* mc_gen_ = nullptr;   // non-null while in Monte-Carlo mode
};

}  // namespace moeseg
