// `moeseg reproduce --study sparse-moe` end to end on the tiny preset: the exact header with Dense
// first, the preset's rows in order, the cells in their ranges (usage only for MoE rows, more
// parameters for MoEs, GFLOPs as run: a k = 1 ConvMoE costs the dense network plus its routers, a
// k = 2 BlockMoE more), results.json agreeing with the table and counting every token once per
// domain and once per class, the specialisation tables and routing pictures, a second run that
// trains nothing and prints the same quality columns, and bad study configs named. ~10 s.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/markdown_rows.h"
#include "tests/support/read_text.h"
#include "tests/support/small_cli_case.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using moeseg::testing::line_starting;
using moeseg::testing::numeric_cells;
using moeseg::testing::run_cli_capture;

namespace {

const char* kHeader = "| Model | mIoU | usage entropy | usage CV | params (M) | GFLOPs | ms/img |\n|---|---:|---:|---:|---:|---:|---:|\n";

std::vector<std::string> main_rows(const std::string& out) {
  std::vector<std::string> rows;
  const size_t at = out.find(kHeader);
  if (at == std::string::npos) return rows;
  std::istringstream s(out.substr(at));
  std::string l;
  std::getline(s, l);
  std::getline(s, l);
  while (std::getline(s, l) && l.rfind("| ", 0) == 0) rows.push_back(l);
  return rows;
}

int64_t sum_all(const json& table) {
  int64_t s = 0;
  for (const json& row : table)
    for (const json& v : row) s += v.get<int64_t>();
  return s;
}

}  // namespace

TEST_CASE("reproduce --study sparse-moe on the tiny preset: the table, results.json, specialisation, pictures, rerun") {
  moeseg::testing::TempDir dir("sparse_moe_study");
  int rc = -1;
  const std::string out = dir.str("run");
  const std::string text = run_cli_capture("reproduce --study sparse-moe --preset tiny --quiet --out " + out, rc);
  INFO(text);
  REQUIRE(rc == 0);
  const auto rows = main_rows(text);
  REQUIRE(rows.size() == 4);
  const std::vector<std::string> titles = {"Dense", "ConvMoE N=4 k=1 +bal", "BlockMoE N=4 k=2", "PatchMoE N=8 k=1 +bal"};
  for (size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].rfind("| " + titles[i] + " |", 0) == 0);
  std::vector<std::vector<double>> cells;
  for (auto& r : rows) cells.push_back(numeric_cells(r));
  for (auto& c : cells) REQUIRE(c.size() == 6);
  // Dense: no usage; MoEs: entropy in [0, 1], CV >= 0, more parameters.
  CHECK(std::isnan(cells[0][1]));
  CHECK(std::isnan(cells[0][2]));
  for (size_t i = 1; i < cells.size(); ++i) {
    CHECK(cells[i][1] >= 0.0);
    CHECK(cells[i][1] <= 1.0);
    CHECK(cells[i][2] >= 0.0);
    CHECK(cells[i][3] > cells[0][3]);
  }
  for (auto& c : cells) {
    CHECK(c[0] >= 0.0);
    CHECK(c[0] <= 100.0);
    CHECK(c[4] > 0.0);
    CHECK(c[5] > 0.0);
  }
  CHECK(std::fabs(cells[1][4] - cells[0][4]) <= 0.002);   // ConvMoE k = 1: dense cost + tiny routers
  CHECK(cells[2][4] > cells[0][4] + 0.002);               // BlockMoE k = 2: two blocks per image

  const json r = json::parse(moeseg::testing::read_text(fs::path(out) / "results.json"));
  REQUIRE(r["models"].size() == 4);
  const std::vector<size_t> layers = {0, 5, 2, 5};   // layer4's convs (with the downsample) or its blocks
  for (size_t i = 0; i < 4; ++i) {
    const json& m = r["models"][i];
    CAPTURE(i);
    CHECK(m["title"] == titles[i]);
    CHECK(m["layers"].size() == layers[i]);
    CHECK(std::fabs(100 * m["miou"].back().get<double>() - cells[i][0]) <= 0.051);
    if (i == 0) {
      CHECK_FALSE(m.contains("specialisation"));
      continue;
    }
    const json& s = m["specialisation"];
    CHECK(s["domains"] == json({"highway", "urban", "ambiguous"}));
    // 4 test images per domain; per image one token, per patch (64x64 / 16 = 4x4, patch 2) four.
    const int64_t per_domain = i == 3 ? 16 : 4;
    for (const json& d : s["by_domain"]) CHECK(std::accumulate(d.begin(), d.end(), int64_t{0}, [](int64_t a, const json& v) {
                                                 return a + v.get<int64_t>();
                                               }) == per_domain);
    CHECK(sum_all(s["by_class"]) == 3 * per_domain);
    // Every layer routed k pairs per token of every test image (12 images).
    for (const json& l : m["layers"]) {
      int64_t pairs = 0;
      for (const json& v : l["pairs"]) pairs += v.get<int64_t>();
      CHECK(pairs == (i == 2 ? 2 : 1) * 12 * (i == 3 ? 4 : 1));
    }
    CHECK(text.find(titles[i] + ", layer " + s["layer"].get<std::string>()) != std::string::npos);
  }
  CHECK(r["models"][3]["specialisation"]["layer"] == "backbone.layer4.1.conv2");
  CHECK(fs::exists(fs::path(out) / "pictures" / "patchmoe_n8_k1_bal_highway_0.png"));
  CHECK(moeseg::testing::read_text(fs::path(out) / "report.html").find("pictures/patchmoe_n8_k1_bal_urban_0.png") !=
        std::string::npos);

  // A second run trains nothing and evaluates to the same quality and usage columns.
  const std::string again = run_cli_capture("reproduce --study sparse-moe --preset tiny --out " + out, rc);
  REQUIRE(rc == 0);
  size_t skipped = 0;
  for (size_t at = again.find("already trained"); at != std::string::npos; at = again.find("already trained", at + 1))
    ++skipped;
  CHECK(skipped == 4);
  const auto rows2 = main_rows(again);
  REQUIRE(rows2.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    const auto c2 = numeric_cells(rows2[i]);
    for (size_t j = 0; j < 4; ++j)
      CHECK((std::isnan(cells[i][j]) ? std::isnan(c2[j]) : c2[j] == cells[i][j]));
  }
}

TEST_CASE("reproduce --study sparse-moe: bad study configs and options are named") {
  moeseg::testing::TempDir dir("sparse_moe_bad");
  const json base = json::parse(moeseg::testing::read_text(fs::path(MOESEG_FIXTURE_DIR).parent_path().parent_path() / "configs/studies/sparse-moe.json"));
  auto run_with = [&](const std::function<void(json&)>& edit, const std::string& extra = "") {
    json s = base;
    edit(s);
    const std::string path = dir.str("study.json");
    std::ofstream(path) << s.dump(2);
    int rc = 0;
    const std::string text =
        run_cli_capture("reproduce --study sparse-moe --preset tiny --quiet --study-config " + path + " --out " +
                            dir.str("run") + " " + extra,
                        rc);
    CHECK(rc != 0);
    return text;
  };
  std::string t = run_with([](json& s) { s["presets"]["tiny"]["variants"][0]["kind"] = "TokenMoE"; });
  CHECK(t.find("variants[0]: kind 'TokenMoE' is not in the template's kinds (BlockMoE, ConvMoE, PatchMoE)") != std::string::npos);
  t = run_with([](json& s) { s["presets"]["tiny"]["variants"][1]["k"] = 5; });
  CHECK(t.find("variants[1]: k = 5 exceeds experts = 4") != std::string::npos);
  t = run_with([](json& s) { s["presets"]["tiny"]["variants"][1]["kind"] = "ConvMoE";
                             s["presets"]["tiny"]["variants"][1]["k"] = 1;
                             s["presets"]["tiny"]["variants"][1]["balance"] = true; });
  CHECK(t.find("variants[1]: variant ConvMoE N=4 k=1 +bal is listed twice") != std::string::npos);
  t = run_with([](json& s) { s["template"]["kinds"]["ConvMoE"]["replace"] = "layer7"; });
  CHECK(t.find("pattern 'layer7' matches no Conv2d") != std::string::npos);
  t = run_with([](json&) {}, "--seeds 2");
  CHECK(t.find("--seeds 2 is not supported") != std::string::npos);
}
