// Ensembles of frozen experts (spec/reference-systems.md §1.6; reference:
// KASTEL-MobilityLab/mixtures-of-experts models/frrn_ensemble.py): the element-wise mean or
// element-wise max of the experts' logits; no learned parameters. Children expert1, expert2, ...
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/moe.h"

namespace moeseg {

// How the members' logits combine; configs name them "mean" and "max".
enum class EnsembleMode { Mean, Max };
// `where` names the source and key, e.g. "model config: key 'mode'": an unknown name throws
// "<where> is 'median' (known: mean, max)".
EnsembleMode parse_ensemble_mode(const std::string& name, const std::string& where);
std::string to_string(EnsembleMode m);   // "mean" | "max", as configs spell them

class Ensemble : public SegmentationModel {
 public:
  // Experts are frozen (BatchNorm in eval) as in the MoE.
  Ensemble(std::vector<std::shared_ptr<SegmentationModel>> experts, EnsembleMode mode);
  // logits and every member's logits (no gate).
  ModelOutput forward_detailed(const Tensor& x, const std::vector<std::string>& taps = {}) override;
  SegmentationOutput forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override { return {}; }
  int64_t tap_channels(const std::string& tap) const override;
  int64_t tap_stride(const std::string& tap) const override;
  int64_t num_classes() const override { return experts_[0]->num_classes(); }
  EnsembleMode mode() const { return mode_; }

 private:
  std::vector<std::shared_ptr<SegmentationModel>> experts_;
  EnsembleMode mode_;
};

}  // namespace moeseg
