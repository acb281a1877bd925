// The model-level mixture of experts (spec/reference-systems.md §1.5-1.7; reference:
// KASTEL-MobilityLab/mixtures-of-experts models/frrn_moe.py, models/deeplab_moe.py), for any
// number of experts of any SegmentationModel type:
//   taps_e, logits_e = expert_e(x)        (frozen: no gradients, BatchNorm in eval mode)
//   w = gate(concat(taps_1..E, dim 1))    [B, G, E], G = 1 (simple) or classes (class-wise)
//   out = sum_e w[:, :, e] * logits_e     (weights multiply raw logits, not probabilities)
//   out = conv3x3(out)                    (optional: C -> C, pad 1, no bias)
// State-dict names as the reference: expert1, expert2, ..., gating, conv3x3; optionally the
// reference's unused third FRRN "expert" (kept there for checkpoint compatibility).
// The experts are frozen with Module::freeze, so MoE::train() leaves them in eval mode. The
// reference as coded puts their BatchNorm back in train mode when the MoE is trained (running
// statistics drift during gate training); experts_bn_train_mode = true reproduces that quirk.
// Gradients still flow through the frozen experts to the input when the input requires them
// (attacks), as with the reference's allow_gradient_flow.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/gates.h"
#include "models/segmentation_model.h"

namespace moeseg {

struct MoEConfig {
  GateType gate_type = GateType::Simple;
  bool with_conv = false;              // final 3x3 conv on the weighted sum
  // The experts' feature map the gate reads. A name, not an enum: each model kind has its own
  // set (FRRN frrnlayer1..N, N from its table; DeepLabv3+ aspp, layer4, low_level), so the MoE
  // checks it once, at construction, against every expert's tap_names().
  std::string tap = "frrnlayer4";
  int64_t input_h = 480, input_w = 640;  // input size a fixed-size gate is built for
  int64_t pool_h = 0, pool_w = 0;      // > 0: resolution-independent gate (adaptive pool grid)
  int64_t fc_features = 128;
  bool experts_bn_train_mode = false;  // the reference quirk (see above); off = experts stay eval
  bool reference_unused_expert = false;  // register the reference's unused "expert" child
  uint64_t seed = 0;                   // gate / conv initialisation
};

class MoE : public SegmentationModel {
 public:
  // Experts must agree on num_classes and each have cfg.tap in its tap_names() (else an error
  // naming the tap, the expert and its taps); they are frozen here. `unused_expert`
  // (only with reference_unused_expert) is registered as "expert", frozen and never run.
  MoE(std::vector<std::shared_ptr<SegmentationModel>> experts, const MoEConfig& cfg,
      std::shared_ptr<SegmentationModel> unused_expert = nullptr);

  // logits [B, C, H, W] combined, gate [B, G, E] the gate weights, member_logits E x [B, C, H, W].
  // The MoE itself offers no taps.
  ModelOutput forward_detailed(const Tensor& x, const std::vector<std::string>& taps = {}) override;
  // The gate on the experts' taps and the combination of their logits (+ the final conv).
  // forward_detailed uses it; so does training on cached expert outputs.
  ModelOutput combine_members(const std::vector<SegmentationOutput>& experts) override;
  SegmentationOutput forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) override;
  std::vector<std::shared_ptr<SegmentationModel>> frozen_members() const override { return experts_; }
  std::vector<std::string> member_taps() const override { return {cfg_.tap}; }
  bool member_outputs_constant() const override { return !cfg_.experts_bn_train_mode; }
  std::optional<std::pair<int64_t, int64_t>> fixed_input_size() const override;
  std::vector<std::string> tap_names() const override { return {}; }
  int64_t tap_channels(const std::string& tap) const override;
  int64_t tap_stride(const std::string& tap) const override;
  int64_t num_classes() const override { return num_classes_; }

  const MoEConfig& config() const { return cfg_; }
  const std::vector<std::shared_ptr<SegmentationModel>>& experts() const { return experts_; }
  std::shared_ptr<Gate> gating() const { return gate_; }
  std::shared_ptr<Conv2d> final_conv() const { return conv3x3_; }   // null without with_conv
  // The trainable parameters (gate, and the final conv when present).
  std::vector<Tensor> trainable_parameters() const;

 private:
  MoEConfig cfg_;
  int64_t num_classes_ = 0;
  std::vector<std::shared_ptr<SegmentationModel>> experts_;
  std::shared_ptr<Gate> gate_;
  std::shared_ptr<Conv2d> conv3x3_;
};

// Freezes a pretrained expert as the MoE and the ensembles do; with bn_train_mode the expert's
// BatchNorm follows the parent's train()/eval() (the reference quirk).
void freeze_expert(Module& expert, bool bn_train_mode);

}  // namespace moeseg
