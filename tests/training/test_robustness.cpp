// training/robustness.h on a few synthetic scenes (48x64) and an untrained FRRN-A (width 0.125):
// the clean column is the project's evaluation (training/evaluation.h) to the last count, a zero
// universal δ is the clean model, "all" merges highway + urban, FGSM / PGD lower the pixel
// accuracy, the universal δ stays within eps and is deterministic; bad input names the value.
// A few seconds on 2 cores.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "models/segmentation_model.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_experiment.h"
#include "training/evaluation.h"
#include "training/experiment_config.h"
#include "training/experiment_setup.h"
#include "training/robustness.h"

using namespace moeseg;
using json = nlohmann::json;

namespace {

ExperimentConfig tiny_config(const testing::TempDir& d) { return testing::tiny_synthetic_experiment(d, "robust_unit", 4); }

double field(const json& r, const std::string& attack, const std::string& subset, const char* key) {
  return r["attacks"][attack]["subsets"][subset][key].get<double>();
}

}  // namespace

TEST_CASE("robustness: clean = evaluation, zero delta = clean, attacks lower accuracy, universal delta within eps") {
  testing::TempDir d("robustness_unit");
  const ExperimentConfig c = tiny_config(d);
  auto model = build_experiment_model(c);

  AttackSpec clean{"clean", AttackKind::Clean, {}, {}, {}};
  AttackSpec zero{"zero", AttackKind::Universal, {}, {}, Tensor::zeros({3, 48, 64}, DType::Float32)};
  AttackSpec fg{"fgsm", AttackKind::Fgsm, {}, {}, {}};
  fg.fgsm.eps = 0.1;
  AttackSpec pg{"pgd", AttackKind::Pgd, {}, {}, {}};
  pg.pgd.eps = 0.1;
  pg.pgd.steps = 3;
  pg.pgd.lr = 0.03;
  pg.pgd.clamp_01 = true;
  RobustnessOptions ro;
  ro.quiet = true;
  ro.batch = 2;   // 3 images per subset: a full and a partial batch
  const json r = evaluate_attacks(*model, c, {clean, zero, fg, pg}, ro, "unit");

  EvalOptions eo;
  eo.quiet = true;
  const json e = evaluate_on_subsets(*model, c, eo, "unit");
  for (const char* s : {"highway", "urban", "all"}) {
    INFO(s);
    CHECK(field(r, "clean", s, "miou") == e["subsets"][s]["miou"].get<double>());
    CHECK(field(r, "clean", s, "pixel_accuracy") == e["subsets"][s]["pixel_accuracy"].get<double>());
    CHECK(field(r, "zero", s, "miou") == field(r, "clean", s, "miou"));
    CHECK(field(r, "zero", s, "pixel_accuracy") == field(r, "clean", s, "pixel_accuracy"));
  }
  CHECK(r["attacks"]["clean"]["subsets"]["highway"]["images"] == 3);
  CHECK(r["attacks"]["clean"]["subsets"]["all"]["images"] == 6);
  // Untargeted CE ascent at eps 0.1 moves predictions away from the truth.
  CHECK(field(r, "fgsm", "all", "pixel_accuracy") < field(r, "clean", "all", "pixel_accuracy"));
  CHECK(field(r, "pgd", "all", "pixel_accuracy") < field(r, "clean", "all", "pixel_accuracy"));
  CHECK(attacked_miou(r, "pgd", "all") == field(r, "pgd", "all", "miou"));
  CHECK(std::isnan(attacked_miou(r, "nosuch", "all")));
  // A rerun gives the same numbers (PGD's random start is seeded per batch).
  const json r2 = evaluate_attacks(*model, c, {pg}, ro, "unit");
  CHECK(field(r2, "pgd", "all", "miou") == field(r, "pgd", "all", "miou"));

  UniversalSpec us;
  us.attack.eps = 0.05;
  us.attack.steps_per_batch = 2;
  us.batch = 2;
  us.max_images = 2;
  const Tensor delta = make_universal_delta(*model, c, us);
  REQUIRE(delta.dim() == 3);
  CHECK(delta.size(0) == 3);
  CHECK(delta.size(1) == 48);
  CHECK(delta.size(2) == 64);
  double maxabs = 0;
  const Tensor dc = delta.contiguous();
  for (int64_t i = 0; i < dc.numel(); ++i) maxabs = std::max(maxabs, std::abs(static_cast<double>(dc.data<float>()[i])));
  CHECK(maxabs <= 0.05 + 1e-7);
  CHECK(maxabs > 0.04);
  const Tensor again = make_universal_delta(*model, c, us).contiguous();
  bool same = true;
  for (int64_t i = 0; i < dc.numel(); ++i) same = same && dc.data<float>()[i] == again.data<float>()[i];
  CHECK(same);

  // Bad input names the value.
  CHECK_THROWS_WITH(parse_attack_kind("cw", "unit"), doctest::Contains("'cw'"));
  AttackSpec bad{"bad", AttackKind::Universal, {}, {}, Tensor::zeros({3, 16, 64}, DType::Float32)};
  CHECK_THROWS_WITH(evaluate_attacks(*model, c, {bad}, ro, "unit"), doctest::Contains("[3, 16, 64]"));
  AttackSpec none{"none", AttackKind::Universal, {}, {}, {}};
  CHECK_THROWS_WITH(evaluate_attacks(*model, c, {none}, ro, "unit"), doctest::Contains("needs a delta"));
}
