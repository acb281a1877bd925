// Mean / max ensembles of frozen experts (see ensemble.h).
#include "models/ensemble.h"

#include "core/named_enum.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "models/frrn_trace.h"

namespace moeseg {

namespace {
const NamedValue<EnsembleMode> kEnsembleModeNames[] = {{EnsembleMode::Mean, "mean"}, {EnsembleMode::Max, "max"}};
}  // namespace

EnsembleMode parse_ensemble_mode(const std::string& name, const std::string& where) {
  return parse_named(kEnsembleModeNames, name, where);
}
std::string to_string(EnsembleMode m) { return name_of(kEnsembleModeNames, m); }

Ensemble::Ensemble(std::vector<std::shared_ptr<SegmentationModel>> experts, EnsembleMode mode)
    : SegmentationModel("Ensemble"), experts_(std::move(experts)), mode_(mode) {
  (void)to_string(mode);   // a value outside the enum (a cast) fails here, not at the first forward
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
  if (mode_ == EnsembleMode::Mean) {
    Tensor s = out.member_logits[0];
    for (size_t i = 1; i < out.member_logits.size(); ++i) s = add(s, out.member_logits[i]);
    out.logits = scale(s, 1.0 / static_cast<double>(out.member_logits.size()));
  } else {
    // Stack on a new leading dim and take the max over it (torch.amax over the stack).
    std::vector<Tensor> st;
    for (auto& l : out.member_logits) st.push_back(l.unsqueeze(0));
    out.logits = max(concat(st, 0), 0);
  }
  const std::string mode = to_string(mode_);
  trace_output(mode, "ensemble " + mode, out.logits, 0);
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
