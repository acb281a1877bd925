// Every tensor of one forward pass of a SegmentationModel, with a name, for `moeseg model trace`
// and the guided tour docs/moe-internals.md. Through the model interface only (no downcasts):
//   * a model that combines frozen members (the model-level MoE): each member runs
//     forward_detailed(x, member_taps()), then the model's combine_members() on their outputs;
//     these are the steps the MoE's own forward_detailed takes, so the result is the same, but
//     the members' taps (what the gate reads) are kept instead of being dropped;
//   * any other model: forward_detailed(x, tap_names()), so its taps are listed too.
// Rows, in the order the data flows: input, per member its taps and logits, the gate, the
// combined logits, auxiliary losses, extras. Plus the two summaries the trace prints: the gate's
// weight per expert for one image and the argmax class histogram.
// Tests: tests/models/test_forward_inspect.cpp; the CLI through tests/tools/test_docs_tour.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/segmentation_model.h"

namespace moeseg {

struct InspectedTensor {
  std::string name;   // e.g. "expert1.taps[frrnlayer4]", "gate", "logits"
  std::string role;   // where it lives in ModelOutput / what it is, one short phrase
  Tensor tensor;
};

struct InspectedForward {
  ModelOutput output;                  // what forward_detailed returns
  std::vector<std::string> member_names;   // the members' child names ("expert1"), else "member<i>"
  std::vector<InspectedTensor> tensors;    // every tensor of the pass, in data-flow order
};

// One forward pass of `model` (its train/eval mode and grad mode as the caller set them) on x.
InspectedForward inspect_forward(SegmentationModel& model, const Tensor& x);

// The gate's weights [N, G, E] for image `b` averaged over the G groups (G = 1: the weights).
std::vector<double> mean_gate_weights(const Tensor& gate, int64_t b = 0);

// (class, pixel count) of argmax over classes of logits [N, C, H, W] for image `b`, most
// frequent first (ties: lower class first); classes that never win are left out.
std::vector<std::pair<int64_t, int64_t>> argmax_class_histogram(const Tensor& logits, int64_t b = 0);

}  // namespace moeseg
