// The frozen-member cache of gate training (train.cache_expert_outputs). A model that combines
// frozen members (SegmentationModel::frozen_members, e.g. the model-level MoE) is trained only in
// its combination; the members' outputs (their logits and the taps the combination reads) for a
// training input are computed once, at batch size 1, and kept in memory, keyed by the sample
// index and a 64-bit hash of the input pixels: a random augmentation that changes the input
// (flip, crop, jitter) just misses the cache and computes afresh, so the cache is never wrong,
// only less useful. Batch size 1 for every member pass, so a resumed run (cold cache) computes
// the same numbers as an uninterrupted one (warm cache). Refused when the members' outputs are
// not constant (the reference's experts-BatchNorm-in-train-mode quirk).
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "data/loader.h"
#include "models/segmentation_model.h"

namespace moeseg {

class MemberCache {
 public:
  explicit MemberCache(SegmentationModel& model);   // throws unless the model combines constant members
  // The members' outputs for the batch (one SegmentationOutput per member, batched), from the
  // cache or computed per sample.
  std::vector<SegmentationOutput> lookup(const data::Batch& b);
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  SegmentationModel& model_;
  std::vector<std::shared_ptr<SegmentationModel>> members_;
  std::vector<std::string> taps_;
  std::unordered_map<uint64_t, std::vector<SegmentationOutput>> map_;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace moeseg
