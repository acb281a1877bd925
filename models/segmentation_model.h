// The interface every segmentation network implements, so that the MoE, the ensembles, the
// trainer, the evaluation, the attacks and the CLI treat FRRN, DeepLabv3+, mixtures and later
// model kinds alike, without asking what the model is (no downcasts above models/).
//   forward()            logits [N, classes, H, W] at the input resolution;
//   forward_with_taps()  also named intermediate feature maps ("taps"): the MoE gates read their
//                        input from a tap chosen by name in the config (FRRN: the pooled stream
//                        after the last FRRU384 stage; DeepLabv3+: the ASPP output);
//   forward_detailed()   everything the model can tell about one pass (ModelOutput): a mixture's
//                        gate weights and members' logits, and whatever a new kind adds (routes,
//                        codebook indices, auxiliary losses) under a named entry.
// Models that combine frozen members (the model-level MoE) also say which members and taps
// they combine, so the trainer can cache the members' outputs (training/member_cache.h).
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"

namespace moeseg {

struct SegmentationOutput {
  Tensor logits;
  std::map<std::string, Tensor> taps;   // only the requested taps are filled
};

struct ModelOutput {
  Tensor logits;                              // [N, C, H, W]
  std::map<std::string, Tensor> taps;         // the requested taps
  Tensor gate;                                // [N, G, E] mixture weights; undefined if none
  std::vector<Tensor> member_logits;          // each member's logits (MoE experts, ensemble members)
  std::map<std::string, Tensor> aux_losses;   // scalar losses the trainer adds to the task loss
  std::map<std::string, Tensor> extras;       // kind-specific outputs, by name
};

class SegmentationModel : public Module {
 public:
  using Module::Module;
  // Computes logits and the feature maps named in `taps` (each must be in tap_names()).
  virtual SegmentationOutput forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) = 0;
  Tensor forward(const Tensor& x) override { return forward_with_taps(x, {}).logits; }
  // The default: logits and taps, and for every sparse MoE layer in the tree (layers/sparse_moe.h)
  // its weighted balancing losses in aux_losses and its routing in extras
  // ("<layer>.expert_indices" [T, k] int64, "<layer>.expert_weights" [T, k]).
  virtual ModelOutput forward_detailed(const Tensor& x, const std::vector<std::string>& taps = {});
  virtual std::vector<std::string> tap_names() const = 0;
  // Channels and stride (input size / tap size) of a tap, for sizing a gate before any forward.
  virtual int64_t tap_channels(const std::string& tap) const = 0;
  virtual int64_t tap_stride(const std::string& tap) const = 0;
  virtual int64_t num_classes() const = 0;
  // The input size {H, W} a model is built for, when it accepts no other (a fixed-size gate).
  virtual std::optional<std::pair<int64_t, int64_t>> fixed_input_size() const { return std::nullopt; }

  // ---- combining frozen members (the model-level MoE) ---------------------------------------
  // The frozen members whose outputs combine_members() combines, and the taps it reads from
  // each; empty for a model that is not such a combination.
  virtual std::vector<std::shared_ptr<SegmentationModel>> frozen_members() const { return {}; }
  virtual std::vector<std::string> member_taps() const { return {}; }
  // True when the members' outputs for an input never change while this model trains (their
  // BatchNorm stays in eval mode), so they may be cached.
  virtual bool member_outputs_constant() const { return false; }
  // The output from the members' outputs (one per member, with member_taps() filled), exactly
  // as forward_detailed would compute it; the default throws naming the model.
  virtual ModelOutput combine_members(const std::vector<SegmentationOutput>& members);
};

}  // namespace moeseg
