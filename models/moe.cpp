// Model-level MoE: frozen experts, a gate on their concatenated taps, weighted sum of logits
// (see moe.h).
#include "models/moe.h"

#include <algorithm>

#include "core/rng.h"
#include "core/value_checks.h"
#include "kernels/elementwise.h"
#include "kernels/gate_combine.h"
#include "kernels/shape_ops.h"
#include "models/frrn_trace.h"

namespace moeseg {

void freeze_expert(Module& expert, bool bn_train_mode) {
  expert.freeze();
  // train() consults keep_eval_when_frozen at every level of the sub-tree, so the quirk has to
  // clear it everywhere, not only at the expert's root.
  if (bn_train_mode)
    for (auto& [name, m] : expert.named_modules()) m->set_keep_eval_when_frozen(false);
}

MoE::MoE(std::vector<std::shared_ptr<SegmentationModel>> experts, const MoEConfig& cfg,
         std::shared_ptr<SegmentationModel> unused_expert)
    : SegmentationModel("MoE"), cfg_(cfg), experts_(std::move(experts)) {
  MOESEG_CHECK(!experts_.empty(), "MoE: needs at least one expert");
  for (size_t i = 0; i < experts_.size(); ++i) {
    auto& e = experts_[i];
    MOESEG_CHECK(e, "MoE: expert ", i + 1, " is null");
    const std::vector<std::string> names = e->tap_names();
    if (std::find(names.begin(), names.end(), cfg.tap) == names.end()) {
      std::string known;
      for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
      MOESEG_FAIL("MoE: tap '", printable(cfg.tap), "' is not a feature map of expert ", i + 1, " (", e->type_name(),
                  "; its taps: ", known.empty() ? "none" : known, ")");
    }
  }
  num_classes_ = experts_[0]->num_classes();
  int64_t tap_channels = 0;
  int64_t stride = experts_[0]->tap_stride(cfg.tap);
  for (size_t i = 0; i < experts_.size(); ++i) {
    auto& e = experts_[i];
    MOESEG_CHECK(e->num_classes() == num_classes_, "MoE: expert ", i + 1, " has ", e->num_classes(),
                 " classes, expert 1 has ", num_classes_);
    MOESEG_CHECK(e->tap_stride(cfg.tap) == stride, "MoE: expert ", i + 1, " tap '", cfg.tap, "' has stride ",
                 e->tap_stride(cfg.tap), ", expert 1's has ", stride, " (the gate concatenates them)");
    tap_channels += e->tap_channels(cfg.tap);
  }
  if (cfg.reference_unused_expert) {
    MOESEG_CHECK(unused_expert, "MoE: reference_unused_expert needs the extra expert model");
    freeze_expert(*unused_expert, false);
    register_module("expert", unused_expert);
  }
  for (size_t i = 0; i < experts_.size(); ++i) {
    freeze_expert(*experts_[i], cfg.experts_bn_train_mode);
    register_module("expert" + std::to_string(i + 1), experts_[i]);
  }
  GateConfig g;
  g.type = cfg.gate_type;
  g.in_channels = tap_channels;
  // Strided convs and k3 s2 p1 pools both give ceil(size / 2) per halving.
  g.in_h = (cfg.input_h + stride - 1) / stride;
  g.in_w = (cfg.input_w + stride - 1) / stride;
  g.pool_h = cfg.pool_h;
  g.pool_w = cfg.pool_w;
  g.fc_features = cfg.fc_features;
  g.num_experts = static_cast<int64_t>(experts_.size());
  g.num_classes = num_classes_;
  g.seed = cfg.seed;
  gate_ = register_module("gating", make_gate(g));
  if (cfg.with_conv) {
    Generator gen(cfg.seed + 1);
    conv3x3_ = register_module("conv3x3",
                               std::make_shared<Conv2d>(num_classes_, num_classes_, 3, 1, 1, 1, 1, /*bias=*/false, gen));
  }
}

ModelOutput MoE::forward_detailed(const Tensor& x, const std::vector<std::string>& taps) {
  MOESEG_CHECK(taps.empty(), "MoE: has no taps (asked for '", taps.empty() ? "" : taps[0], "')");
  std::vector<SegmentationOutput> experts;
  for (size_t i = 0; i < experts_.size(); ++i) {
    const std::string name = "expert" + std::to_string(i + 1);
    {
      TracePrefixScope prefix(name + ".");
      experts.push_back(experts_[i]->forward_with_taps(x, {cfg_.tap}));
    }
    trace_output(name, experts_[i]->type_name() + " (frozen)", experts.back().logits, experts_[i]->num_parameters());
  }
  return combine_members(experts);
}

ModelOutput MoE::combine_members(const std::vector<SegmentationOutput>& experts) {
  MOESEG_CHECK(experts.size() == experts_.size(), "MoE: combine_members got ", experts.size(), " expert outputs for ",
               experts_.size(), " experts");
  ModelOutput out;
  std::vector<Tensor> taps;
  for (const SegmentationOutput& o : experts) {
    auto it = o.taps.find(cfg_.tap);
    MOESEG_CHECK(it != o.taps.end(), "MoE: an expert output lacks the gate's tap '", cfg_.tap, "'");
    taps.push_back(it->second);
    out.member_logits.push_back(o.logits);
  }
  Tensor gate_in = taps.size() == 1 ? taps[0] : concat(taps, 1);
  // Softmax over experts and the weighted sum of their logits in one op (one kernel on a GPU).
  auto [sum, weights] = gate_softmax_combine(gate_->logits(gate_in), out.member_logits);
  trace_output("gating", gate_->type_name(), weights, gate_->num_parameters());
  out.logits = conv3x3_ ? conv3x3_->forward(sum) : sum;
  if (conv3x3_) trace_output("conv3x3", "Conv3x3 (no bias)", out.logits, conv3x3_->num_parameters());
  out.gate = weights;
  return out;
}

SegmentationOutput MoE::forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) {
  SegmentationOutput o;
  o.logits = forward_detailed(x, taps).logits;
  return o;
}

std::optional<std::pair<int64_t, int64_t>> MoE::fixed_input_size() const {
  if (cfg_.pool_h > 0 && cfg_.pool_w > 0) return std::nullopt;   // the adaptive-pool gate takes any size
  return std::make_pair(cfg_.input_h, cfg_.input_w);
}

int64_t MoE::tap_channels(const std::string& tap) const { MOESEG_FAIL("MoE: has no tap '", tap, "'"); }
int64_t MoE::tap_stride(const std::string& tap) const { MOESEG_FAIL("MoE: has no tap '", tap, "'"); }

std::vector<Tensor> MoE::trainable_parameters() const {
  std::vector<Tensor> v = gate_->parameters();
  if (conv3x3_)
    for (auto& p : conv3x3_->parameters()) v.push_back(p);
  return v;
}

}  // namespace moeseg
