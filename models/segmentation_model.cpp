// The default forward_detailed and combine_members of every segmentation model
// (models/segmentation_model.h).
#include "models/segmentation_model.h"

#include "core/error.h"

namespace moeseg {

ModelOutput SegmentationModel::forward_detailed(const Tensor& x, const std::vector<std::string>& taps) {
  SegmentationOutput o = forward_with_taps(x, taps);
  ModelOutput out;
  out.logits = o.logits;
  out.taps = std::move(o.taps);
  return out;
}

ModelOutput SegmentationModel::combine_members(const std::vector<SegmentationOutput>& members) {
  MOESEG_FAIL(type_name(), ": does not combine frozen members (given ", members.size(), " member outputs)");
}

}  // namespace moeseg
