// `moeseg eval CONFIG [--data ROOT] [--list FILE] [--checkpoint W] [--subsets a,b] [--json FILE]
//  [--examples N] [--set key=value]...`: per-subset mIoU (default highway, urban, ambiguous, all;
// test split) of the config's model, printed and written as JSON (default <run>/eval.json);
// for an MoE also the gate-weight statistics and the expert-disagreement analysis
// (training/report.h defines the categories). Weights: --checkpoint, else <run>/best/
// model.safetensors when it exists, else what the model config itself loads (ensembles).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/cli_args.h"
#include "core/error.h"
#include "data/dataset_factory.h"
#include "core/safetensors.h"
#include "models/registry.h"
#include "tools/cmd_training.h"
#include "core/device_probe.h"
#include "training/evaluation.h"
#include "training/report.h"
#include "training/trainer.h"

namespace moeseg::cli {

int run_eval(int argc, char** argv) {
  ensure_passive_omp_wait("eval");
  std::string checkpoint, json_out, subsets;
  std::vector<std::string> configs, sets;
  EvalOptions eo;
  ArgParser args("moeseg eval", "CONFIG [options]", "Evaluates a trained model per test subset.");
  args.positionals(&configs, "CONFIG", 1, 1)
      .action("--data", "ROOT", "dataset root (overrides data.root)",
              [&](const std::string& v) {   // relative to the working directory, not to the config's folder
                sets.push_back("data.root=" + nlohmann::json(std::filesystem::absolute(v).string()).dump());
              })
      .option("--list", &eo.list_file, "FILE",
              "evaluate the images this list file names instead of the subsets (the dataset's own list format: an "
              "A2D2 split file, CamVid <image> <label> lines)")
      .option("--checkpoint", &checkpoint, "W", "model weights (safetensors state_dict of the whole model)")
      .option("--subsets", &subsets, "A,B", "subsets to evaluate (default: data.test_subsets)")
      .option("--split", &eo.split, "S", "split (default test; CamVid also list:NAME for <root>/NAME.txt)")
      .option("--json", &json_out, "FILE", "where to write the results (default <run>/eval.json)")
      .option("--examples", &eo.examples_per_subset, "N", "write N example predictions per subset as PNG into <run>/examples", 0)
      .repeated("--set", &sets, "KEY=VALUE", "override a config value")
      .action("--device", "D", "cpu, cuda or cuda:N (same as --set train.device=D)",
              [&](const std::string& v) { sets.push_back("train.device=" + v); })
      .flag("--quiet", &eo.quiet, "no progress output");
  if (!args.parse(argc, argv)) return 0;
  eo.subsets = data::split_csv(subsets);
  const std::string config = configs[0];
  ExperimentConfig c = load_experiment_config(config, sets);
  auto model = load_trained_experiment_model(c, checkpoint, &checkpoint);
  model->to(resolve_device(c.train.device));
  if (eo.examples_per_subset > 0) eo.examples_dir = c.out + "/examples";
  nlohmann::json r = evaluate_on_subsets(*model, c, eo, c.name);
  r["checkpoint"] = checkpoint;
  std::printf("%s (%s)\n", c.name.c_str(), checkpoint.empty() ? "weights from the model config" : checkpoint.c_str());
  auto number = [](const nlohmann::json& v, const char* k) {
    return v.contains(k) && v.at(k).is_number() ? v.at(k).get<double>() : NAN;
  };
  std::vector<std::string> order = eo.subsets.empty() ? c.data.test_subsets : eo.subsets;
  if (!eo.list_file.empty()) order = {"list"};
  for (const std::string& subset : order) {   // the requested order (the JSON object is sorted)
    if (!r["subsets"].contains(subset)) continue;
    const nlohmann::json& v = r["subsets"][subset];
    std::printf("  %-10s %5lld images  mIoU %6.2f%%  pixel acc %6.2f%%", subset.c_str(),
                static_cast<long long>(v.value("images", 0)), 100 * number(v, "miou"),
                100 * number(v, "pixel_accuracy"));
    if (v.contains("gate")) {
      std::printf("  gate mean");
      for (auto& w : v["gate"]["mean_weight"]) std::printf(" %.3f", w.get<double>());
    }
    if (v.contains("disagreement")) {
      auto& d = v["disagreement"]["ground_truth"];
      std::printf("  both right %.1f%%, critical %.1f%%", 100 * d["both_right"].get<double>(),
                  100 * d["neither_right"]["moe_wrong"].get<double>());
    }
    std::printf("\n");
  }
  if (json_out.empty()) {
    std::filesystem::create_directories(c.out);
    json_out = c.out + "/eval.json";
  }
  write_file_atomic(json_out, r.dump(2) + "\n");
  std::printf("wrote %s\n", json_out.c_str());
  return 0;
}

}  // namespace moeseg::cli
