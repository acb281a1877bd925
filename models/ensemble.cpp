// Mean / max ensembles of frozen experts (see ensemble.h).
#include "models/ensemble.h"

#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "models/frrn_trace.h"

namespace moeseg {

Ensemble::Ensemble(std::vector<std::shared_ptr<SegmentationModel>> experts, const std::string& mode)
    : SegmentationModel("Ensemble"), experts_(std::move(experts)), mode_(mode) {
  MOESEG_CHECK(mode == "mean" || mode == "max", "ensemble: unknown mode '", mode, "' (known: mean, max)");
  MOESEG_CHECK(!experts_.empty(), "ensemble: needs at least one expert");
  for (size_t i = 0; i < experts_.size(); ++i) {
    MOESEG_CHECK(experts_[i]->num_classes() == experts_[0]->num_classes(), "ensemble: expert ", i + 1, " has ",
                 experts_[i]->num_classes(), " classes, expert 1 has ", experts_[0]->num_classes());
    freeze_expert(*experts_[i], false);
    register_module("expert" + std::to_string(i + 1), experts_[i]);
  }
}

ModelOutput Ensemble::forward_detailed(const Tensor& x, const std::vector<std::string>& taps) {
  MOESEG_CHECK(taps.empty(), "ensemble: has no taps (asked for '", taps.empty() ? "" : taps[0], "')");
  ModelOutput out;
  for (size_t i = 0; i < experts_.size(); ++i) {
    const std::string name = "expert" + std::to_string(i + 1);
    {
      TracePrefixScope prefix(name + ".");
      out.member_logits.push_back(experts_[i]->forward(x));
    }
    trace_output(name, experts_[i]->type_name() + " (frozen)", out.member_logits.back(), experts_[i]->num_parameters());
  }
  if (mode_ == "mean") {
    Tensor s = out.member_logits[0];
    for (size_t i = 1; i < out.member_logits.size(); ++i) s = add(s, out.member_logits[i]);
    out.logits = scale(s, 1.0 / static_cast<double>(out.member_logits.size()));
  } else {
    // Stack on a new leading dim and take the max over it (torch.amax over the stack).
    std::vector<Tensor> st;
    for (auto& l : out.member_logits) st.push_back(l.unsqueeze(0));
    out.logits = max(concat(st, 0), 0);
  }
  trace_output(mode_, "ensemble " + mode_, out.logits, 0);
  return out;
}

SegmentationOutput Ensemble::forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) {
  SegmentationOutput o;
  o.logits = forward_detailed(x, taps).logits;
  return o;
}

int64_t Ensemble::tap_channels(const std::string& tap) const { MOESEG_FAIL("ensemble: has no tap '", tap, "'"); }
int64_t Ensemble::tap_stride(const std::string& tap) const { MOESEG_FAIL("ensemble: has no tap '", tap, "'"); }

}  // namespace moeseg
