// Uncertainty measures (training/uncertainty.h) and calibration metrics (training/calibration.h):
//   - against numpy (tests/fixtures/training/uncertainty.safetensors, made by
//     tools/fixtures/make_uncertainty_fixtures.py): PE, MI, EV of the equal, gate-weighted and
//     class-wise-gate mixtures, the four gate-entropy variants, and every metric for three
//     uncertainty scores, accumulated over two batches (pooled) and averaged per image, float64 to 1e-9;
//   - hand-checkable cases: equal members give MI = EV = 0; one-hot correct predictions give ECE,
//     Brier, NLL 0; a perfect score gives AUROC 1 (inverted 0, constant 0.5); a small ECE, PAvPU
//     and AUROC worked by hand; member sets from a ModelOutput, and errors for a model without a gate;
//   - the pictures (training/uncertainty_images.h): pixels of a reliability diagram and a map.
// Run: build/tests/test_training -tc="uncertainty*"
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "core/safetensors.h"
#include "support/gradcheck.h"
#include "training/calibration.h"
#include "training/uncertainty_images.h"
#include "training/uncertainty.h"

using namespace moeseg;
using moeseg::testing::expect_error;

namespace {

const TensorFile& ufile() {
  static TensorFile f = load_safetensors(std::string(MOESEG_FIXTURE_DIR) + "/training/uncertainty.safetensors");
  return f;
}

void check_close(const Tensor& got, const std::string& key, double tol = 1e-9) {
  const Tensor& want = ufile().get(key);
  REQUIRE_MESSAGE(got.shape() == want.shape(), key << ": " << got.str() << " vs " << want.str());
  const auto g = got.to(DType::Float64).to_vector<double>();
  const auto w = want.to(DType::Float64).to_vector<double>();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool both_nan = std::isnan(g[i]) && std::isnan(w[i]);
    const double e = both_nan ? 0.0 : (std::isnan(g[i]) || std::isnan(w[i])) ? 1e300 : std::abs(g[i] - w[i]);
    if (e > worst) worst = e, at = i;
  }
  CHECK_MESSAGE(worst <= tol, key << ": max error " << worst << " at " << at << " (ours " << g[at] << ", numpy " << w[at] << ")");
}

void check_scalar(double got, const std::string& key, double tol = 1e-9) {
  check_close(Tensor::from_vector(std::vector<double>{got}, {1}), key, tol);
}

std::vector<Tensor> fixture_members() { return {ufile().get("p0"), ufile().get("p1"), ufile().get("p2")}; }

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s); }

}  // namespace

TEST_CASE("uncertainty: PE, MI, EV of plain / gate-weighted / class-wise mixtures = numpy") {
  const auto probs = fixture_members();
  for (const std::string name : {"plain", "weighted", "weighted_class"}) {
    CAPTURE(name);
    Members m;
    m.probs = probs;
    if (name == "weighted") m.gate = ufile().get("gate_simple");
    if (name == "weighted_class") m.gate = ufile().get("gate_class");
    UncertaintyMaps u = compute_uncertainty(m, Tensor());
    check_close(u.mean_probs, name + ".mean", 1e-12);
    CHECK(u.predicted.to_vector<int64_t>() == ufile().get(name + ".pred").to_vector<int64_t>());
    check_close(u.predictive_entropy, name + ".pe", 1e-12);
    check_close(u.mutual_information, name + ".mi", 1e-12);
    check_close(u.expert_variance, name + ".ev", 1e-12);
    CHECK_FALSE(u.gate_entropy.defined());
  }
}

TEST_CASE("uncertainty: gate entropy, simple and class-wise (predicted class, mean gate, mean entropy) = numpy") {
  const Tensor pred = ufile().get("plain.pred");
  check_close(gate_entropy(ufile().get("gate_simple"), pred, GateReduction::PredictedClass), "gate.simple", 1e-12);
  check_close(gate_entropy(ufile().get("gate_class"), pred, GateReduction::PredictedClass), "gate.class_predicted", 1e-12);
  check_close(gate_entropy(ufile().get("gate_class"), pred, GateReduction::MeanGate), "gate.class_mean_gate", 1e-12);
  check_close(gate_entropy(ufile().get("gate_class"), pred, GateReduction::MeanEntropy), "gate.class_mean_entropy", 1e-12);
  // uniform gate: entropy 1 (normalised by log E); one-hot gate: 0
  Tensor pred1 = Tensor::zeros({1, 2, 2}, DType::Int64);
  for (double v : gate_entropy(f64({0.5, 0.5}, {1, 1, 2}), pred1, GateReduction::PredictedClass).to_vector<double>())
    CHECK(v == doctest::Approx(1.0).epsilon(1e-14));
  for (double v : gate_entropy(f64({1.0, 0.0, 0.0}, {1, 1, 3}), pred1, GateReduction::PredictedClass).to_vector<double>())
    CHECK(v == 0.0);
}

TEST_CASE("uncertainty: calibration metrics over two batches = numpy, for PE, MI and EV scores") {
  Members m;
  m.probs = fixture_members();
  UncertaintyMaps u = compute_uncertainty(m, Tensor());
  const Tensor labels = ufile().get("labels");
  for (const auto& [key, measure] : std::vector<std::pair<std::string, std::string>>{
           {"pe", "predictive_entropy"}, {"mi", "mutual_information"}, {"ev", "expert_variance"}}) {
    CAPTURE(measure);
    const Tensor un = normalised_uncertainty(u, measure);
    CalibrationAccumulator acc;
    for (int64_t n = 0; n < 2; ++n)   // one image a batch: the accumulator must pool them
      acc.add(u.mean_probs.slice(0, n, n + 1), labels.slice(0, n, n + 1), un.slice(0, n, n + 1));
    const CalibrationMetrics r = acc.result();
    const std::string p = "m." + key + ".";
    check_scalar(r.accuracy, p + "accuracy");
    check_scalar(r.ece, p + "ece");
    check_scalar(r.mce, p + "mce");
    check_scalar(r.brier_multiclass, p + "brier_multiclass");
    check_scalar(r.nll, p + "nll");
    check_scalar(r.ece_reference, p + "ece_ref");
    check_scalar(r.mce_reference, p + "mce_ref");
    check_scalar(r.brier_reference, p + "brier_ref");
    check_scalar(r.nll_reference, p + "nll_ref");
    check_scalar(r.auroc, p + "auroc");
    check_close(f64(r.p_accurate_given_certain, {50}), p + "p_acc_cert");
    check_close(f64(r.p_uncertain_given_inaccurate, {50}), p + "p_unc_inacc");
    check_close(f64(r.pavpu_reference, {50}), p + "pavpu_ref");
    check_close(f64(r.pavpu_standard, {50}), p + "pavpu_std");
    PerImageCalibration per_image;
    per_image.add(u.mean_probs, labels, un);
    const PerImageMeans pi = per_image.result();
    CHECK(pi.images == 2);
    check_scalar(pi.ece, p + "img.ece");
    check_scalar(pi.mce, p + "img.mce");
    check_scalar(pi.brier_multiclass, p + "img.brier_multiclass");
    check_scalar(pi.nll, p + "img.nll");
    check_scalar(pi.ece_reference, p + "img.ece_ref");
    check_scalar(pi.mce_reference, p + "img.mce_ref");
    check_scalar(pi.brier_reference, p + "img.brier_ref");
    check_scalar(pi.nll_reference, p + "img.nll_ref");
    CHECK(std::abs(pi.ece - r.ece) > 1e-6);   // averaging per image differs from pooling here
    CHECK(r.ece > 0.0);   // the fixture is not trivially calibrated
    int64_t in_bins = 0;
    for (const auto& b : r.bins) in_bins += b.count;
    CHECK(in_bins == r.valid_pixels);
    CHECK(r.valid_pixels < labels.numel());   // ignore pixels were dropped
  }
}

TEST_CASE("uncertainty: equal members give MI = 0 and EV = 0, different members do not") {
  const Tensor p = ufile().get("p0");
  UncertaintyMaps same = compute_uncertainty(Members{{p, p, p}, Tensor()}, Tensor());
  for (double v : same.mutual_information.to_vector<double>()) CHECK(std::abs(v) < 1e-12);
  for (double v : same.expert_variance.to_vector<double>()) CHECK(v == 0.0);
  const auto pe = same.predictive_entropy.to_vector<double>();
  const auto h0 = entropy_map(p).to_vector<double>();
  for (size_t i = 0; i < pe.size(); ++i) CHECK(pe[i] == doctest::Approx(h0[i]).epsilon(1e-14));
  UncertaintyMaps diff = compute_uncertainty(Members{fixture_members(), Tensor()}, Tensor());
  double mi_min = 1, ev_max = 0;
  for (double v : diff.mutual_information.to_vector<double>()) mi_min = std::min(mi_min, v);
  for (double v : diff.expert_variance.to_vector<double>()) ev_max = std::max(ev_max, v);
  CHECK(mi_min > 0.0);          // Jensen: strictly positive for members that differ
  CHECK(ev_max == 1.0);         // normalised by the batch maximum
}

TEST_CASE("uncertainty: hand-checked EV and MI of two members at one pixel") {
  // one pixel, C = 2: p1 = (0.8, 0.2), p2 = (0.4, 0.6) -> p̄ = (0.6, 0.4), predicted class 0,
  // std (ddof 1) of (0.8, 0.4) = 0.4 / sqrt(2); MI = H(0.6, 0.4) - (H(0.8, 0.2) + H(0.4, 0.6)) / 2
  Tensor p1 = f64({0.8, 0.2}, {1, 2, 1, 1}), p2 = f64({0.4, 0.6}, {1, 2, 1, 1});
  auto H = [](double a) { return -(a * std::log(a) + (1 - a) * std::log(1 - a)); };
  UncertaintyMaps u = compute_uncertainty(Members{{p1, p2}, Tensor()}, Tensor());
  CHECK(u.predicted.to_vector<int64_t>()[0] == 0);
  CHECK(expert_std_at_class({p1, p2}, u.predicted).item() == doctest::Approx(0.4 / std::sqrt(2.0)).epsilon(1e-14));
  CHECK(u.mutual_information.item() == doctest::Approx(H(0.6) - 0.5 * (H(0.8) + H(0.4))).epsilon(1e-14));
  CHECK(u.expert_variance.item() == 1.0);
  // the gate-weighted mixture with g = (0.25, 0.75): p̄ = (0.5, 0.5), PE = log 2
  UncertaintyMaps w = compute_uncertainty(Members{{p1, p2}, f64({0.25, 0.75}, {1, 1, 2})}, Tensor());
  CHECK(w.predictive_entropy.item() == doctest::Approx(std::log(2.0)).epsilon(1e-14));
}

TEST_CASE("uncertainty: one-hot correct predictions give ECE = MCE = Brier = NLL = 0") {
  // 2 classes, 1 x 2 x 2 pixels, predictions one-hot and equal to the labels; one ignored pixel
  // carries a wrong label that must not count.
  Tensor probs = f64({1, 0, 1, 0, /*class 1*/ 0, 1, 0, 1}, {1, 2, 2, 2});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 1, 255, 1}, {1, 2, 2});
  Tensor u = Tensor::zeros({1, 2, 2}, DType::Float64);
  CalibrationAccumulator acc;
  acc.add(probs, labels, u);
  CalibrationMetrics r = acc.result();
  CHECK(r.valid_pixels == 3);
  CHECK(r.accuracy == 1.0);
  CHECK(r.ece == 0.0);
  CHECK(r.mce == 0.0);
  CHECK(r.brier_multiclass == 0.0);
  CHECK(r.nll == doctest::Approx(0.0));
  CHECK(r.ece_reference == 0.0);
  CHECK(r.brier_reference == 0.0);
  CHECK(std::isnan(r.auroc));                        // no misclassified pixel
  CHECK(std::isnan(r.p_uncertain_given_inaccurate[0]));
  CHECK(r.pavpu_standard[0] == 1.0);
  CHECK(r.bins.back().count == 3);                   // confidence 1 falls in (14/15, 1]
}

TEST_CASE("uncertainty: hand-worked ECE, Brier, PAvPU (both forms) and AUROC") {
  // 4 pixels, C = 2, confidence 0.9 each; predictions class 0; labels 0, 0, 0, 1 -> 3 correct.
  // ECE = |0.75 - 0.9| = 0.15 (one bin), Brier multi-class = (3 * 2 * 0.01 + (0.81 + 0.81)) / 4.
  Tensor probs = f64({0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1}, {1, 2, 1, 4});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 0, 0, 1}, {1, 1, 4});
  // uncertainties: the wrong pixel is the most uncertain but ties with one correct pixel
  Tensor u = f64({0.1, 0.3, 0.6, 0.6}, {1, 1, 4});
  CalibrationAccumulator acc;
  acc.add(probs, labels, u);
  CalibrationMetrics r = acc.result();
  CHECK(r.ece == doctest::Approx(0.15).epsilon(1e-12));
  CHECK(r.mce == doctest::Approx(0.15).epsilon(1e-12));
  CHECK(r.brier_multiclass == doctest::Approx((3 * 0.02 + 1.62) / 4).epsilon(1e-12));
  CHECK(r.nll == doctest::Approx((3 * -std::log(0.9) - std::log(0.1)) / 4).epsilon(1e-12));
  // reference form: q = 1 - u = 0.9, 0.7, 0.4, 0.4; correct 1, 1, 1, 0
  CHECK(r.brier_reference == doctest::Approx((0.01 + 0.09 + 0.36 + 0.16) / 4).epsilon(1e-12));
  // AUROC: the positive's score 0.6 ties with one negative (0.6) and beats two -> (2 + 0.5) / 3
  CHECK(r.auroc == doctest::Approx(2.5 / 3).epsilon(1e-12));
  // threshold 0.51 (k = 25): certain = first two; n_ac = 2, n_iu = 1 (the wrong pixel is uncertain)
  REQUIRE(r.thresholds.size() == 50);
  CHECK(r.thresholds[25] == doctest::Approx(0.51));
  CHECK(r.p_accurate_given_certain[25] == 1.0);
  CHECK(r.p_uncertain_given_inaccurate[25] == 1.0);
  CHECK(r.pavpu_reference[25] == doctest::Approx(3.0 / (2 + 1)));   // (n_ac + n_iu) / (n_certain + n_inaccurate)
  CHECK(r.pavpu_standard[25] == doctest::Approx(3.0 / 4));          // / all pixels
  // threshold 0.01: nothing is certain
  CHECK(std::isnan(r.p_accurate_given_certain[0]));
  CHECK(r.pavpu_reference[0] == doctest::Approx(1.0 / 1));
  CHECK(r.pavpu_standard[0] == doctest::Approx(1.0 / 4));
}

TEST_CASE("uncertainty: AUROC of a perfect, an inverted and a constant score") {
  std::vector<uint8_t> pos = {0, 1, 0, 1, 1, 0};
  CHECK(auroc_rank({0.1, 0.9, 0.2, 0.8, 0.7, 0.3}, pos) == 1.0);
  CHECK(auroc_rank({0.9, 0.1, 0.8, 0.2, 0.3, 0.7}, pos) == 0.0);
  CHECK(auroc_rank({0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, pos) == 0.5);
  CHECK(std::isnan(auroc_rank({0.1, 0.2}, {1, 1})));
}

TEST_CASE("uncertainty: member sets from a ModelOutput, and errors for a model without a gate") {
  ModelOutput out;
  Tensor l1 = f64({1.0, -1.0, 0.5, 2.0}, {1, 2, 1, 2}), l2 = f64({0.0, 0.3, -0.2, 1.0}, {1, 2, 1, 2});
  out.logits = f64({0.4, -0.6, 0.1, 1.5}, {1, 2, 1, 2});
  out.member_logits = {l1, l2};
  Members plain = members_from_output(out, MemberSet::Plain);
  CHECK(plain.probs.size() == 2);
  CHECK_FALSE(plain.gate.defined());
  Members stacked = members_from_output(out, MemberSet::Stacked);
  REQUIRE(stacked.probs.size() == 3);
  const auto p0 = stacked.probs[0].to_vector<double>();   // softmax of the model's own logits, pixel 0: (0.4, 0.1)
  CHECK(p0[0] == doctest::Approx(1.0 / (1.0 + std::exp(-0.3))).epsilon(1e-14));
  CHECK(p0[0] + p0[2] == doctest::Approx(1.0).epsilon(1e-14));
  expect_error([&] { members_from_output(out, MemberSet::Weighted); }, "needs a model with a gate");
  UncertaintyMaps u = compute_uncertainty(out, MemberSet::Plain);
  CHECK_FALSE(u.gate_entropy.defined());
  expect_error([&] { normalised_uncertainty(u, "gate_entropy"); }, "gate entropy needs a model with a gate");
  expect_error([&] { gate_entropy(Tensor(), u.predicted, GateReduction::PredictedClass); }, "this model has none");
  expect_error([&] { normalised_uncertainty(u, "entropyy"); }, "'entropyy'");
  expect_error([&] { parse_member_set("mixed", "test"); }, "'mixed'");
  out.gate = f64({0.3, 0.7}, {1, 1, 2});
  UncertaintyMaps w = compute_uncertainty(out, MemberSet::Weighted);
  REQUIRE(w.gate_entropy.defined());
  const double h = -(0.3 * std::log(0.3) + 0.7 * std::log(0.7)) / std::log(2.0);
  for (double v : w.gate_entropy.to_vector<double>()) CHECK(v == doctest::Approx(h).epsilon(1e-14));
  // a model without members: its own output is the only member, MI = EV = 0
  ModelOutput single;
  single.logits = out.logits;
  UncertaintyMaps s = compute_uncertainty(single, MemberSet::Plain);
  for (double v : s.mutual_information.to_vector<double>()) CHECK(std::abs(v) < 1e-15);
  for (double v : s.expert_variance.to_vector<double>()) CHECK(v == 0.0);
}

TEST_CASE("uncertainty: reliability diagram and uncertainty map pixels") {
  // 2 bins on 20 x 20: bin 0 empty (no bar), bin 1 (columns 10..19) accuracy 0.5, confidence 0.75:
  // bar top at row round(0.5 * 19) = 10, confidence at row round(0.25 * 19) = 5: rows 5..9 red;
  // the diagonal passes column 12 at row 7; frame black.
  std::vector<ReliabilityBin> bins(2);
  bins[1].count = 4, bins[1].accuracy = 0.5, bins[1].confidence = 0.75;
  data::Image img = reliability_diagram(bins, 20);
  REQUIRE(img.height == 20);
  REQUIRE(img.channels == 3);
  auto px = [&](int y, int x) { const uint8_t* p = img.at(y, x); return std::array<int, 3>{p[0], p[1], p[2]}; };
  CHECK(px(15, 12) == std::array<int, 3>{40, 90, 200});    // bar
  CHECK(px(10, 12) == std::array<int, 3>{40, 90, 200});    // bar top
  CHECK(px(6, 12) == std::array<int, 3>{220, 60, 50});     // gap to the confidence
  CHECK(px(7, 12) == std::array<int, 3>{120, 120, 120});   // diagonal
  CHECK(px(3, 12) == std::array<int, 3>{255, 255, 255});   // above
  CHECK(px(15, 3) == std::array<int, 3>{255, 255, 255});   // empty bin
  CHECK(px(0, 0) == std::array<int, 3>{0, 0, 0});          // frame

  Tensor m = f64({0.0, 0.5, 1.0, 2.0, std::numeric_limits<double>::quiet_NaN()}, {1, 5});
  data::Image u = uncertainty_map_image(m, 1.0);
  REQUIRE(u.width == 5);
  auto upx = [&](int x) { const uint8_t* p = u.at(0, x); return std::array<int, 3>{p[0], p[1], p[2]}; };
  CHECK(upx(0) == std::array<int, 3>{0, 0, 4});
  CHECK(upx(1) == std::array<int, 3>{188, 55, 84});
  CHECK(upx(2) == std::array<int, 3>{252, 255, 164});
  CHECK(upx(3) == upx(2));   // clamped to vmax
  CHECK(upx(4) == std::array<int, 3>{128, 128, 128});
  data::Image half = uncertainty_map_image(m, 2.0);   // vmax 2: 1.0 is the middle of the ramp
  CHECK(std::array<int, 3>{half.at(0, 2)[0], half.at(0, 2)[1], half.at(0, 2)[2]} == upx(1));
  expect_error([&] { uncertainty_map_image(m, 0.0); }, "vmax must be > 0");
}
