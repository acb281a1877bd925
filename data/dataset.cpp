// ConcatDataset and the sample contract check.
#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace moeseg::data {

ConcatDataset::ConcatDataset(std::vector<std::shared_ptr<const Dataset>> parts) : parts_(std::move(parts)) {
  MOESEG_CHECK(!parts_.empty(), "ConcatDataset: no datasets given");
  offsets_.push_back(0);
  for (auto& p : parts_) {
    MOESEG_CHECK(p != nullptr, "ConcatDataset: null dataset");
    MOESEG_CHECK(p->num_classes() == parts_.front()->num_classes() && p->ignore_index() == parts_.front()->ignore_index(),
                 "ConcatDataset: '", p->name(), "' has ", p->num_classes(), " classes / ignore ", p->ignore_index(), " but '",
                 parts_.front()->name(), "' has ", parts_.front()->num_classes(), " / ", parts_.front()->ignore_index());
    offsets_.push_back(offsets_.back() + p->size());
  }
}

Sample ConcatDataset::get(size_t i) const {
  MOESEG_CHECK(i < size(), "ConcatDataset '", name(), "': index ", i, " out of range (size ", size(), ")");
  size_t k = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), i) - offsets_.begin()) - 1;
  return parts_[k]->get(i - offsets_[k]);
}

std::string ConcatDataset::name() const {
  std::string n;
  for (auto& p : parts_) {
    if (!n.empty()) n += ',';
    n += p->name();
  }
  return n;
}

IndexedDataset::IndexedDataset(std::shared_ptr<const Dataset> base, std::vector<size_t> indices, std::string name)
    : base_(std::move(base)), indices_(std::move(indices)), name_(std::move(name)) {
  for (size_t i : indices_)
    MOESEG_CHECK(i < base_->size(), "dataset ", name_, ": index ", i, " is past the end of ", base_->name(), " (",
                 base_->size(), " samples)");
}

bool is_file_noexcept(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

bool is_dir_noexcept(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

void check_sample(const Sample& s, int num_classes, int ignore_index) {
  MOESEG_CHECK(s.image.defined() && s.image.dim() == 3 && s.image.size(0) == 3 && s.image.dtype() == DType::Float32,
               "sample '", s.id, "': image must be float32 [3,H,W], got ", s.image.defined() ? s.image.str() : "undefined");
  MOESEG_CHECK(s.label.defined() && s.label.dim() == 2 && s.label.dtype() == DType::Int64, "sample '", s.id,
               "': label must be int64 [H,W], got ", s.label.defined() ? s.label.str() : "undefined");
  MOESEG_CHECK(s.label.size(0) == s.image.size(1) && s.label.size(1) == s.image.size(2), "sample '", s.id, "': image ",
               s.image.str(), " and label ", s.label.str(), " differ in size");
  Tensor l = s.label.contiguous();
  const int64_t* p = l.data<int64_t>();
  for (int64_t i = 0; i < l.numel(); ++i)
    MOESEG_CHECK((p[i] >= 0 && p[i] < num_classes) || p[i] == ignore_index, "sample '", s.id, "': label value ", p[i],
                 " outside [0, ", num_classes, ") and not the ignore index ", ignore_index);
  Tensor im = s.image.contiguous();
  const float* q = im.data<float>();
  for (int64_t i = 0; i < im.numel(); ++i)
    MOESEG_CHECK(q[i] >= 0.f && q[i] <= 1.f, "sample '", s.id, "': image value ", q[i], " outside [0,1]");
}

}  // namespace moeseg::data
