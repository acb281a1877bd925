// `moeseg reproduce` end to end on the tiny preset with two seeds: the nine rows of the main
// table with mean ± std cells, results.json holding each seed's evaluation and means that are
// the means of those values, every model's config written, and a second run that trains nothing
// (finished runs are skipped). About 15 s on 2 cores.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/small_cli_case.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
using moeseg::testing::run_cli_capture;
size_t count(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t p = s.find(part); p != std::string::npos; p = s.find(part, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("reproduce: the tiny preset with 2 seeds prints mean ± std cells, results.json per seed, reruns skip") {
  moeseg::testing::TempDir dir("reproduce");
  int rc = -1;
  const std::string out = run_cli_capture("reproduce --preset tiny --seeds 2 --quiet --out " + dir.str(), rc);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("| Model | highway | urban | ambiguous | highway + urban |") != std::string::npos);
  for (const char* row : {"| Baseline |", "| Highway expert |", "| Urban expert |", "| Ensemble mean |", "| Ensemble max |",
                          "| MoE simple |", "| MoE simple + conv |", "| MoE class-wise |", "| MoE class-wise + conv |"})
    CHECK_MESSAGE(count(out, row) == 1, row);
  const size_t table = out.find("| Model |");
  REQUIRE(table != std::string::npos);
  CHECK(count(out.substr(table), " ± ") == 9 * 4);   // every cell of the table: mean ± std
  std::ifstream f(dir.str("results.json"));
  const json r = json::parse(f);
  CHECK(r["seeds"] == 2);
  REQUIRE(r["models"].size() == 9);
  for (const json& m : r["models"]) {
    INFO(m["title"].get<std::string>());
    REQUIRE(m["per_seed"].size() == 2);
    for (size_t k = 0; k < 4; ++k) {
      const std::string sub = r["columns"][k];
      const double a = m["per_seed"][0]["subsets"][sub]["miou"], b = m["per_seed"][1]["subsets"][sub]["miou"];
      CHECK(m["miou_mean"][k].get<double>() == doctest::Approx((a + b) / 2).epsilon(1e-12));
      CHECK(m["miou_std"][k].get<double>() == doctest::Approx(std::abs(a - b) / std::sqrt(2.0)).epsilon(1e-9));
    }
  }
  CHECK(fs::exists(dir.str("configs/frrnA_moe_classwise_conv.json")));
  CHECK(fs::exists(dir.str("configs/seed1/frrnA_highway.json")));
  CHECK(fs::exists(dir.str("runs/seed1/frrnA_highway/best/model.safetensors")));
  const std::string again = run_cli_capture("reproduce --preset tiny --seeds 2 --quiet --out " + dir.str(), rc);
  CHECK(rc == 0);
  CHECK(count(again, "already trained") == 14);   // 7 trained models x 2 seeds
  CHECK(count(again, "[reproduce] training") == 0);
}

TEST_CASE("reproduce: bad arguments name the option and the value") {
  int rc = -1;
  std::string out = run_cli_capture("reproduce --seeds zero", rc);
  CHECK(rc != 0);
  CHECK(out.find("--seeds: 'zero' is not an integer") != std::string::npos);
  out = run_cli_capture("reproduce --preset nosuch --out /tmp/never_written_moeseg", rc);
  CHECK(rc != 0);
  CHECK(out.find("unknown preset 'nosuch' (known: camvid-cpu, cpu, tiny)") != std::string::npos);
  out = run_cli_capture("reproduce --study nosuch", rc);
  CHECK(rc != 0);
  CHECK(out.find("unknown study 'nosuch'") != std::string::npos);
}
