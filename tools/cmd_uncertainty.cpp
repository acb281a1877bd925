// `moeseg uncertainty`, two forms.
// Config form: `moeseg uncertainty CONFIG [--corruption NAME|all --severity S] [--subsets a,b]
//   [--json OUT]`: the table `| Measure | Members | ECE | MCE | Brier | NLL | AUROC | PAvPU |` of the
//   config's trained model (weights as `moeseg eval`) on its test subsets, clean or corrupted
//   (training/uncertainty_evaluation.h): its plain member set, and with a gate also the weighted
//   and stacked ones, every measure that applies; --mc-dropout P adds MC-dropout samples as a row.
// Tensor form: one eval-mode forward of a model (registry name or JSON
// config, as `moeseg infer`) on an input tensor, the per-pixel uncertainty measures of
// training/uncertainty.h written as safetensors (float64 [N, H, W]: "predictive_entropy" and
// "mutual_information" in nats, "expert_variance" normalised by the batch maximum, "gate_entropy"
// normalised by log E, each where it applies: MI and EV need >= 2 members, gate entropy a gate;
// plus "predicted", int64) and the calibration metrics of training/calibration.h per measure as
// JSON next to it (OUT with .json; pooled over all valid pixels, and "per_image_mean" as the
// reference averages); with --pictures DIR also PNGs: reliability.png (confidence =
// max probability), reliability_<measure>.png (confidence = 1 - normalised measure) and
// <measure>_<n>.png, the normalised measure of image n through the colour ramp (0..1).
// Tested by tests/tools/test_cli_uncertainty.cpp.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/cli_args.h"
#include "core/device_probe.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/value_checks.h"
#include "models/registry.h"
#include "data/corruptions.h"
#include "data/dataset_factory.h"
#include "tools/cmd_training.h"
#include "tools/commands.h"
#include "tools/model_choice.h"
#include "training/calibration.h"
#include "training/experiment_config.h"
#include "training/experiment_setup.h"
#include "training/uncertainty_evaluation.h"
#include "training/uncertainty.h"
#include "training/uncertainty_images.h"

namespace moeseg::cli {

namespace {

std::string json_path_for(const std::string& out) {
  const std::string ext = ".safetensors";
  if (out.size() > ext.size() && out.compare(out.size() - ext.size(), ext.size(), ext) == 0)
    return out.substr(0, out.size() - ext.size()) + ".json";
  return out + ".json";
}

struct ConfigForm {
  std::string config, checkpoint, corruption, subsets, json_out, pictures;
  int severity = 0, max_images = 0, batch = 8, mc_samples = 2;
  double mc_rate = -1, threshold = 0.49;
  int64_t seed = 0;
  bool quiet = false;
};

int run_uncertainty_config(const ConfigForm& f) {
  const std::string where = "moeseg uncertainty " + f.config;
  ExperimentConfig c = load_experiment_config(f.config);
  std::string checkpoint;
  auto model = load_trained_experiment_model(c, f.checkpoint, &checkpoint);
  model->to(resolve_device(c.train.device));
  UncertaintyCondition cond;
  cond.subsets = f.subsets.empty() ? c.data.test_subsets : data::split_csv(f.subsets);
  MOESEG_CHECK(!cond.subsets.empty(), where, ": no test subset (give --subsets)");
  cond.name = "clean";
  if (!f.corruption.empty()) {
    if (f.corruption == "all") cond.corruptions = data::all_corruptions();
    else cond.corruptions.push_back(data::parse_corruption(f.corruption, "moeseg uncertainty: --corruption"));
    MOESEG_CHECK(f.severity >= data::kMinCorruptionSeverity && f.severity <= data::kMaxCorruptionSeverity,
                 "moeseg uncertainty: --severity is ", f.severity, ", outside 1..5",
                 f.severity == 0 ? " (is --severity missing?)" : "");
    cond.severity = f.severity;
    cond.seed = static_cast<uint64_t>(f.seed);
    cond.name = f.corruption + " severity " + std::to_string(f.severity);
  } else {
    MOESEG_CHECK(f.severity == 0, "moeseg uncertainty: --severity ", f.severity, " needs --corruption NAME");
  }
  // One probe forward tells the member count and whether there is a gate.
  ModelOutput probe;
  {
    model->eval();
    NoGradGuard ng;
    probe = model->forward_detailed(Tensor::zeros({1, 3, c.data.height, c.data.width}).to(model->device()));
  }
  std::vector<UncertaintyRowSpec> rows = default_uncertainty_rows(probe, c.name, c.name);
  if (f.mc_rate >= 0) {
    UncertaintyRowSpec r;
    r.model = c.name;
    r.mc_dropout = true;
    r.mc_rate = f.mc_rate;
    r.mc_samples = f.mc_samples;
    r.mc_seed = static_cast<uint64_t>(f.seed);
    r.members = c.name + " · MC-dropout p=" + nlohmann::json(f.mc_rate).dump() + ", " + std::to_string(f.mc_samples) +
                " samples";
    r.measures = {"predictive_entropy"};
    if (f.mc_samples >= 2) r.measures.insert(r.measures.end(), {"mutual_information", "expert_variance"});
    rows.push_back(r);
  }
  UncertaintyEvalOptions o;
  o.max_images = f.max_images;
  o.batch = f.batch;
  o.pavpu_threshold = f.threshold;
  o.pictures_dir = f.pictures;
  o.quiet = f.quiet;
  const std::vector<UncertaintyCell> cells = evaluate_uncertainty({{c.name, model.get()}}, c.data, rows, cond, o);
  std::string subsets;
  for (const std::string& s : cond.subsets) subsets += (subsets.empty() ? "" : ",") + s;
  std::printf("%s (%s), subsets %s, condition %s, PAvPU at t = %.2f\n\n%s", c.name.c_str(),
              checkpoint.empty() ? "weights from the model config" : checkpoint.c_str(), subsets.c_str(),
              cond.name.c_str(), f.threshold, markdown_table(uncertainty_table(cells)).c_str());
  if (!f.json_out.empty()) {
    nlohmann::json j = {{"config", f.config}, {"checkpoint", checkpoint}, {"condition", cond.name},
                        {"subsets", cond.subsets}, {"severity", cond.severity}, {"pavpu_threshold", f.threshold},
                        {"cells", uncertainty_cells_json(cells)}};
    write_file_atomic(f.json_out, j.dump(2) + "\n");
    std::printf("wrote %s\n", f.json_out.c_str());
  }
  return 0;
}

}  // namespace

int run_uncertainty(int argc, char** argv) {
  ModelChoice m;
  std::string weights, input, labels_path, output, pictures, members = "plain", reduction = "predicted", device = "cpu";
  int64_t ignore_index = 255;
  std::vector<std::string> positionals;
  ConfigForm cf;
  ArgParser args("moeseg uncertainty",
                 "CONFIG [--corruption NAME|all --severity S] [--subsets A,B] [--mc-dropout P] [--json OUT]\n"
                 "       moeseg uncertainty (--model NAME --classes N [--width-mult M] | --config FILE) --weights W.safetensors\n"
                 "                    --input X.safetensors --labels Y.safetensors [--members plain|weighted|stacked]\n"
                 "                    [--gate-reduction predicted|mean_gate|mean_entropy] --out OUT.safetensors",
                 "Writes per-pixel \"predictive_entropy\", \"mutual_information\", \"expert_variance\", \"gate_entropy\"\n"
                 "(where they apply) and \"predicted\"; the metrics per measure (ECE, MCE, Brier, NLL in their\n"
                 "standard and reference forms, AUROC, conditional correctness, PAvPU) go to OUT with .json.\n"
                 "Config form: the metrics table of the config's trained model on its test subsets (weights from\n"
                 "--checkpoint, else <run>/best/model.safetensors), clean or under a corruption at a severity.");
  add_model_choice(args, m);
  args.option("--weights", &weights, "W", "model weights (safetensors state_dict)")
      .option("--input", &input, "X", "input tensor \"input\" (N x 3 x H x W) of a .safetensors file")

      .option("--labels", &labels_path, "Y", "labels \"labels\" (int64 N x H x W) of a .safetensors file")

      .option("--members", &members, "S", "member set: plain (default), weighted (by the gate), stacked (with the output)")
      .option("--gate-reduction", &reduction, "R", "class-wise gate: predicted (default), mean_gate, mean_entropy")
      .option("--ignore-index", &ignore_index, "I", "label value the metrics ignore (default 255)")
      .option("--pictures", &pictures, "DIR", "also write reliability diagrams and uncertainty maps (PNG) into DIR")
      .option("--out", &output, "OUT", "tensor form: output safetensors file")
      .option("--device", &device, "D", "cpu or cuda (default cpu)")
      .option("--checkpoint", &cf.checkpoint, "W", "config form: model weights (default <run>/best/model.safetensors)")
      .option("--corruption", &cf.corruption, "NAME", "config form: corrupt the test images (a corruption, or all)")
      .option("--severity", &cf.severity, "S", "config form: corruption severity 1..5")
      .option("--subsets", &cf.subsets, "A,B", "config form: test subsets (default the config's data.test_subsets)")
      .option("--max-images", &cf.max_images, "N", "config form: first N test images per subset (default all)", 0)
      .option("--batch", &cf.batch, "B", "config form: batch size (default 8)", 1)
      .option("--mc-dropout", &cf.mc_rate, "P", "config form: add MC-dropout samples at rate P as a row")
      .option("--mc-samples", &cf.mc_samples, "S", "config form: MC-dropout samples (default 2)", 1)
      .option("--threshold", &cf.threshold, "T", "config form: the PAvPU column's threshold (0.01, 0.03, ..., 0.99)")
      .option("--seed", &cf.seed, "S", "config form: seed of the corruptions and of MC-dropout (default 0)")
      .option("--json", &cf.json_out, "FILE", "config form: write the table's cells (and their detail) as JSON")
      .flag("--quiet", &cf.quiet, "config form: no progress output")
      .positionals(&positionals, "CONFIG", 0, 1);
  if (!args.parse(argc, argv)) return 0;
  if (!positionals.empty()) {
    ensure_passive_omp_wait("uncertainty");
    MOESEG_CHECK(input.empty() && labels_path.empty() && output.empty() && m.config.empty() && m.name.empty(),
                 "moeseg uncertainty ", positionals.front(),
                 ": the config form takes no --input/--labels/--out/--model/--config (that is the tensor form)");
    cf.config = positionals.front();
    cf.checkpoint = cf.checkpoint.empty() ? weights : cf.checkpoint;
    cf.pictures = pictures;
    return run_uncertainty_config(cf);
  }
  MOESEG_CHECK(!input.empty() && !labels_path.empty() && !output.empty(),
               "moeseg uncertainty: the tensor form needs --input X.safetensors, --labels Y.safetensors and --out OUT "
               "(or give a CONFIG for the config form)");
  const MemberSet set = parse_member_set(members, "moeseg uncertainty: --members");
  const GateReduction red = parse_gate_reduction(reduction, "moeseg uncertainty: --gate-reduction");
  const Device dev = resolve_device(device);
  std::shared_ptr<SegmentationModel> model = load_chosen_model(m, weights, dev, "moeseg uncertainty");
  Tensor x = load_input_images(input, "moeseg uncertainty").to(dev);
  Tensor y = load_label_maps(labels_path, x, "moeseg uncertainty");

  model->eval();
  NoGradGuard ng;
  const ModelOutput o = model->forward_detailed(x);
  const Members mem = members_from_output(o, set);
  const UncertaintyMaps u = compute_uncertainty(mem, o.gate, red);

  std::map<std::string, Tensor> out{{"predictive_entropy", u.predictive_entropy}, {"predicted", u.predicted}};
  std::vector<std::string> measures{"predictive_entropy"};
  if (mem.probs.size() >= 2) {
    out["mutual_information"] = u.mutual_information;
    out["expert_variance"] = u.expert_variance;
    measures.push_back("mutual_information");
    measures.push_back("expert_variance");
  }
  if (u.gate_entropy.defined()) {
    out["gate_entropy"] = u.gate_entropy;
    measures.push_back("gate_entropy");
  }
  nlohmann::json j = {{"members", member_set_name(set)},
                      {"member_count", mem.probs.size()},
                      {"gate_reduction", gate_reduction_name(red)},
                      {"ignore_index", ignore_index},
                      {"measures", nlohmann::json::object()}};
  for (const std::string& name : measures) {
    CalibrationAccumulator acc(ignore_index);
    const Tensor un = normalised_uncertainty(u, name);
    acc.add(u.mean_probs, y, un);
    const CalibrationMetrics r = acc.result();
    j["measures"][name] = calibration_json(r);
    PerImageCalibration per_image(ignore_index);
    per_image.add(u.mean_probs, y, un);
    j["measures"][name]["per_image_mean"] = per_image_json(per_image.result());
    if (!pictures.empty()) {
      std::filesystem::create_directories(pictures);
      if (name == measures.front()) data::write_png(pictures + "/reliability.png", reliability_diagram(r.bins));
      data::write_png(pictures + "/reliability_" + name + ".png", reliability_diagram(r.bins_reference));
      for (int64_t n = 0; n < un.size(0); ++n)
        data::write_png(pictures + "/" + name + "_" + std::to_string(n) + ".png", uncertainty_map_image(un, 1.0, n));
    }
  }
  save_safetensors(output, out);
  const std::string jpath = json_path_for(output);
  write_file_atomic(jpath, j.dump(2) + "\n");
  const nlohmann::json& pe = j["measures"]["predictive_entropy"];
  std::printf("uncertainty (%s members, %zu): %s -> %s, %s (accuracy %s, ECE %s)\n", member_set_name(set),
              mem.probs.size(), input.c_str(), output.c_str(), jpath.c_str(), pe["accuracy"].dump().c_str(),
              pe["ece"].dump().c_str());
  return 0;
}

}  // namespace moeseg::cli
