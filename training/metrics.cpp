// Confusion matrix accumulation (64-bit counts, one private matrix per thread merged in thread
// order: counts are integers, so the result is exact whatever the thread count) and the metrics.
#include "training/metrics.h"

#include <cmath>
#include <limits>

#include <omp.h>

#include "kernels/reduce.h"

namespace moeseg {

ConfusionMatrix::ConfusionMatrix(int64_t num_classes) : c_(num_classes), m_(num_classes * num_classes, 0) {
  MOESEG_CHECK(num_classes > 0, "ConfusionMatrix: num_classes must be positive, got ", num_classes);
}

void ConfusionMatrix::update(const Tensor& pred, const Tensor& target) {
  check_defined(pred, "ConfusionMatrix::update", "pred");
  check_defined(target, "ConfusionMatrix::update", "target");
  MOESEG_CHECK(pred.sizes() == target.sizes(), "ConfusionMatrix::update: prediction ", pred.str(),
               " and target ", target.str(), " differ in shape");
  MOESEG_CHECK(pred.dtype() == DType::Int64 && target.dtype() == DType::Int64,
               "ConfusionMatrix::update: int64 tensors expected, got ", pred.str(), " and ", target.str());
  Tensor p = pred.to(Device{}).contiguous(), t = target.to(Device{}).contiguous();
  const int64_t* pp = p.data<int64_t>();
  const int64_t* tp = t.data<int64_t>();
  const int64_t n = p.numel(), c = c_;
  const int threads = n > (1 << 16) ? omp_get_max_threads() : 1;
  std::vector<std::vector<int64_t>> local(threads, std::vector<int64_t>(c * c, 0));
  int64_t bad_index = -1;
#pragma omp parallel num_threads(threads)
  {
    auto& mine = local[omp_get_thread_num()];
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t g = tp[i], q = pp[i];
      if (g < 0 || g >= c) continue;
      if (q < 0 || q >= c) {
#pragma omp critical
        bad_index = i;
        continue;
      }
      mine[g * c + q]++;
    }
  }
  MOESEG_CHECK(bad_index < 0, "ConfusionMatrix::update: prediction ", pp[bad_index < 0 ? 0 : bad_index],
               " at flat index ", bad_index, " is outside [0, ", c, ")");
  for (auto& l : local)
    for (int64_t k = 0; k < c * c; ++k) m_[k] += l[k];
}

void ConfusionMatrix::update_from_logits(const Tensor& logits, const Tensor& target) {
  check_dim(logits, 4, "ConfusionMatrix::update_from_logits", "logits");
  MOESEG_CHECK(logits.size(1) == c_, "ConfusionMatrix::update_from_logits: logits have ", logits.size(1),
               " classes, the matrix ", c_);
  update(argmax(logits, 1), target);
}

void ConfusionMatrix::merge(const ConfusionMatrix& o) {
  MOESEG_CHECK(o.c_ == c_, "ConfusionMatrix::merge: ", o.c_, " classes vs ", c_);
  for (size_t k = 0; k < m_.size(); ++k) m_[k] += o.m_[k];
}

void ConfusionMatrix::reset() { std::fill(m_.begin(), m_.end(), 0); }

int64_t ConfusionMatrix::total() const {
  int64_t s = 0;
  for (int64_t v : m_) s += v;
  return s;
}

std::vector<double> ConfusionMatrix::iou() const {
  std::vector<double> out(c_);
  for (int64_t k = 0; k < c_; ++k) {
    int64_t tp = at(k, k), row = 0, col = 0;
    for (int64_t j = 0; j < c_; ++j) { row += at(k, j); col += at(j, k); }
    const int64_t denom = row + col - tp;
    out[k] = denom == 0 ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(tp) / denom;
  }
  return out;
}

double nanmean(const std::vector<double>& v) {
  double s = 0;
  int64_t n = 0;
  for (double x : v)
    if (!std::isnan(x)) { s += x; ++n; }
  return n ? s / n : std::numeric_limits<double>::quiet_NaN();
}

double ConfusionMatrix::mean_iou() const { return nanmean(iou()); }

double ConfusionMatrix::pixel_accuracy() const {
  int64_t diag = 0;
  for (int64_t k = 0; k < c_; ++k) diag += at(k, k);
  const int64_t t = total();
  return t ? static_cast<double>(diag) / t : std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> ConfusionMatrix::class_accuracy() const {
  std::vector<double> out(c_);
  for (int64_t k = 0; k < c_; ++k) {
    int64_t row = 0;
    for (int64_t j = 0; j < c_; ++j) row += at(k, j);
    out[k] = row ? static_cast<double>(at(k, k)) / row : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

double ConfusionMatrix::mean_class_accuracy() const { return nanmean(class_accuracy()); }

double ConfusionMatrix::frequency_weighted_iou() const {
  const int64_t t = total();
  if (!t) return std::numeric_limits<double>::quiet_NaN();
  auto ious = iou();
  double s = 0;
  for (int64_t k = 0; k < c_; ++k) {
    int64_t row = 0;
    for (int64_t j = 0; j < c_; ++j) row += at(k, j);
    if (row > 0 && !std::isnan(ious[k])) s += static_cast<double>(row) / t * ious[k];
  }
  return s;
}

nlohmann::json ConfusionMatrix::to_json() const {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json per_class = nlohmann::json::array();
  for (double v : iou()) per_class.push_back(num(v));
  return {{"miou", num(mean_iou())},
          {"pixel_accuracy", num(pixel_accuracy())},
          {"mean_class_accuracy", num(mean_class_accuracy())},
          {"fw_iou", num(frequency_weighted_iou())},
          {"iou", per_class},
          {"pixels", total()}};
}

}  // namespace moeseg
