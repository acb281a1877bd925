// Segmentation metrics from a confusion matrix, computed as the reference does (spec §1.8):
// rows = ground truth, columns = prediction; only ground-truth labels in [0, C) are counted
// (ignore pixels drop out); per-class IoU = TP / (TP + FP + FN); mIoU = nanmean over classes
// (a class absent from both ground truth and prediction is NaN and skipped); pixel accuracy;
// mean class accuracy (nanmean of per-class recall); frequency-weighted IoU.
// Tested by tests/training/test_metrics.cpp against hand-computed matrices.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace moeseg {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t num_classes);
  // pred and target: int64 tensors of the same shape (e.g. [N, H, W]); a prediction outside
  // [0, C) is an error (it cannot come from argmax over C logits).
  void update(const Tensor& pred, const Tensor& target);
  // argmax over dim 1 of logits [N, C, H, W], then update.
  void update_from_logits(const Tensor& logits, const Tensor& target);
  void merge(const ConfusionMatrix& other);
  void reset();

  int64_t num_classes() const { return c_; }
  int64_t at(int64_t gt, int64_t pred) const { return m_[gt * c_ + pred]; }
  int64_t total() const;

  std::vector<double> iou() const;              // NaN where undefined
  double mean_iou() const;                      // nanmean of iou()
  double pixel_accuracy() const;
  std::vector<double> class_accuracy() const;   // recall per class, NaN where gt is absent
  double mean_class_accuracy() const;
  double frequency_weighted_iou() const;
  nlohmann::json to_json() const;               // all of the above (NaN as null)

 private:
  int64_t c_;
  std::vector<int64_t> m_;
};

double nanmean(const std::vector<double>& v);

}  // namespace moeseg
