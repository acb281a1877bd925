// Monte-Carlo dropout over a model's Dropout layers (training/mc_dropout.h).
#include "training/mc_dropout.h"

#include "core/autograd.h"
#include "core/error.h"

namespace moeseg {

MonteCarloDropout::MonteCarloDropout(SegmentationModel& model, double p, uint64_t seed) : gen_(seed) {
  MOESEG_CHECK(p >= 0.0 && p < 1.0, "MC-dropout: the dropout rate must be in [0, 1), got ", p);
  for (auto& [name, m] : model.named_modules())
    if (auto d = std::dynamic_pointer_cast<Dropout>(m)) layers_.push_back(d);
  MOESEG_CHECK(!layers_.empty(), "MC-dropout: model ", model.type_name(),
               " has no Dropout layer to switch on (FRRN and DeepLabv3+ have one; an MoE or ensemble has its members')");
  for (auto& d : layers_) d->set_monte_carlo(true, p, &gen_);
}

MonteCarloDropout::~MonteCarloDropout() {
  for (auto& d : layers_) d->set_monte_carlo(false);
}

ModelOutput mc_dropout_output(SegmentationModel& model, const Tensor& x, double p, int samples, uint64_t seed) {
  MOESEG_CHECK(samples >= 1, "MC-dropout: the number of samples must be >= 1, got ", samples);
  model.eval();
  NoGradGuard ng;
  MonteCarloDropout mc(model, p, seed);
  ModelOutput out;
  for (int s = 0; s < samples; ++s) out.member_logits.push_back(model.forward(x));
  out.logits = out.member_logits.front();
  return out;
}

}  // namespace moeseg
