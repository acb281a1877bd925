// Calibration metrics (definitions in training/calibration.h): a streaming accumulator of bin
// counts and sums, per-threshold counts, and the exact (score, incorrect) list for the AUROC.
// Sums run in float64, in pixel order, so results are deterministic. CUDA probabilities: one launch
// of the calibration kernel per batch (kernels/uncertainty_measures.h: block partials summed in a
// fixed order, so also deterministic; the batch's sums are added here), only the per-pixel
// (uncertainty, correct) pairs of the AUROC come back to the host.
#include "training/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "kernels/device_fallback.h"
#include "kernels/uncertainty_measures.h"

namespace moeseg {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
double ratio(int64_t a, int64_t b) { return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : kNaN; }
}  // namespace

std::vector<double> conditional_thresholds() {
  std::vector<double> t;
  for (int k = 0; k < 50; ++k) t.push_back(0.01 + 0.02 * k);
  return t;
}

double auroc_rank(const std::vector<double>& score, const std::vector<uint8_t>& positive) {
  MOESEG_CHECK(score.size() == positive.size(), "auroc_rank: ", score.size(), " scores vs ", positive.size(), " labels");
  const size_t n = score.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] < score[b]; });
  double rank_sum_pos = 0;
  int64_t npos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && score[order[j]] == score[order[i]]) ++j;
    const double avg_rank = 0.5 * (static_cast<double>(i + 1) + static_cast<double>(j));   // ranks i+1..j
    for (size_t k = i; k < j; ++k)
      if (positive[order[k]]) rank_sum_pos += avg_rank, ++npos;
    i = j;
  }
  const int64_t nneg = static_cast<int64_t>(n) - npos;
  if (npos == 0 || nneg == 0) return kNaN;
  return (rank_sum_pos - 0.5 * static_cast<double>(npos) * static_cast<double>(npos + 1)) /
         (static_cast<double>(npos) * static_cast<double>(nneg));
}

CalibrationAccumulator::CalibrationAccumulator(int64_t ignore_index, int bins)
    : ignore_index_(ignore_index), nbins_(bins), thresholds_(conditional_thresholds()) {
  MOESEG_CHECK(bins >= 1, "CalibrationAccumulator: bins must be >= 1, got ", bins);
  for (Bins* b : {&bins_, &bins_ref_}) {
    b->count.assign(static_cast<size_t>(bins), 0);
    b->conf_sum.assign(static_cast<size_t>(bins), 0.0);
    b->correct_sum.assign(static_cast<size_t>(bins), 0.0);
  }
  n_certain_.assign(thresholds_.size(), 0);
  n_acc_cert_.assign(thresholds_.size(), 0);
  n_inacc_unc_.assign(thresholds_.size(), 0);
  first_certain_correct_.assign(thresholds_.size() + 1, 0);
  first_certain_incorrect_.assign(thresholds_.size() + 1, 0);
}

void CalibrationAccumulator::add_to_bins(Bins& b, double q, bool correct) {
  const int nb = static_cast<int>(b.count.size());
  int idx = static_cast<int>(std::ceil(q * nb)) - 1;
  idx = std::clamp(idx, 0, nb - 1);
  b.count[idx] += 1;
  b.conf_sum[idx] += q;
  b.correct_sum[idx] += correct ? 1.0 : 0.0;
}

double CalibrationAccumulator::finish_bins(const Bins& b, int64_t n, double* mce, std::vector<ReliabilityBin>* out) {
  const int nb = static_cast<int>(b.count.size());
  double ece = 0;
  *mce = 0;
  out->clear();
  for (int i = 0; i < nb; ++i) {
    ReliabilityBin r;
    r.lower = static_cast<double>(i) / nb;
    r.upper = static_cast<double>(i + 1) / nb;
    r.count = b.count[i];
    if (r.count > 0) {
      r.accuracy = b.correct_sum[i] / static_cast<double>(r.count);
      r.confidence = b.conf_sum[i] / static_cast<double>(r.count);
      const double gap = std::abs(r.accuracy - r.confidence);
      ece += gap * static_cast<double>(r.count) / static_cast<double>(n);
      *mce = std::max(*mce, gap);
    }
    out->push_back(r);
  }
  return ece;
}

void CalibrationAccumulator::add(const Tensor& mean_probs_in, const Tensor& labels_in, const Tensor& uncertainty_in) {
  MOESEG_CHECK(mean_probs_in.dim() == 4, "calibration: probabilities ", mean_probs_in.str(), ", expected [N, C, H, W]");
  const int64_t N = mean_probs_in.size(0), C = mean_probs_in.size(1), H = mean_probs_in.size(2),
                W = mean_probs_in.size(3), HW = H * W;
  MOESEG_CHECK(labels_in.dtype() == DType::Int64 && labels_in.shape() == Shape({N, H, W}), "calibration: labels ",
               labels_in.str(), ", expected int64 [", N, ", ", H, ", ", W, "]");
  MOESEG_CHECK(uncertainty_in.shape() == Shape({N, H, W}), "calibration: uncertainty ", uncertainty_in.str(),
               ", expected [", N, ", ", H, ", ", W, "]");
  if (on_cuda(mean_probs_in)) {
    const Device d = mean_probs_in.device();
    const CalibrationCounts k =
        calibration_counts(mean_probs_in, labels_in.to(d), uncertainty_in.detach().to(d), ignore_index_, nbins_);
    n_ += k.n;
    n_correct_ += k.n_correct;
    brier_mc_ += k.brier_multiclass_sum;
    nll_ += k.nll_sum;
    brier_ref_ += k.brier_reference_sum;
    nll_ref_ += k.nll_reference_sum;
    for (size_t b = 0; b < static_cast<size_t>(nbins_); ++b) {
      bins_.count[b] += k.count[b], bins_.conf_sum[b] += k.conf_sum[b], bins_.correct_sum[b] += k.correct_sum[b];
      bins_ref_.count[b] += k.count_reference[b], bins_ref_.conf_sum[b] += k.conf_sum_reference[b];
      bins_ref_.correct_sum[b] += k.correct_sum_reference[b];
    }
    MOESEG_CHECK(k.n_certain.size() == thresholds_.size(), "calibration: ", k.n_certain.size(), " thresholds from the kernel, expected ",
                 thresholds_.size());
    for (size_t t = 0; t < thresholds_.size(); ++t) {
      n_certain_[t] += k.n_certain[t];
      n_acc_cert_[t] += k.n_accurate_certain[t];
      n_inacc_unc_[t] += k.n_inaccurate_uncertain[t];
    }
    scores_.insert(scores_.end(), k.scores.begin(), k.scores.end());
    incorrect_.insert(incorrect_.end(), k.incorrect.begin(), k.incorrect.end());
    return;
  }
  Tensor p = mean_probs_in.detach().to(Device{}).to(DType::Float64).contiguous();
  Tensor y = labels_in.to(Device{}).contiguous();
  Tensor u = uncertainty_in.detach().to(Device{}).to(DType::Float64).contiguous();
  const double* pp = p.data<double>();
  const int64_t* yy = y.data<int64_t>();
  const double* uu = u.data<double>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      const int64_t label = yy[n * HW + i];
      if (label == ignore_index_) continue;
      MOESEG_CHECK(label >= 0 && label < C, "calibration: label ", label, " outside [0, ", C, ") and not the ignore index ",
                   ignore_index_);
      const double* px = pp + n * C * HW + i;
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (px[c * HW] > px[best * HW]) best = c;
      const bool correct = best == label;
      const double qmax = px[best * HW];
      const double unc = uu[n * HW + i];
      ++n_;
      n_correct_ += correct;
      add_to_bins(bins_, qmax, correct);
      double b = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double d = px[c * HW] - (c == label ? 1.0 : 0.0);
        b += d * d;
      }
      brier_mc_ += b;
      nll_ += -std::log(std::max(px[label * HW], 1e-15));
      const double q = 1.0 - unc;
      add_to_bins(bins_ref_, q, correct);
      brier_ref_ += (q - (correct ? 1.0 : 0.0)) * (q - (correct ? 1.0 : 0.0));
      const double qc = std::clamp(q, 1e-15, 1.0 - 1e-15);
      nll_ref_ += correct ? -std::log(qc) : -std::log(1.0 - qc);
      // certain at t_k iff unc < t_k: from the first such k on (the thresholds increase; NaN: never)
      const size_t first = static_cast<size_t>(
          std::upper_bound(thresholds_.begin(), thresholds_.end(), unc) - thresholds_.begin());
      ++(correct ? first_certain_correct_ : first_certain_incorrect_)[first];
      scores_.push_back(unc);
      incorrect_.push_back(correct ? 0 : 1);
    }
}

CalibrationMetrics CalibrationAccumulator::result() const {
  CalibrationMetrics m;
  m.valid_pixels = n_;
  if (n_ == 0) {
    m.accuracy = m.ece = m.mce = m.brier_multiclass = m.nll = kNaN;
    m.ece_reference = m.mce_reference = m.brier_reference = m.nll_reference = m.auroc = kNaN;
  } else {
    const double n = static_cast<double>(n_);
    m.accuracy = static_cast<double>(n_correct_) / n;
    m.ece = finish_bins(bins_, n_, &m.mce, &m.bins);
    m.ece_reference = finish_bins(bins_ref_, n_, &m.mce_reference, &m.bins_reference);
    m.brier_multiclass = brier_mc_ / n;
    m.nll = nll_ / n;
    m.brier_reference = brier_ref_ / n;
    m.nll_reference = nll_ref_ / n;
    m.auroc = auroc_rank(scores_, incorrect_);
  }
  m.thresholds = thresholds_;
  const int64_t n_inacc = n_ - n_correct_;
  // The CPU path's histograms as counts per threshold: certain at k = first index <= k.
  std::vector<int64_t> certain = n_certain_, acc_cert = n_acc_cert_, inacc_unc = n_inacc_unc_;
  int64_t correct_upto = 0, incorrect_upto = 0, incorrect_all = 0;
  for (int64_t c : first_certain_incorrect_) incorrect_all += c;
  for (size_t k = 0; k < thresholds_.size(); ++k) {
    correct_upto += first_certain_correct_[k];
    incorrect_upto += first_certain_incorrect_[k];
    certain[k] += correct_upto + incorrect_upto;
    acc_cert[k] += correct_upto;
    inacc_unc[k] += incorrect_all - incorrect_upto;
  }
  for (size_t k = 0; k < thresholds_.size(); ++k) {
    m.p_accurate_given_certain.push_back(ratio(acc_cert[k], certain[k]));
    m.p_uncertain_given_inaccurate.push_back(ratio(inacc_unc[k], n_inacc));
    m.pavpu_reference.push_back(ratio(acc_cert[k] + inacc_unc[k], certain[k] + n_inacc));
    m.pavpu_standard.push_back(ratio(acc_cert[k] + inacc_unc[k], n_));
  }
  return m;
}

void PerImageCalibration::add(const Tensor& mean_probs, const Tensor& labels, const Tensor& uncertainty) {
  MOESEG_CHECK(mean_probs.dim() == 4 && labels.dim() == 3 && uncertainty.dim() == 3 &&
                   labels.size(0) == mean_probs.size(0) && uncertainty.size(0) == mean_probs.size(0),
               "per-image calibration: probabilities ", mean_probs.str(), ", labels ", labels.str(), ", uncertainty ",
               uncertainty.str(), " do not fit");
  for (int64_t n = 0; n < mean_probs.size(0); ++n) {
    CalibrationAccumulator one(ignore_index_, bins_);
    one.add(mean_probs.slice(0, n, n + 1), labels.slice(0, n, n + 1), uncertainty.slice(0, n, n + 1));
    const CalibrationMetrics r = one.result();
    if (r.valid_pixels == 0) continue;
    sums_.images += 1;
    sums_.ece += r.ece, sums_.mce += r.mce, sums_.brier_multiclass += r.brier_multiclass, sums_.nll += r.nll;
    sums_.ece_reference += r.ece_reference, sums_.mce_reference += r.mce_reference;
    sums_.brier_reference += r.brier_reference, sums_.nll_reference += r.nll_reference;
  }
}

PerImageMeans PerImageCalibration::result() const {
  PerImageMeans m = sums_;
  const double k = sums_.images > 0 ? static_cast<double>(sums_.images) : kNaN;
  for (double* v : {&m.ece, &m.mce, &m.brier_multiclass, &m.nll, &m.ece_reference, &m.mce_reference,
                    &m.brier_reference, &m.nll_reference})
    *v /= k;
  return m;
}

namespace {

// A metric for JSON: NaN and infinities (an empty bin, a class absent) are written as null.
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

nlohmann::json per_image_json(const PerImageMeans& m) {
  return {{"images", m.images},
          {"ece", num(m.ece)},
          {"mce", num(m.mce)},
          {"brier_multiclass", num(m.brier_multiclass)},
          {"nll", num(m.nll)},
          {"ece_reference", num(m.ece_reference)},
          {"mce_reference", num(m.mce_reference)},
          {"brier_reference", num(m.brier_reference)},
          {"nll_reference", num(m.nll_reference)}};
}

nlohmann::json calibration_json(const CalibrationMetrics& m) {
  auto arr = [](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(num(x));
    return a;
  };
  auto bins = [&](const std::vector<ReliabilityBin>& bs) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& b : bs)
      a.push_back({{"lower", b.lower}, {"upper", b.upper}, {"count", b.count}, {"accuracy", b.accuracy},
                   {"confidence", b.confidence}});
    return a;
  };
  return {{"valid_pixels", m.valid_pixels},
          {"accuracy", num(m.accuracy)},
          {"ece", num(m.ece)},
          {"mce", num(m.mce)},
          {"brier_multiclass", num(m.brier_multiclass)},
          {"nll", num(m.nll)},
          {"ece_reference", num(m.ece_reference)},
          {"mce_reference", num(m.mce_reference)},
          {"brier_reference", num(m.brier_reference)},
          {"nll_reference", num(m.nll_reference)},
          {"auroc", num(m.auroc)},
          {"thresholds", arr(m.thresholds)},
          {"p_accurate_given_certain", arr(m.p_accurate_given_certain)},
          {"p_uncertain_given_inaccurate", arr(m.p_uncertain_given_inaccurate)},
          {"pavpu_reference", arr(m.pavpu_reference)},
          {"pavpu_standard", arr(m.pavpu_standard)},
          {"bins", bins(m.bins)},
          {"bins_reference", bins(m.bins_reference)}};
}

}  // namespace moeseg
