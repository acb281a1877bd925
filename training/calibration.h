// Calibration and uncertainty-quality metrics over valid pixels (label != ignore_index), pooled
// over every pixel of every batch added (a streaming accumulator), and averaged per image as the
// reference does (PerImageCalibration, ECE/MCE/Brier/NLL only). Inputs per batch: the mixture probabilities p̄ [N, C, H, W], labels int64
// [N, H, W], and one normalised uncertainty u ∈ [0, 1] [N, H, W] (training/uncertainty.h).
// correct = (argmax_c p̄_c == label), first maximum.
//
// Standard forms (confidence q = max_c p̄_c):
//   ECE = Σ_b (n_b / n) |acc_b − conf_b|, MCE = max over non-empty bins |acc_b − conf_b|, 15 equal-
//         width bins over (0, 1]: bin b = ((b)/15, (b+1)/15], index = ceil(15 q) − 1 clamped to
//         [0, 14] (q = 0 goes to bin 0); acc_b / conf_b = mean correctness / confidence in the bin;
//   brier_multiclass = (1/n) Σ_pixels Σ_c (p̄_c − onehot(label)_c)²   (the multi-class form, 0…2);
//   nll = (1/n) Σ −log max(p̄_label, 1e-15).
// Reference forms (§1.11: between the correctness indicator and the measure's confidence q = 1 − u):
//   ece_reference / mce_reference: the same bins over q;
//   brier_reference = (1/n) Σ (q − correct)²  (scikit-learn brier_score_loss);
//   nll_reference = (1/n) Σ −[correct log q + (1 − correct) log(1 − q)], q clipped to [1e-15, 1 − 1e-15]
//                   (scikit-learn log_loss).
// AUROC of misclassification detection: positives = incorrect pixels, score = u; the Mann–Whitney
//   form (R₊ − n₊(n₊+1)/2) / (n₊ n₋) with R₊ the sum of the positives' ranks, ties given their
//   average rank (= sklearn roc_auc_score). Exact: every valid pixel's (u, correct) is kept
//   (9 bytes a pixel: 300 images of 64×96 ≈ 17 MB). NaN if a class is absent.
// Conditional correctness at thresholds t_k = 0.01 + 0.02 k, k = 0..49 (0.01…0.99): a pixel is
//   certain iff u < t (i.e. 1 − conf < t); with n_ac = accurate ∧ certain, n_iu = inaccurate ∧
//   uncertain:
//   p_accurate_given_certain = n_ac / n_certain, p_uncertain_given_inaccurate = n_iu / n_inaccurate,
//   pavpu_reference = (n_ac + n_iu) / (n_certain + n_inaccurate)   (as the reference codes it),
//   pavpu_standard  = (n_ac + n_iu) / n                              (the usual PAvPU).
//   A ratio with a zero denominator is NaN (written as null in JSON).
// Tested by tests/training/test_uncertainty.cpp (fixtures of make_uncertainty_fixtures.py).
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace moeseg {

struct ReliabilityBin {
  double lower = 0, upper = 0;
  int64_t count = 0;
  double accuracy = 0, confidence = 0;   // means over the bin (0 when empty)
};

struct CalibrationMetrics {
  int64_t valid_pixels = 0;
  double accuracy = 0;
  // standard (confidence = max probability)
  double ece = 0, mce = 0, brier_multiclass = 0, nll = 0;
  std::vector<ReliabilityBin> bins;
  // reference (confidence = 1 − normalised uncertainty)
  double ece_reference = 0, mce_reference = 0, brier_reference = 0, nll_reference = 0;
  std::vector<ReliabilityBin> bins_reference;
  double auroc = 0;
  std::vector<double> thresholds, p_accurate_given_certain, p_uncertain_given_inaccurate, pavpu_reference,
      pavpu_standard;
};

std::vector<double> conditional_thresholds();   // 0.01, 0.03, ..., 0.99

// Rank-based AUROC (Mann–Whitney, average ranks for ties); positive[i] = 1 marks a positive.
double auroc_rank(const std::vector<double>& score, const std::vector<uint8_t>& positive);

class CalibrationAccumulator {
 public:
  explicit CalibrationAccumulator(int64_t ignore_index = 255, int bins = 15);
  // mean_probs [N, C, H, W], labels int64 [N, H, W], uncertainty [N, H, W] in [0, 1].
  void add(const Tensor& mean_probs, const Tensor& labels, const Tensor& uncertainty);
  CalibrationMetrics result() const;

 private:
  struct Bins {
    std::vector<int64_t> count;
    std::vector<double> conf_sum, correct_sum;
  };
  static void add_to_bins(Bins& b, double q, bool correct);
  static double finish_bins(const Bins& b, int64_t n, double* mce, std::vector<ReliabilityBin>* out);
  int64_t ignore_index_;
  int nbins_;
  int64_t n_ = 0, n_correct_ = 0;
  double brier_mc_ = 0, nll_ = 0, brier_ref_ = 0, nll_ref_ = 0;
  Bins bins_, bins_ref_;
  std::vector<double> thresholds_;
  std::vector<int64_t> n_certain_, n_acc_cert_, n_inacc_unc_;   // per threshold (the device path's counts)
  // The CPU path's: pixels by the first threshold index k with u < t_k (thresholds_.size() = never
  // certain), correct and incorrect apart; result() turns them into the per-threshold counts.
  std::vector<int64_t> first_certain_correct_, first_certain_incorrect_;
  std::vector<double> scores_;
  std::vector<uint8_t> incorrect_;
};

// The reference's averaging (§1.11: each metric on one image's valid pixels, then the mean over
// images) of ECE, MCE, Brier and NLL in both forms; images without a valid pixel are skipped.
struct PerImageMeans {
  int64_t images = 0;
  double ece = 0, mce = 0, brier_multiclass = 0, nll = 0;
  double ece_reference = 0, mce_reference = 0, brier_reference = 0, nll_reference = 0;
};
class PerImageCalibration {
 public:
  explicit PerImageCalibration(int64_t ignore_index = 255, int bins = 15) : ignore_index_(ignore_index), bins_(bins) {}
  void add(const Tensor& mean_probs, const Tensor& labels, const Tensor& uncertainty);   // as CalibrationAccumulator
  PerImageMeans result() const;   // NaN everywhere when no image had a valid pixel

 private:
  int64_t ignore_index_;
  int bins_;
  PerImageMeans sums_;
};
nlohmann::json per_image_json(const PerImageMeans& m);

// JSON of the metrics (NaN as null), bins included.
nlohmann::json calibration_json(const CalibrationMetrics& m);

}  // namespace moeseg
