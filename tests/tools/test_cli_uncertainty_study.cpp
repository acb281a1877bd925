// `moeseg reproduce --study uncertainty --from RUN` end to end on a tiny run: a "condition: NAME"
// line and the exact header for clean, corrupted and ood, the preset's rows in order, every score
// in its range, the printed numbers = results.json, the ensemble of the two experts and both MoEs'
// plain sets (the same two experts with equal weights) giving the same PE, MI and EV, the
// corrupted cells holding each corruption, the report's pictures on disk; the config form of
// `moeseg uncertainty` reproducing the study's clean cells of a model; bad input named. ~40 s.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/markdown_rows.h"
#include "tests/support/read_text.h"
#include "tests/support/small_cli_case.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using moeseg::testing::run_cli_capture;

namespace {

const char* kHeader =
    "| Measure | Members | ECE | MCE | Brier | NLL | AUROC | PAvPU |\n|---|---|---:|---:|---:|---:|---:|---:|\n";

// The table rows printed after "condition: NAME".
std::vector<std::string> table_rows(const std::string& out, const std::string& name) {
  std::vector<std::string> rows;
  const size_t at = out.find("condition: " + name + "\n\n" + kHeader);
  if (at == std::string::npos) return rows;
  std::istringstream s(out.substr(at));
  std::string l;
  for (int i = 0; i < 4; ++i) std::getline(s, l);   // condition, blank, header, rule
  while (std::getline(s, l) && l.rfind("| ", 0) == 0) rows.push_back(l);
  return rows;
}

const json& cell(const json& cond, const std::string& members, const std::string& measure) {
  for (const json& c : cond["cells"])
    if (c["members"] == members && c["measure"] == measure) return c;
  static const json none;
  FAIL("no cell ", members, " / ", measure);
  return none;
}

}  // namespace

TEST_CASE("reproduce --study uncertainty on a tiny run: three conditions, the rows, results.json, pictures, CONFIG form") {
  moeseg::testing::TempDir dir("uncertainty_study");
  int rc = -1;
  const std::string run = dir.str("run"), unc = dir.str("unc");
  const std::string main = run_cli_capture("reproduce --preset tiny --quiet --out " + run, rc);
  INFO(main);
  REQUIRE(rc == 0);
  const std::string out = run_cli_capture("reproduce --study uncertainty --from " + run + " --quiet --out " + unc, rc);
  INFO(out);
  REQUIRE(rc == 0);
  std::ifstream f(unc + "/results.json");
  const json r = json::parse(f);
  REQUIRE(r["conditions"].size() == 3);
  const char* names[] = {"clean", "corrupted", "ood"};
  for (size_t k = 0; k < 3; ++k) {
    INFO(names[k]);
    const json& cond = r["conditions"][k];
    CHECK(cond["name"] == names[k]);
    const std::vector<std::string> rows = table_rows(out, names[k]);
    REQUIRE(rows.size() == 17);
    REQUIRE(cond["cells"].size() == 17);
    CHECK(rows[0].rfind("| PE | MoE simple · plain |", 0) == 0);
    CHECK(rows[3].rfind("| gate entropy | MoE simple · plain |", 0) == 0);
    CHECK(rows[16].rfind("| MI | Baseline · MC-dropout p=0.1, 2 samples |", 0) == 0);
    const char* keys[] = {"ece", "mce", "brier", "nll", "auroc", "pavpu"};
    for (size_t i = 0; i < rows.size(); ++i) {
      INFO(rows[i]);
      const std::vector<double> v = moeseg::testing::numeric_cells(rows[i], 2);
      REQUIRE(v.size() == 6);
      const json& s = cond["cells"][i]["scores"];
      for (size_t j = 0; j < 6; ++j) {
        if (j == 4 && s["auroc"].is_null()) continue;   // every pixel right (or wrong): no AUROC
        REQUIRE(s[keys[j]].is_number());
        CHECK(std::abs(v[j] - s[keys[j]].get<double>()) <= 0.00005 + 1e-12);
        CHECK(v[j] >= 0.0);
        if (j != 3) CHECK(v[j] <= 1.0);
      }
      CHECK(s["mce"].get<double>() >= s["ece"].get<double>() - 1e-12);
    }
    // The same two experts with equal weights: the ensemble = MoE simple plain = MoE class-wise plain.
    for (const char* m : {"predictive_entropy", "mutual_information", "expert_variance"}) {
      INFO(m);
      CHECK(cell(cond, "Ensemble mean · plain", m)["scores"] == cell(cond, "MoE simple · plain", m)["scores"]);
    }
    CHECK(cell(cond, "MoE class-wise · plain", "predictive_entropy")["scores"] ==
          cell(cond, "MoE simple · plain", "predictive_entropy")["scores"]);
    // ...while the gates' entropies are the gates' own
    CHECK(cell(cond, "MoE class-wise · plain", "gate_entropy")["scores"] !=
          cell(cond, "MoE simple · plain", "gate_entropy")["scores"]);
  }
  const json& corr = r["conditions"][1];
  CHECK(corr["severity"] == 3);
  CHECK(corr["cells"][0]["detail"]["per_corruption"].contains("gaussian_noise"));
  CHECK(corr["cells"][0]["detail"]["per_corruption"].contains("fog"));
  CHECK(r["conditions"][0]["cells"][0]["detail"]["pavpu_reference"].size() == 50);
  // The report and every picture it shows.
  const std::string html = moeseg::testing::read_text(unc + "/report.html");
  CHECK(html.find("condition: ood") != std::string::npos);
  const std::regex img("<img src=\"([^\"]+)\"");
  int pictures = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), img); it != std::sregex_iterator(); ++it, ++pictures)
    CHECK(fs::exists(unc + "/" + (*it)[1].str()));
  CHECK(pictures == 2 * (2 + 2 * 17));   // clean and ood: input, labels, a map and a reliability diagram per cell

  // The config form: the study's clean cells of MoE simple (same images, batches and weights).
  const std::string j = dir.str("unc.json");
  const std::string cfg = run + "/configs/frrnA_moe_simple.json";
  const std::string u =
      run_cli_capture("uncertainty " + cfg + " --subsets highway,urban --max-images 4 --batch 4 --quiet --json " + j, rc);
  INFO(u);
  REQUIRE(rc == 0);
  CHECK(u.find(kHeader) != std::string::npos);
  std::ifstream fj(j);
  const json cj = json::parse(fj);
  const json& clean = r["conditions"][0];
  int matched = 0;
  for (const json& c : cj["cells"]) {
    const std::string members = c["members"];
    if (members.find("· plain") == std::string::npos) continue;
    const json& s = cell(clean, "MoE simple · plain", c["measure"])["scores"];
    CHECK(c["scores"] == s);
    ++matched;
  }
  CHECK(matched == 4);   // PE, MI, EV, gate entropy
  CHECK(cj["cells"].size() == 4 + 4 + 3);   // plain, weighted (+ EV), stacked

  // Bad input names the value.
  std::string e = run_cli_capture("uncertainty " + cfg + " --corruption blur --severity 3", rc);
  CHECK(rc != 0);
  CHECK(e.find("'blur'") != std::string::npos);
  e = run_cli_capture("uncertainty " + cfg + " --corruption fog --severity 7", rc);
  CHECK(rc != 0);
  CHECK(e.find("--severity is 7, outside 1..5") != std::string::npos);
  e = run_cli_capture("uncertainty " + cfg + " --corruption fog", rc);
  CHECK(rc != 0);
  CHECK(e.find("is --severity missing?") != std::string::npos);
  e = run_cli_capture("uncertainty " + cfg + " --severity 2", rc);
  CHECK(rc != 0);
  CHECK(e.find("--severity 2 needs --corruption NAME") != std::string::npos);
  e = run_cli_capture("uncertainty " + cfg + " --input x.safetensors", rc);
  CHECK(rc != 0);
  CHECK(e.find("the config form takes no --input") != std::string::npos);

  // A study config with a bad row: the file, the row and the value are named.
  std::ifstream sc(std::string(MOESEG_FIXTURE_DIR) + "/../../configs/studies/uncertainty.json");
  REQUIRE(sc.good());
  json study = json::parse(sc);
  auto bad_study = [&](const std::function<void(json&)>& edit) {
    json s = study;
    edit(s["presets"]["tiny"]);
    const std::string path = dir.str("bad_study.json");
    std::ofstream(path) << s.dump(2);
    return run_cli_capture("reproduce --study uncertainty --study-config " + path + " --from " + run + " --quiet --out " +
                               dir.str("bad_out"),
                           rc);
  };
  e = bad_study([](json& p) { p["rows"][0]["model"] = "frrnA_moe_nothing"; });
  CHECK(rc != 0);
  CHECK(e.find("presets.tiny.rows[0]: 'frrnA_moe_nothing' is not a model of") != std::string::npos);
  e = bad_study([](json& p) { p["rows"][1]["members"] = "all"; });
  CHECK(rc != 0);
  CHECK(e.find("rows[1].members") != std::string::npos);
  CHECK(e.find("'all'") != std::string::npos);
  e = bad_study([](json& p) { p["conditions"][1]["severity"] = 6; });
  CHECK(rc != 0);
  CHECK(e.find("conditions[1]: key 'severity' is 6, outside [1, 5]") != std::string::npos);
  e = bad_study([](json& p) { p["conditions"][1]["corruptions"] = {"frost"}; });
  CHECK(rc != 0);
  CHECK(e.find("'frost'") != std::string::npos);
  e = bad_study([](json& p) { p["rows"][5]["mc_dropout"]["rate"] = 1.0; });
  CHECK(rc != 0);
  CHECK(e.find("mc_dropout: key 'rate' is 1, outside [0, 1)") != std::string::npos);
  e = bad_study([](json& p) { p["rows"][0]["measures"] = {"variance"}; });
  CHECK(rc != 0);
  CHECK(e.find("unknown measure 'variance'") != std::string::npos);
  e = bad_study([](json& p) { p["pavpu_threshold"] = 0.5; });
  CHECK(rc != 0);
  CHECK(e.find("threshold 0.5 is not a point of the grid") != std::string::npos);
}

TEST_CASE("reproduce --study uncertainty: --from is required") {
  int rc = -1;
  const std::string out = run_cli_capture("reproduce --study uncertainty --out /tmp/never_written_moeseg_unc", rc);
  CHECK(rc != 0);
  CHECK(out.find("--from RUN is required") != std::string::npos);
}
