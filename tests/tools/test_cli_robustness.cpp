// `moeseg reproduce --study robustness --from RUN` end to end on a tiny run: the exact header and
// the nine rows, every cell a number in [0, 100], attacks that do not raise mIoU for most rows,
// results.json holding the printed numbers, a transfer matrix whose diagonal is the universal
// column, δs within eps; and the config form of `moeseg attack` reproducing the study's universal
// cell from the saved δ. Bad input: --from missing, --eps missing. About 25 s on 2 cores.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "tests/support/markdown_rows.h"
#include "tests/support/small_cli_case.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using moeseg::testing::run_cli_capture;

using moeseg::testing::line_starting;

const char* kRows[] = {"Baseline",      "Highway expert",    "Urban expert",   "Ensemble mean",        "Ensemble max",
                       "MoE simple",    "MoE simple + conv", "MoE class-wise", "MoE class-wise + conv"};

}  // namespace

TEST_CASE("reproduce --study robustness on a tiny run: table, results.json, transfer, deltas, attack CONFIG agrees") {
  moeseg::testing::TempDir dir("robustness");
  int rc = -1;
  const std::string run = dir.str("run"), rob = dir.str("rob");
  const std::string main = run_cli_capture("reproduce --preset tiny --quiet --out " + run, rc);
  INFO(main);
  REQUIRE(rc == 0);
  const std::string out = run_cli_capture("reproduce --study robustness --from " + run + " --quiet --out " + rob, rc);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("\n| Model | clean | FGSM | PGD-10 | universal |\n|---|---:|---:|---:|---:|\n") != std::string::npos);
  CHECK(out.find("wall time ") != std::string::npos);
  std::ifstream f(rob + "/results.json");
  const json r = json::parse(f);
  REQUIRE(r["models"].size() == 9);
  int fgsm_ok = 0, pgd_ok = 0, pgd_below_fgsm_or_equal = 0;
  for (size_t i = 0; i < 9; ++i) {
    const std::string row = line_starting(out, std::string("| ") + kRows[i] + " |");
    INFO(kRows[i], ": ", row);
    REQUIRE(!row.empty());
    const std::vector<double> v = moeseg::testing::numeric_cells(row);
    REQUIRE(v.size() == 4);
    for (double x : v) {
      CHECK(std::isfinite(x));
      CHECK(x >= 0.0);
      CHECK(x <= 100.0);
    }
    const json& m = r["models"][i];
    CHECK(m["title"] == kRows[i]);
    const char* keys[] = {"clean", "fgsm", "pgd", "universal"};
    for (size_t k = 0; k < 4; ++k) CHECK(std::abs(100 * m["miou"][keys[k]].get<double>() - v[k]) <= 0.0051);
    fgsm_ok += v[1] <= v[0] + 0.5;
    pgd_ok += v[2] <= v[0] + 0.5;
    pgd_below_fgsm_or_equal += v[2] <= v[1] + 0.5;
    // The per-subset evaluation: "all" counts the images of highway and urban.
    const json& subs = m["evaluation"]["attacks"]["clean"]["subsets"];
    CHECK(subs["all"]["images"].get<int>() == subs["highway"]["images"].get<int>() + subs["urban"]["images"].get<int>());
    CHECK(subs["highway"]["images"].get<int>() > 0);
  }
  CHECK(fgsm_ok >= 7);
  CHECK(pgd_ok >= 7);
  CHECK(pgd_below_fgsm_or_equal >= 5);   // 10 steps hurt at least about as much as one (ε equal)

  // Transfer matrix: the preset's models; its diagonal is each model's own universal cell.
  const json& t = r["transfer"];
  const size_t n = t["rows_delta_from"].size();
  REQUIRE(n == 4);
  REQUIRE(t["miou"].size() == n);
  CHECK(out.find("| δ made on ↓ / evaluated on → |") != std::string::npos);
  for (size_t a = 0; a < n; ++a) {
    const std::string title = t["titles"][a];
    size_t model = 9;
    for (size_t i = 0; i < 9; ++i)
      if (r["models"][i]["name"] == t["rows_delta_from"][a]) model = i;
    REQUIRE(model < 9);
    CHECK(t["miou"][a][a].get<double>() == r["models"][model]["miou"]["universal"].get<double>());
    for (size_t b = 0; b < n; ++b) {
      const double x = t["miou"][a][b];
      CHECK(x >= 0.0);
      CHECK(x <= 1.0);
    }
  }
  // δs: [3, H, W] within eps (0.05 in the tiny preset), not all zero.
  const moeseg::Tensor d =
      moeseg::load_safetensors(rob + "/deltas/frrnA_highway.safetensors").get("delta", "delta").contiguous();
  REQUIRE(d.dim() == 3);
  CHECK(d.size(0) == 3);
  CHECK(d.size(1) == 48);
  CHECK(d.size(2) == 64);
  double maxabs = 0;
  for (int64_t i = 0; i < d.numel(); ++i) maxabs = std::max(maxabs, std::abs(static_cast<double>(d.data<float>()[i])));
  CHECK(maxabs <= 0.05 + 1e-6);
  CHECK(maxabs > 0.01);

  // The config form with the saved δ gives the study's universal cell of that model.
  const std::string j = dir.str("attack.json");
  const std::string att = run_cli_capture("attack " + run + "/configs/frrnA_highway.json --attack universal --delta " + rob +
                                          "/deltas/frrnA_highway.safetensors --subsets highway,urban,all --quiet --json " + j,
                                      rc);
  INFO(att);
  REQUIRE(rc == 0);
  CHECK(att.find("attacked mIoU") != std::string::npos);
  std::ifstream fa(j);
  const json a = json::parse(fa);
  CHECK(a["attacks"]["universal"]["subsets"]["all"]["miou"].get<double>() ==
        doctest::Approx(r["models"][1]["miou"]["universal"].get<double>()).epsilon(1e-9));
  CHECK(a["attacks"]["clean"]["subsets"]["all"]["miou"].get<double>() ==
        doctest::Approx(r["models"][1]["miou"]["clean"].get<double>()).epsilon(1e-9));
  // FGSM through the config form: attacked ≤ clean (ε 0.1 on a trained expert) on highway + urban.
  const std::string fg = run_cli_capture("attack " + run + "/configs/frrnA_highway.json --attack fgsm --eps 0.1 --subsets " +
                                         "highway,urban,all --quiet --json " + j,
                                     rc);
  INFO(fg);
  REQUIRE(rc == 0);
  std::ifstream fb(j);
  const json b = json::parse(fb);
  CHECK(b["attacks"]["fgsm"]["subsets"]["all"]["miou"].get<double>() <=
        b["attacks"]["clean"]["subsets"]["all"]["miou"].get<double>() + 0.005);
  CHECK(b["attack"]["eps"].get<double>() == 0.1);

  // Bad input names the value.
  std::string e = run_cli_capture("attack " + run + "/configs/frrnA_highway.json --attack pgd --quiet", rc);
  CHECK(rc != 0);
  CHECK(e.find("--eps must be a finite number > 0, got 0") != std::string::npos);
  e = run_cli_capture("attack " + run + "/configs/frrnA_highway.json --attack cw --eps 0.1", rc);
  CHECK(rc != 0);
  CHECK(e.find("'cw'") != std::string::npos);
}

TEST_CASE("reproduce --study robustness: --from is required, and must be a finished run") {
  int rc = -1;
  std::string out = run_cli_capture("reproduce --study robustness --out /tmp/never_written_moeseg_robust", rc);
  CHECK(rc != 0);
  CHECK(out.find("--from RUN is required") != std::string::npos);
  moeseg::testing::TempDir dir("robustness_bad");
  out = run_cli_capture("reproduce --study robustness --from " + dir.str() + " --out " + dir.str("o"), rc);
  CHECK(rc != 0);
  CHECK(out.find("results.json") != std::string::npos);
}
