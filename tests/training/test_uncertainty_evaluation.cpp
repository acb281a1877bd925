// training/uncertainty_evaluation.h on a few synthetic scenes (48x64) with untrained FRRN-A experts
// (width 0.125) and an MoE of two of them: a row's scores are exactly what the per-pixel measures
// (training/uncertainty.h) and the accumulators (training/calibration.h) give when fed the same
// batches by hand; a corrupted condition is the mean of its corruptions evaluated one by one and
// differs from clean; an MC-dropout row is mc_dropout_output with seed + batch index; gate entropy
// and the weighted set come with a gate; pictures are written for a clean condition only; a rerun
// gives the same numbers; bad rows, thresholds and severities are refused by name. Seconds.
#include <doctest/doctest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/error.h"
#include "data/augment.h"
#include "data/loader.h"
#include "models/registry.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_experiment.h"
#include "training/calibration.h"
#include "training/experiment_config.h"
#include "training/experiment_setup.h"
#include "training/mc_dropout.h"
#include "training/uncertainty_evaluation.h"

using namespace moeseg;
using json = nlohmann::json;

namespace {

DataConfig tiny_data(const testing::TempDir& d) { return testing::tiny_synthetic_experiment(d, "unc_unit", 1).data; }

std::shared_ptr<SegmentationModel> expert(uint64_t seed) {
  return make_model_from_config({{"model", "frrn_a"}, {"num_classes", 38}, {"seed", seed}, {"width", 0.125}});
}

std::shared_ptr<SegmentationModel> moe() {
  const json e1 = {{"model", "frrn_a"}, {"seed", 1}, {"width", 0.125}};
  const json e2 = {{"model", "frrn_a"}, {"seed", 2}, {"width", 0.125}};
  return make_model_from_config({{"type", "moe"}, {"num_classes", 38}, {"experts", {e1, e2}}, {"gate", "simple"},
                                 {"input_size", {48, 64}}});
}

UncertaintyRowSpec row(const std::string& model, MemberSet set, std::vector<std::string> measures) {
  UncertaintyRowSpec r;
  r.model = model;
  r.members = model + " · " + member_set_name(set);
  r.set = set;
  r.measures = std::move(measures);
  return r;
}

// The scores of one (member set, measure) fed by hand over the test images of `subsets`, batch 2.
UncertaintyScores by_hand(SegmentationModel& m, const DataConfig& dc, const std::vector<std::string>& subsets,
                          MemberSet set, const std::string& measure, bool mc = false, double rate = 0, int samples = 0,
                          uint64_t mc_seed = 0) {
  CalibrationAccumulator acc(255);
  PerImageCalibration per(255);
  m.eval();
  uint64_t batch_index = 0;
  for (const std::string& s : subsets) {
    auto ds = open_experiment_data(dc, s, "test", 0);
    data::LoaderOptions lo;
    lo.batch_size = 2;
    lo.num_workers = 0;
    lo.augment = data::reference_preset(dc.height, dc.width, false);
    data::DataLoader loader(ds, lo);
    loader.start_epoch(0);
    data::Batch b;
    while (loader.next(b)) {
      ModelOutput out;
      if (mc) {
        out = mc_dropout_output(m, b.images, rate, samples, mc_seed + batch_index);
      } else {
        NoGradGuard ng;
        out = m.forward_detailed(b.images);
      }
      const UncertaintyMaps u = compute_uncertainty(members_from_output(out, set), out.gate);
      const Tensor un = normalised_uncertainty(u, measure);
      acc.add(u.mean_probs, b.labels, un);
      per.add(u.mean_probs, b.labels, un);
      ++batch_index;
    }
  }
  const CalibrationMetrics r = acc.result();
  const PerImageMeans p = per.result();
  UncertaintyScores s;
  s.ece = p.ece_reference;
  s.mce = p.mce_reference;
  s.brier = p.brier_reference;
  s.nll = p.nll_reference;
  s.auroc = r.auroc;
  s.pavpu = r.pavpu_reference[24];   // t = 0.49
  s.pixels = r.valid_pixels;
  s.images = p.images;
  return s;
}

void check_equal(const UncertaintyScores& a, const UncertaintyScores& b) {
  CHECK(a.ece == b.ece);
  CHECK(a.mce == b.mce);
  CHECK(a.brier == b.brier);
  CHECK(a.nll == b.nll);
  CHECK(a.auroc == b.auroc);
  CHECK(a.pavpu == b.pavpu);
  CHECK(a.pixels == b.pixels);
  CHECK(a.images == b.images);
}

}  // namespace

TEST_CASE("uncertainty evaluation: rows are the measures and accumulators fed by hand, pictures for clean") {
  testing::TempDir d("unc_eval");
  const DataConfig dc = tiny_data(d);
  auto e = expert(5);
  auto mix = moe();
  const std::map<std::string, SegmentationModel*> models = {{"e", e.get()}, {"moe", mix.get()}};
  std::vector<UncertaintyRowSpec> rows = {
      row("e", MemberSet::Plain, {"predictive_entropy"}),
      row("moe", MemberSet::Plain, {"predictive_entropy", "mutual_information", "expert_variance", "gate_entropy"}),
      row("moe", MemberSet::Weighted, {"predictive_entropy", "gate_entropy"}),
      row("moe", MemberSet::Stacked, {"mutual_information"})};
  UncertaintyCondition clean;
  clean.subsets = {"highway", "urban"};
  UncertaintyEvalOptions o;
  o.batch = 2;
  o.quiet = true;
  o.pictures_dir = d.str("pics");
  const std::vector<UncertaintyCell> cells = evaluate_uncertainty(models, dc, rows, clean, o);
  REQUIRE(cells.size() == 8);
  CHECK(cells[0].measure == "predictive_entropy");
  CHECK(cells[4].measure == "gate_entropy");
  CHECK(cells[7].members == "moe · stacked");
  check_equal(cells[0].scores, by_hand(*e, dc, clean.subsets, MemberSet::Plain, "predictive_entropy"));
  check_equal(cells[2].scores, by_hand(*mix, dc, clean.subsets, MemberSet::Plain, "mutual_information"));
  check_equal(cells[4].scores, by_hand(*mix, dc, clean.subsets, MemberSet::Plain, "gate_entropy"));
  check_equal(cells[5].scores, by_hand(*mix, dc, clean.subsets, MemberSet::Weighted, "predictive_entropy"));
  check_equal(cells[7].scores, by_hand(*mix, dc, clean.subsets, MemberSet::Stacked, "mutual_information"));
  CHECK(cells[0].scores.images == 6);
  CHECK(cells[0].scores.pixels == 6 * 48 * 64);
  // the weighted and the plain mixture are different mixtures
  CHECK(cells[5].scores.nll != cells[1].scores.nll);
  // the detail of a clean condition is the pooled metrics with every threshold
  CHECK(cells[0].detail["pavpu_reference"].size() == 50);
  CHECK(cells[0].detail.contains("per_image_mean"));
  // pictures: a map and a reliability diagram per cell, the input and its labels
  REQUIRE(cells[3].pictures.size() == 2);
  for (const UncertaintyCell& c : cells)
    for (auto& [caption, file] : c.pictures) CHECK(std::filesystem::exists(d.str("pics/" + file)));
  CHECK(std::filesystem::exists(d.str("pics/input_0.png")));
  CHECK(std::filesystem::exists(d.str("pics/labels_0.png")));
  // a rerun: the same numbers
  o.pictures_dir.clear();
  const std::vector<UncertaintyCell> again = evaluate_uncertainty(models, dc, rows, clean, o);
  for (size_t i = 0; i < cells.size(); ++i) check_equal(again[i].scores, cells[i].scores);
}

TEST_CASE("uncertainty evaluation: a corrupted condition is the mean over its corruptions, MC-dropout rows") {
  testing::TempDir d("unc_eval_corr");
  const DataConfig dc = tiny_data(d);
  auto e = expert(5);
  const std::map<std::string, SegmentationModel*> models = {{"e", e.get()}};
  UncertaintyRowSpec mc;
  mc.model = "e";
  mc.members = "e · MC";
  mc.mc_dropout = true;
  mc.mc_rate = 0.5;
  mc.mc_samples = 2;
  mc.mc_seed = 4;
  mc.measures = {"mutual_information"};
  const std::vector<UncertaintyRowSpec> rows = {row("e", MemberSet::Plain, {"predictive_entropy"}), mc};
  UncertaintyEvalOptions o;
  o.batch = 2;
  o.quiet = true;
  o.pictures_dir = d.str("pics");
  UncertaintyCondition both{"corrupted", {"highway"}, {data::Corruption::GaussianNoise, data::Corruption::Fog}, 5, 9};
  UncertaintyCondition noise{"n", {"highway"}, {data::Corruption::GaussianNoise}, 5, 9};
  UncertaintyCondition fog{"f", {"highway"}, {data::Corruption::Fog}, 5, 9};
  UncertaintyCondition clean{"clean", {"highway"}, {}, 0, 0};
  const auto cb = evaluate_uncertainty(models, dc, rows, both, o);
  const auto cn = evaluate_uncertainty(models, dc, rows, noise, o);
  const auto cf = evaluate_uncertainty(models, dc, rows, fog, o);
  CHECK(!std::filesystem::exists(d.str("pics")));   // no pictures of corrupted passes
  o.pictures_dir.clear();
  const auto cc = evaluate_uncertainty(models, dc, rows, clean, o);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(cb[i].scores.ece == doctest::Approx((cn[i].scores.ece + cf[i].scores.ece) / 2).epsilon(1e-12));
    CHECK(cb[i].scores.nll == doctest::Approx((cn[i].scores.nll + cf[i].scores.nll) / 2).epsilon(1e-12));
    CHECK(cb[i].scores.auroc == doctest::Approx((cn[i].scores.auroc + cf[i].scores.auroc) / 2).epsilon(1e-12));
    CHECK(cb[i].scores.pixels == cn[i].scores.pixels + cf[i].scores.pixels);
    CHECK(cb[i].detail["per_corruption"].contains("gaussian_noise"));
    CHECK(cb[i].detail["per_corruption"].contains("fog"));
    CHECK(cn[i].scores.nll != cc[i].scores.nll);   // severity 5 noise changes the predictions
  }
  // the MC row of the clean condition: MC samples with seed 4 + batch index
  check_equal(cc[1].scores, by_hand(*e, dc, {"highway"}, MemberSet::Plain, "mutual_information", true, 0.5, 2, 4));
  CHECK(cc[1].scores.nll != cc[0].scores.nll);
}

TEST_CASE("uncertainty evaluation: bad rows, thresholds and severities are refused by name") {
  testing::TempDir d("unc_eval_bad");
  const DataConfig dc = tiny_data(d);
  auto e = expert(5);
  const std::map<std::string, SegmentationModel*> models = {{"e", e.get()}};
  UncertaintyCondition clean{"clean", {"highway"}, {}, 0, 0};
  UncertaintyEvalOptions o;
  o.quiet = true;
  CHECK_THROWS_WITH_AS(evaluate_uncertainty(models, dc, {row("e", MemberSet::Plain, {"gate_entropy"})}, clean, o),
                       doctest::Contains("asks for gate entropy, but model 'e' has no gate"), Error);
  CHECK_THROWS_WITH_AS(evaluate_uncertainty(models, dc, {row("e", MemberSet::Weighted, {"predictive_entropy"})}, clean, o),
                       doctest::Contains("member set 'weighted' needs a gate; model 'e' has none"), Error);
  CHECK_THROWS_WITH_AS(evaluate_uncertainty(models, dc, {row("x", MemberSet::Plain, {"predictive_entropy"})}, clean, o),
                       doctest::Contains("names model 'x', which is not loaded"), Error);
  CHECK_THROWS_WITH_AS(evaluate_uncertainty(models, dc, {row("e", MemberSet::Plain, {"entropy"})}, clean, o),
                       doctest::Contains("unknown measure 'entropy'"), Error);
  UncertaintyEvalOptions t = o;
  t.pavpu_threshold = 0.5;
  CHECK_THROWS_WITH_AS(evaluate_uncertainty(models, dc, {row("e", MemberSet::Plain, {"predictive_entropy"})}, clean, t),
                       doctest::Contains("threshold 0.5 is not a point of the grid"), Error);
  UncertaintyCondition bad{"bad", {"highway"}, {data::Corruption::Fog}, 6, 0};
  CHECK_THROWS_WITH_AS(evaluate_uncertainty(models, dc, {row("e", MemberSet::Plain, {"predictive_entropy"})}, bad, o),
                       doctest::Contains("severity 6 is outside 1..5"), Error);
}

TEST_CASE("uncertainty evaluation: default rows follow the model's members and gate") {
  ModelOutput single;
  single.logits = Tensor::zeros({1, 3, 2, 2});
  auto r = default_uncertainty_rows(single, "m", "M");
  REQUIRE(r.size() == 1);
  CHECK(r[0].measures == std::vector<std::string>{"predictive_entropy"});
  ModelOutput gated = single;
  gated.member_logits = {single.logits, single.logits};
  gated.gate = Tensor::zeros({1, 1, 2});
  r = default_uncertainty_rows(gated, "m", "M");
  REQUIRE(r.size() == 3);
  CHECK(r[0].members == "M · plain");
  CHECK(r[0].measures.size() == 4);
  CHECK(r[1].set == MemberSet::Weighted);
  CHECK(r[1].measures.back() == "gate_entropy");
  CHECK(r[2].set == MemberSet::Stacked);
  CHECK(r[2].measures.size() == 3);
}
