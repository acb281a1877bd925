// The interface every segmentation network implements, so that the MoE, the ensembles, the
// trainer, the attacks and `moeseg infer` treat FRRN and DeepLabv3+ (and later experts) alike.
// forward() returns logits [N, classes, H, W] at the input resolution; forward_with_taps() also
// returns named intermediate feature maps ("taps") — the MoE gates read their input from a tap
// chosen by name in the config (FRRN: the pooled stream after the last FRRU384 stage;
// DeepLabv3+: the ASPP output).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "layers/module.h"

namespace moeseg {

struct SegmentationOutput {
  Tensor logits;
  std::map<std::string, Tensor> taps;   // only the requested taps are filled
};

class SegmentationModel : public Module {
 public:
  using Module::Module;
  // Computes logits and the feature maps named in `taps` (each must be in tap_names()).
  virtual SegmentationOutput forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) = 0;
  Tensor forward(const Tensor& x) override { return forward_with_taps(x, {}).logits; }
  virtual std::vector<std::string> tap_names() const = 0;
  // Channels and stride (input size / tap size) of a tap, for sizing a gate before any forward.
  virtual int64_t tap_channels(const std::string& tap) const = 0;
  virtual int64_t tap_stride(const std::string& tap) const = 0;
  virtual int64_t num_classes() const = 0;
};

}  // namespace moeseg
