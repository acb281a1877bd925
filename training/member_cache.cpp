// The frozen-member output cache (training/member_cache.h).
#include "training/member_cache.h"

#include "core/autograd.h"
#include "core/error.h"
#include "kernels/shape_ops.h"

namespace moeseg {

namespace {
uint64_t hash_tensor(const Tensor& t, uint64_t h) {
  Tensor c = t.to(Device{}).contiguous();
  const auto* p = static_cast<const unsigned char*>(c.raw_data());
  const size_t n = static_cast<size_t>(c.numel()) * dtype_size(c.dtype());
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
}  // namespace

MemberCache::MemberCache(SegmentationModel& model)
    : model_(model), members_(model.frozen_members()), taps_(model.member_taps()) {
  MOESEG_CHECK(!members_.empty(), "train.cache_expert_outputs: ", model.type_name(),
               " does not combine frozen members (only a mixture of experts does)");
  MOESEG_CHECK(model.member_outputs_constant(), "train.cache_expert_outputs cannot be used with experts_bn_train_mode ",
               "(the experts' outputs change while training)");
}

std::vector<SegmentationOutput> MemberCache::lookup(const data::Batch& b) {
  const size_t E = members_.size();
  std::vector<std::vector<SegmentationOutput>> per_sample;
  for (int64_t i = 0; i < b.images.size(0); ++i) {
    Tensor img = b.images.narrow(0, i, 1).contiguous();
    const uint64_t key = hash_tensor(img, 1469598103934665603ull ^ (b.indices[i] * 0x9E3779B97F4A7C15ull));
    auto it = map_.find(key);
    if (it == map_.end()) {
      NoGradGuard ng;
      std::vector<SegmentationOutput> outs;
      for (auto& m : members_) {
        SegmentationOutput so = m->forward_with_taps(img, taps_);
        so.logits = so.logits.contiguous();
        for (auto& [name, t] : so.taps) t = t.contiguous();
        outs.push_back(std::move(so));
      }
      it = map_.emplace(key, std::move(outs)).first;
      ++misses_;
    } else {
      ++hits_;
    }
    per_sample.push_back(it->second);
  }
  std::vector<SegmentationOutput> batched(E);
  for (size_t e = 0; e < E; ++e) {
    auto stack = [&](auto pick) {
      std::vector<Tensor> parts;
      for (auto& s : per_sample) parts.push_back(pick(s[e]));
      return parts.size() == 1 ? parts[0] : concat(parts, 0);
    };
    batched[e].logits = stack([](const SegmentationOutput& o) { return o.logits; });
    for (const std::string& tap : taps_)
      batched[e].taps[tap] = stack([&](const SegmentationOutput& o) { return o.taps.at(tap); });
  }
  return batched;
}

}  // namespace moeseg
