// The dataset interface every trainer and loader sees, and the concatenation of datasets
// (the reference trains MoEs and baselines on "highway,urban" = both subsets one after the other).
// get() must be thread-safe: the loader calls it from several worker threads at once, so
// implementations keep only immutable state after construction and decode files per call.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg::data {

struct Sample {
  Tensor image;        // float32 [3,H,W], values in [0,1]
  Tensor label;        // int64 [H,W], class index or the dataset's ignore_index
  std::string id;      // stable name of the sample (file stem)
  std::string domain;  // e.g. "highway", "urban", "dusk", a Cityscapes city
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  virtual Sample get(size_t i) const = 0;   // thread-safe; throws moeseg::Error naming the files at fault
  virtual int num_classes() const = 0;
  virtual int ignore_index() const = 0;
  virtual std::string name() const = 0;
};

// The samples of several datasets in order. All parts must agree on num_classes and
// ignore_index (a mismatch would silently mix label spaces), else the constructor throws.
class ConcatDataset : public Dataset {
 public:
  explicit ConcatDataset(std::vector<std::shared_ptr<const Dataset>> parts);
  size_t size() const override { return offsets_.back(); }
  Sample get(size_t i) const override;
  int num_classes() const override { return parts_.front()->num_classes(); }
  int ignore_index() const override { return parts_.front()->ignore_index(); }
  std::string name() const override;
  const std::vector<std::shared_ptr<const Dataset>>& parts() const { return parts_; }

 private:
  std::vector<std::shared_ptr<const Dataset>> parts_;
  std::vector<size_t> offsets_;   // offsets_[k] = first index of part k; last = total size
};

// Some samples of another dataset, by index (a held-out tail, the first N of a list).
class IndexedDataset : public Dataset {
 public:
  IndexedDataset(std::shared_ptr<const Dataset> base, std::vector<size_t> indices, std::string name);
  size_t size() const override { return indices_.size(); }
  Sample get(size_t i) const override { return base_->get(indices_.at(i)); }
  int num_classes() const override { return base_->num_classes(); }
  int ignore_index() const override { return base_->ignore_index(); }
  std::string name() const override { return name_; }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<size_t> indices_;
  std::string name_;
};

// File checks of the loaders that never throw: a path the OS refuses (too long, bad bytes from a
// hostile list file) is "not a file", and the loader's own error names it.
bool is_file_noexcept(const std::string& path);
bool is_dir_noexcept(const std::string& path);

// Checks a sample against its dataset's contract (shapes, dtypes, label range); the message
// names the sample id. Used by tests and by loaders in debug runs.
void check_sample(const Sample& s, int num_classes, int ignore_index);

}  // namespace moeseg::data
