// The default forward_detailed and combine_members of every segmentation model
// (models/segmentation_model.h).
#include "models/segmentation_model.h"

#include "core/error.h"
#include "models/moe_insertion.h"

namespace moeseg {

ModelOutput SegmentationModel::forward_detailed(const Tensor& x, const std::vector<std::string>& taps) {
  SegmentationOutput o = forward_with_taps(x, taps);
  ModelOutput out;
  out.logits = o.logits;
  out.taps = std::move(o.taps);
  // Sparse MoE layers anywhere in the tree (inserted by name, models/moe_insertion.h): their
  // weighted balancing losses for the trainer, their routing for the evaluation.
  for (auto& [name, layer] : sparse_moe_layers(*this)) {
    for (auto& [k, v] : layer->aux_losses()) out.aux_losses[k] = v;
    out.extras[name + ".expert_indices"] = layer->last_indices();
    out.extras[name + ".expert_weights"] = layer->last_weights();
  }
  return out;
}

ModelOutput SegmentationModel::combine_members(const std::vector<SegmentationOutput>& members) {
  MOESEG_FAIL(type_name(), ": does not combine frozen members (given ", members.size(), " member outputs)");
}

}  // namespace moeseg
