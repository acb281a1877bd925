// The model-level MoE study (training/experiments/model_level_moe.h).
#include "training/experiments/model_level_moe.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/json_checks.h"
#include "core/wall_clock.h"
#include "core/safetensors.h"
#include "data/synthetic_scenes.h"
#include "models/registry.h"
#include "training/checkpoint.h"
#include "training/evaluation.h"
#include "training/report.h"
#include "training/trainer.h"
#include "training/experiments/study_steps.h"

namespace moeseg {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;


// A preset's number, typed and range-checked (2.5 epochs or 2^32 + 1 images are refused, not
// truncated or wrapped).
template <typename T>
T number(const json& preset, const char* key) {
  return get_required<T>(preset, key, "reproduce: preset");
}

std::string capitalised(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

json model_level_moe_experiments(const json& S, const std::string& preset, const std::string& data_root,
                                 const std::string& out, int s) {
  const json& P = preset_of(S, preset);
  const json& T = S.at("template");
  const bool camvid = P.at("dataset") == "camvid";
  const std::string e1 = camvid ? "dusk" : "highway", e2 = camvid ? "day" : "urban";
  const json test_subsets = camvid ? json{"dusk", "day", "all"} : json{"highway", "urban", "ambiguous", "all"};
  const int64_t classes = camvid ? 11 : 38;
  const std::string runs = out + "/runs" + (s > 0 ? "/seed" + std::to_string(s) : "");
  const uint64_t seed_shift = 100 * static_cast<uint64_t>(s);

  auto expert_model = [&](uint64_t seed) {
    return json{{"model", "frrn_a"}, {"num_classes", classes}, {"width", number<double>(P, "model_width")},
                {"seed", seed + seed_shift}};
  };
  auto experiment = [&](const std::string& name, const json& model, const std::string& subset, int epochs, int batch,
                        double lr, bool gate) {
    json j = {{"name", name}, {"model", model}, {"data", T.at("data")}, {"train", T.at("train")}, {"out", runs + "/" + name}};
    json& d = j["data"];
    d["dataset"] = camvid ? "camvid" : "a2d2";
    d["root"] = data_root;
    d["subset"] = subset;
    d["height"] = P.at("height");
    d["width"] = P.at("width");
    d["test_subsets"] = test_subsets;
    if (camvid) d["camvid_dusk_holdout"] = P.value("camvid_dusk_holdout", 20);
    json& t = j["train"];
    t["epochs"] = epochs;
    t["batch"] = batch;
    t["optimizer"]["lr"] = lr;
    t["val_every"] = P.at("val_every");
    t["patience"] = P.at("patience");
    t["seed"] = T.at("train").value("seed", 304) + s;
    t["cache_expert_outputs"] = gate;
    return j;
  };
  json rows = json::array();
  auto row = [&](const std::string& title, const json& cfg, bool trained) {
    rows.push_back({{"name", cfg.at("name")}, {"title", title}, {"trained", trained}, {"config", cfg}});
  };
  const int batch = number<int>(P, "batch"), gate_batch = number<int>(P, "gate_batch");
  const double lr = number<double>(P, "lr"), gate_lr = number<double>(P, "gate_lr");
  const std::string n1 = "frrnA_" + e1, n2 = "frrnA_" + e2, nb = "frrnA_baseline";
  const json c1 = experiment(n1, expert_model(1), e1, number<int>(P, "expert_epochs"), batch, lr, false);
  const json c2 = experiment(n2, expert_model(2), e2, number<int>(P, "expert_epochs"), batch, lr, false);
  const json cb = experiment(nb, expert_model(3), e1 + "," + e2, number<int>(P, "baseline_epochs"), batch, lr, false);
  row("Baseline", cb, true);
  row(capitalised(e1) + " expert", c1, true);
  row(capitalised(e2) + " expert", c2, true);
  auto frozen = [&](const json& c, uint64_t seed) {
    json e = expert_model(seed);
    e["checkpoint"] = c.at("out").get<std::string>() + "/best/model.safetensors";
    return e;
  };
  const json experts = {frozen(c1, 1), frozen(c2, 2)};
  for (const char* mode : {"mean", "max"}) {
    const json m = {{"type", "ensemble"}, {"num_classes", classes}, {"mode", mode}, {"experts", experts}};
    row(std::string("Ensemble ") + mode, experiment(std::string("frrnA_ensemble_") + mode, m, e1 + "," + e2, 0, batch, lr, false),
        false);
  }
  struct Variant {
    const char *title, *gate;
    bool conv;
    const char* name;
  };
  const json& moe = T.at("moe");
  for (const Variant& v : {Variant{"MoE simple", "simple", false, "frrnA_moe_simple"},
                           Variant{"MoE simple + conv", "simple", true, "frrnA_moe_simple_conv"},
                           Variant{"MoE class-wise", "classwise", false, "frrnA_moe_classwise"},
                           Variant{"MoE class-wise + conv", "classwise", true, "frrnA_moe_classwise_conv"}}) {
    const json m = {{"type", "moe"},         {"num_classes", classes},
                    {"experts", experts},    {"gate", v.gate},
                    {"with_conv", v.conv},   {"tap", moe.at("tap")},
                    {"input_size", {P.at("height"), P.at("width")}}, {"fc_features", moe.at("fc_features")},
                    {"seed", moe.at("seed").get<int64_t>() + s}};
    row(v.title, experiment(v.name, m, e1 + "," + e2, number<int>(P, "gate_epochs"), gate_batch, gate_lr, true), true);
  }
  return rows;
}

int run_model_level_moe(const StudyOptions& opt) {
  MOESEG_CHECK(opt.dataset == "synthetic" || opt.dataset == "camvid", "reproduce: --dataset must be synthetic or camvid");
  MOESEG_CHECK(opt.seeds >= 1, "reproduce: --seeds ", opt.seeds, " must be at least 1");
  json S = read_json_file(opt.study_config, "reproduce: the study config");
  const std::string preset = opt.preset.empty() ? (opt.dataset == "camvid" ? "camvid-cpu" : "cpu") : opt.preset;
  preset_of(S, preset);   // names the known presets when it is not one
  json& P = S["presets"][preset];
  const std::string preset_data = P.value("dataset", "synthetic");
  MOESEG_CHECK((preset_data == "camvid") == (opt.dataset == "camvid"), "reproduce: preset '", preset, "' is for the ",
               preset_data, " data, not ", opt.dataset);
  if (opt.epochs > 0) P["expert_epochs"] = P["baseline_epochs"] = opt.epochs;
  if (opt.gate_epochs > 0) P["gate_epochs"] = opt.gate_epochs;

  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(opt.out);
  const std::string out = fs::weakly_canonical(opt.out).string();
  if (opt.fresh) fs::remove_all(fs::path(out) / "runs");
  json timings = json::object();

  const bool camvid = opt.dataset == "camvid";
  std::string data_root = opt.data_root;
  if (camvid) data_root = fs::weakly_canonical(data_root.empty() ? find_camvid_root() : data_root).string();
  else
    data_root = prepare_synthetic_data(P, data_root.empty() ? out + "/data" : data_root,
                                       opt.study_config + ": presets." + preset, timings);

  TrainOptions topt;
  topt.quiet = opt.quiet;
  std::vector<std::pair<std::string, std::string>> curves;
  std::vector<json> seeds;   // per seed: the rows
  for (int s = 0; s < opt.seeds; ++s) {
    json rows = model_level_moe_experiments(S, preset, data_root, out, s);
    const std::string cfg_dir = out + "/configs" + (s > 0 ? "/seed" + std::to_string(s) : "");
    fs::create_directories(cfg_dir);
    for (json& r : rows) {
      const std::string path = cfg_dir + "/" + r["name"].get<std::string>() + ".json";
      write_file_atomic(path, r["config"].dump(2) + "\n");
      r["config_path"] = path;
      if (!r["trained"].get<bool>()) continue;
      const ExperimentConfig c = parse_experiment_config(r["config"], path, cfg_dir);
      const std::string title = r["title"].get<std::string>() + (opt.seeds > 1 ? " (seed " + std::to_string(s) + ")" : "");
      const auto t = std::chrono::steady_clock::now();
      train_study_model(c, topt, title);
      timings[c.name + (s > 0 ? "_seed" + std::to_string(s) : "")] = seconds_since(t);
      if (s == 0) {
        curves.push_back({r["title"].get<std::string>() + " loss", c.out + "/loss.svg"});
        curves.push_back({r["title"].get<std::string>() + " val mIoU", c.out + "/miou.svg"});
      }
    }
    seeds.push_back(rows);
  }

  // ---- evaluation: every model of every seed on every test subset ----------------------------
  const auto t_eval = std::chrono::steady_clock::now();
  const std::vector<std::string> test_subsets = camvid ? std::vector<std::string>{"dusk", "day", "all"}
                                                       : std::vector<std::string>{"highway", "urban", "ambiguous", "all"};
  const size_t R = seeds[0].size(), K = test_subsets.size();
  std::vector<std::vector<std::vector<double>>> miou(R, std::vector<std::vector<double>>(K));   // [row][col][seed]
  json results = {{"study", "model_level_moe"}, {"preset", preset}, {"dataset", opt.dataset}, {"data", data_root},
                  {"seeds", opt.seeds}, {"columns", test_subsets}, {"models", json::array()}};
  std::vector<std::pair<std::string, std::string>> examples;
  for (size_t r = 0; r < R; ++r) {
    json model_json = {{"title", seeds[0][r]["title"]}, {"name", seeds[0][r]["name"]}, {"per_seed", json::array()}};
    for (int s = 0; s < opt.seeds; ++s) {
      const json& row = seeds[s][r];
      const std::string cfg_path = row["config_path"].get<std::string>();
      const ExperimentConfig c = parse_experiment_config(row["config"], cfg_path, fs::path(cfg_path).parent_path().string());
      auto model = build_experiment_model(c);
      if (row["trained"].get<bool>()) load_checkpoint(*model, c.out + "/best/model.safetensors");
      EvalOptions eo;
      eo.quiet = opt.quiet;
      eo.subsets = test_subsets;
      if (s == 0) {
        eo.examples_dir = out + "/examples";
        eo.examples_per_subset = 1;
      }
      json ev = evaluate_on_subsets(*model, c, eo, c.name);
      for (size_t k = 0; k < K; ++k) {
        const json& m = ev["subsets"][test_subsets[k]]["miou"];
        miou[r][k].push_back(m.is_number() ? m.get<double>() : NAN);
      }
      ev["seed"] = s;
      model_json["per_seed"].push_back(ev);
    }
    json mean = json::array(), sd = json::array();
    for (size_t k = 0; k < K; ++k) {
      double m = 0, v = 0;
      for (double x : miou[r][k]) m += x;
      m /= static_cast<double>(opt.seeds);
      for (double x : miou[r][k]) v += (x - m) * (x - m);
      const double s = opt.seeds > 1 ? std::sqrt(v / static_cast<double>(opt.seeds - 1)) : 0.0;
      mean.push_back(std::isfinite(m) ? json(m) : json());
      sd.push_back(std::isfinite(s) ? json(s) : json());
    }
    model_json["miou_mean"] = mean;
    model_json["miou_std"] = sd;
    results["models"].push_back(model_json);
    for (auto& sub : test_subsets) {
      if (r == 0) {
        examples.push_back({sub + ": input", "examples/" + sub + "_0_image.png"});
        examples.push_back({sub + ": ground truth", "examples/" + sub + "_0_truth.png"});
      }
      examples.push_back({sub + ": " + seeds[0][r]["title"].get<std::string>(),
                          "examples/" + sub + "_0_" + seeds[0][r]["name"].get<std::string>() + ".png"});
    }
  }
  timings["evaluation"] = seconds_since(t_eval);
  const double total = seconds_since(t0);
  timings["total"] = total;
  results["timings_s"] = timings;

  const std::string a = camvid ? "dusk" : "highway", b = camvid ? "day" : "urban";
  std::vector<std::string> columns;
  for (auto& sub : test_subsets) columns.push_back(sub == "all" ? a + " + " + b : sub);
  std::vector<ResultRow> table;
  for (size_t r = 0; r < R; ++r) {
    ResultRow tr{seeds[0][r]["title"].get<std::string>(), {}, {}};
    for (size_t k = 0; k < K; ++k) {
      tr.miou.push_back(results["models"][r]["miou_mean"][k].is_number() ? results["models"][r]["miou_mean"][k].get<double>() : NAN);
      tr.miou_std.push_back(opt.seeds > 1 && results["models"][r]["miou_std"][k].is_number()
                                ? results["models"][r]["miou_std"][k].get<double>()
                                : NAN);
    }
    table.push_back(tr);
  }
  const std::string md = markdown_table(columns, table);
  results["markdown"] = md;
  write_file_atomic(out + "/results.json", results.dump(2) + "\n");
  char intro[512];
  std::snprintf(intro, sizeof intro,
                "FRRN-A (width %.3g) experts, baseline, ensembles and MoEs at %dx%d on %s (preset %s, %d seed%s); mIoU on "
                "the test split of each subset%s; total wall time %.0f s.",
                number<double>(P, "model_width"), number<int>(P, "height"), number<int>(P, "width"),
                camvid ? "CamVid" : "the synthetic scenes", preset.c_str(), opt.seeds, opt.seeds > 1 ? "s" : "",
                opt.seeds > 1 ? " (mean ± sample std over seeds)" : "", total);
  write_html_report(out + "/report.html", "moeseg reproduce: model-level MoE", intro, columns, table, curves, examples);
  std::printf("\nmIoU (%%), test split%s:\n\n%s\nwall time %.1fs; wrote %s/results.json and %s/report.html\n",
              opt.seeds > 1 ? ", mean ± std over seeds" : "", md.c_str(), total, out.c_str(), out.c_str());
  return 0;
}

}  // namespace moeseg
