// inspect_forward and the trace's two summaries (see models/forward_inspect.h).
#include "models/forward_inspect.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "kernels/reduce.h"

namespace moeseg {

namespace {

// The member's child name in `model` (the MoE registers its experts as expert1, expert2, ...).
std::string member_name(const SegmentationModel& model, const std::shared_ptr<SegmentationModel>& member, size_t i) {
  for (auto& [name, child] : model.children())
    if (child.get() == member.get()) return name;
  return "member" + std::to_string(i + 1);
}

void add_named(std::vector<InspectedTensor>& rows, const std::string& prefix, const std::string& role,
               const std::map<std::string, Tensor>& tensors) {
  for (auto& [name, t] : tensors) rows.push_back({prefix + "[" + name + "]", role, t});
}

}  // namespace

InspectedForward inspect_forward(SegmentationModel& model, const Tensor& x) {
  InspectedForward r;
  r.tensors.push_back({"input", "the image batch [N, 3, H, W], RGB in [0, 1]", x});
  const std::vector<std::shared_ptr<SegmentationModel>> members = model.frozen_members();
  if (!members.empty()) {
    const std::vector<std::string> taps = model.member_taps();
    std::vector<SegmentationOutput> outs;
    for (size_t i = 0; i < members.size(); ++i) {
      MOESEG_CHECK(members[i], model.type_name(), ": frozen member ", i + 1, " is null");
      ModelOutput o = members[i]->forward_detailed(x, taps);
      r.member_names.push_back(member_name(model, members[i], i));
      add_named(r.tensors, r.member_names.back() + ".taps", "what the gate reads (member_taps())", o.taps);
      r.tensors.push_back({r.member_names.back() + ".logits",
                           "ModelOutput.member_logits[" + std::to_string(i) + "]", o.logits});
      outs.push_back({o.logits, std::move(o.taps)});
    }
    r.output = model.combine_members(outs);
  } else {
    r.output = model.forward_detailed(x, model.tap_names());
    add_named(r.tensors, "taps", "ModelOutput.taps", r.output.taps);
    for (size_t i = 0; i < r.output.member_logits.size(); ++i) {
      r.member_names.push_back("member" + std::to_string(i + 1));
      r.tensors.push_back({r.member_names.back() + ".logits", "ModelOutput.member_logits[" + std::to_string(i) + "]",
                           r.output.member_logits[i]});
    }
  }
  if (r.output.gate.defined())
    r.tensors.push_back({"gate", "ModelOutput.gate: weights [N, G, E], softmax over E", r.output.gate});
  r.tensors.push_back({"logits", "ModelOutput.logits: the model's prediction", r.output.logits});
  add_named(r.tensors, "aux_losses", "ModelOutput.aux_losses", r.output.aux_losses);
  add_named(r.tensors, "extras", "ModelOutput.extras", r.output.extras);
  return r;
}

std::vector<double> mean_gate_weights(const Tensor& gate, int64_t b) {
  MOESEG_CHECK(gate.defined() && gate.dim() == 3, "mean_gate_weights: gate must be [N, G, E], got ",
               gate.defined() ? gate.str() : std::string("an undefined tensor"));
  MOESEG_CHECK(b >= 0 && b < gate.size(0), "mean_gate_weights: image ", b, " out of range for gate ", gate.str());
  const int64_t G = gate.size(1), E = gate.size(2);
  const std::vector<float> w = gate.select(0, b).to(DType::Float32).to_vector<float>();
  std::vector<double> mean(static_cast<size_t>(E), 0.0);
  for (int64_t g = 0; g < G; ++g)   // fixed order: the same sum on every machine
    for (int64_t e = 0; e < E; ++e) mean[static_cast<size_t>(e)] += w[static_cast<size_t>(g * E + e)];
  for (double& m : mean) m /= static_cast<double>(G);
  return mean;
}

std::vector<std::pair<int64_t, int64_t>> argmax_class_histogram(const Tensor& logits, int64_t b) {
  MOESEG_CHECK(logits.defined() && logits.dim() == 4, "argmax_class_histogram: logits must be [N, C, H, W], got ",
               logits.defined() ? logits.str() : std::string("an undefined tensor"));
  MOESEG_CHECK(b >= 0 && b < logits.size(0), "argmax_class_histogram: image ", b, " out of range for logits ",
               logits.str());
  const std::vector<int64_t> pred = argmax(logits.select(0, b), 0).to_vector<int64_t>();
  std::vector<int64_t> count(static_cast<size_t>(logits.size(1)), 0);
  for (int64_t c : pred) ++count[static_cast<size_t>(c)];
  std::vector<std::pair<int64_t, int64_t>> h;
  for (size_t c = 0; c < count.size(); ++c)
    if (count[c]) h.push_back({static_cast<int64_t>(c), count[c]});
  std::stable_sort(h.begin(), h.end(), [](auto& a, auto& b2) { return a.second > b2.second; });
  return h;
}

}  // namespace moeseg
