// End-to-end check of `moeseg uncertainty` (tensor form): the FRRN-A and MoE (simple gate) weights
// of the committed model fixtures are split into weights / input / labels files; the real CLI
// binary writes the per-pixel measures and the metrics JSON. The measures must equal the library's
// (training/uncertainty.h) on the logits `moeseg infer` writes for the same model and input, and the
// JSON must hold the metrics of each measure over the non-ignored pixels, --pictures writes PNGs; a single model gets no MI,
// EV or gate entropy; bad arguments fail with a message naming the value.
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "data/image_io.h"
#include "tests/support/read_text.h"
#include "tests/support/small_cli_case.h"
#include "tests/support/temp_dir.h"
#include "training/calibration.h"
#include "training/uncertainty.h"

using namespace moeseg;
namespace fs = std::filesystem;

namespace {

using testing::read_text;
int run(const std::string& args, const std::string& err_file) { return testing::run_cli_quiet(args, err_file); }
void write_case(const testing::TempDir& d, bool moe) { testing::write_small_cli_case(d, moe); }

std::string model_args(const testing::TempDir& d) {
  return " --config " + d.str("model.json") + " --weights " + d.str("w.safetensors") + " --input " + d.str("x.safetensors");
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto x = a.to(DType::Float64).to_vector<double>(), y = b.to(DType::Float64).to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace

TEST_CASE("moeseg uncertainty: MoE measures = the library's on `moeseg infer` logits, and the metrics JSON") {
  testing::TempDir d("cli_unc");
  write_case(d, true);
  REQUIRE(run("infer" + model_args(d) + " --out " + d.str("inf.safetensors"), d.str("err")) == 0);
  TensorFile inf = load_safetensors(d.str("inf.safetensors"));
  ModelOutput o;
  o.logits = inf.get("logits");
  o.gate = inf.get("gate");
  o.member_logits = {inf.get("expert1_logits"), inf.get("expert2_logits")};
  const Tensor labels = load_safetensors(d.str("y.safetensors")).get("labels");
  int64_t valid = 0;
  for (int64_t v : labels.to_vector<int64_t>()) valid += v != 255;
  REQUIRE(valid < labels.numel());   // the fixture has ignored pixels

  for (const std::string set : {"plain", "weighted", "stacked"}) {
    CAPTURE(set);
    const std::string out = d.str("u_" + set + ".safetensors");
    REQUIRE(run("uncertainty" + model_args(d) + " --labels " + d.str("y.safetensors") + " --members " + set +
                    " --out " + out + " --pictures " + d.str("pic_" + set),
                d.str("err")) == 0);
    for (const std::string png : {"reliability", "reliability_gate_entropy", "expert_variance_0"}) {
      const data::Image im = data::read_image(d.str("pic_" + set + "/" + png + ".png"));
      CHECK(im.channels == 3);
      CHECK(im.width == (png == "expert_variance_0" ? 48 : 240));
    }
    TensorFile f = load_safetensors(out);
    const UncertaintyMaps want = compute_uncertainty(o, parse_member_set(set, "test"));
    CHECK(f.get("predictive_entropy").shape() == Shape({1, 32, 48}));
    CHECK(max_abs_diff(f.get("predictive_entropy"), want.predictive_entropy) < 1e-12);
    CHECK(max_abs_diff(f.get("mutual_information"), want.mutual_information) < 1e-12);
    CHECK(max_abs_diff(f.get("expert_variance"), want.expert_variance) < 1e-12);
    CHECK(max_abs_diff(f.get("gate_entropy"), want.gate_entropy) < 1e-12);
    CHECK(f.get("predicted").to_vector<int64_t>() == want.predicted.to_vector<int64_t>());
    double pe_max = 0;
    for (double v : f.get("predictive_entropy").to_vector<double>()) pe_max = std::max(pe_max, v);
    CHECK(pe_max > 0.0);
    CHECK(pe_max <= std::log(5.0) + 1e-12);

    const nlohmann::json j = nlohmann::json::parse(read_text(d.str("u_" + set + ".json")));
    CHECK(j["members"] == set);
    CHECK(j["member_count"] == (set == "stacked" ? 3 : 2));
    for (const std::string m : {"predictive_entropy", "mutual_information", "expert_variance", "gate_entropy"}) {
      CAPTURE(m);
      REQUIRE(j["measures"].contains(m));
      const auto& mj = j["measures"][m];
      CHECK(mj["valid_pixels"] == valid);
      CHECK(mj["pavpu_standard"].size() == 50);
      CHECK(mj["bins"].size() == 15);
      CHECK(mj["per_image_mean"]["images"] == 1);   // one image: its mean is the pooled value
      CHECK(mj["per_image_mean"]["ece_reference"].get<double>() == doctest::Approx(mj["ece_reference"].get<double>()).epsilon(1e-12));
      CalibrationAccumulator acc;
      acc.add(want.mean_probs, labels, normalised_uncertainty(want, m));
      const CalibrationMetrics r = acc.result();
      CHECK(mj["ece"].get<double>() == doctest::Approx(r.ece).epsilon(1e-12));
      CHECK(mj["brier_reference"].get<double>() == doctest::Approx(r.brier_reference).epsilon(1e-12));
      if (std::isfinite(r.auroc)) CHECK(mj["auroc"].get<double>() == doctest::Approx(r.auroc).epsilon(1e-12));
    }
  }
}

TEST_CASE("moeseg uncertainty: a single FRRN has PE only, and bad arguments name the value") {
  testing::TempDir d("cli_unc_single");
  write_case(d, false);
  const std::string base = "uncertainty" + model_args(d) + " --labels " + d.str("y.safetensors");
  REQUIRE(run(base + " --out " + d.str("s.safetensors"), d.str("err")) == 0);
  TensorFile f = load_safetensors(d.str("s.safetensors"));
  CHECK(f.has("predictive_entropy"));
  CHECK_FALSE(f.has("mutual_information"));
  CHECK_FALSE(f.has("expert_variance"));
  CHECK_FALSE(f.has("gate_entropy"));
  const nlohmann::json j = nlohmann::json::parse(read_text(d.str("s.json")));
  CHECK(j["measures"].size() == 1);

  const std::string out = " --out " + d.str("o.safetensors");
  CHECK(run(base + " --members weighted" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "needs a model with a gate"));
  CHECK(run(base + " --members mixed" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "'mixed'"));
  CHECK(run(base + " --gate-reduction max" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "'max'"));
  save_safetensors(d.str("y.safetensors"), {{"labels", Tensor::zeros({1, 16, 48}, DType::Int64)}});
  CHECK(run(base + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "[1, 16, 48]"));
  CHECK_FALSE(fs::exists(d.str("o.safetensors")));
}
