// `moeseg uncertainty`, the tensor form: one eval-mode forward of a model (registry name or JSON
// config, as `moeseg infer`) on an input tensor, the per-pixel uncertainty measures of
// training/uncertainty.h written as safetensors (float64 [N, H, W]: "predictive_entropy" and
// "mutual_information" in nats, "expert_variance" normalised by the batch maximum, "gate_entropy"
// normalised by log E, each where it applies: MI and EV need >= 2 members, gate entropy a gate;
// plus "predicted", int64) and the calibration metrics of training/calibration.h per measure as
// JSON next to it (OUT with .json; pooled over all valid pixels, and "per_image_mean" as the
// reference averages); with --pictures DIR also PNGs: reliability.png (confidence =
// max probability), reliability_<measure>.png (confidence = 1 - normalised measure) and
// <measure>_<n>.png, the normalised measure of image n through the colour ramp (0..1). The config form (`moeseg uncertainty CONFIG`, the metrics table)
// is not here yet. Tested by tests/tools/test_cli_uncertainty.cpp.
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
#include "tools/commands.h"
#include "tools/model_choice.h"
#include "training/calibration.h"
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

}  // namespace

int run_uncertainty(int argc, char** argv) {
  ModelChoice m;
  std::string weights, input, labels_path, output, pictures, members = "plain", reduction = "predicted", device = "cpu";
  int64_t ignore_index = 255;
  std::vector<std::string> positionals;
  ArgParser args("moeseg uncertainty",
                 "(--model NAME --classes N [--width-mult M] | --config FILE) --weights W.safetensors\n"
                 "                    --input X.safetensors --labels Y.safetensors [--members plain|weighted|stacked]\n"
                 "                    [--gate-reduction predicted|mean_gate|mean_entropy] --out OUT.safetensors",
                 "Writes per-pixel \"predictive_entropy\", \"mutual_information\", \"expert_variance\", \"gate_entropy\"\n"
                 "(where they apply) and \"predicted\"; the metrics per measure (ECE, MCE, Brier, NLL in their\n"
                 "standard and reference forms, AUROC, conditional correctness, PAvPU) go to OUT with .json.");
  add_model_choice(args, m);
  args.option("--weights", &weights, "W", "model weights (safetensors state_dict)")
      .option("--input", &input, "X", "input tensor \"input\" (N x 3 x H x W) of a .safetensors file")
      .required("--input")
      .option("--labels", &labels_path, "Y", "labels \"labels\" (int64 N x H x W) of a .safetensors file")
      .required("--labels")
      .option("--members", &members, "S", "member set: plain (default), weighted (by the gate), stacked (with the output)")
      .option("--gate-reduction", &reduction, "R", "class-wise gate: predicted (default), mean_gate, mean_entropy")
      .option("--ignore-index", &ignore_index, "I", "label value the metrics ignore (default 255)")
      .option("--pictures", &pictures, "DIR", "also write reliability diagrams and uncertainty maps (PNG) into DIR")
      .option("--out", &output, "OUT", "output safetensors file")
      .required("--out")
      .option("--device", &device, "D", "cpu or cuda (default cpu)")
      .positionals(&positionals, "CONFIG", 0, 1);
  if (!args.parse(argc, argv)) return 0;
  MOESEG_CHECK(positionals.empty(), "moeseg uncertainty: the config form (moeseg uncertainty ", positionals.front(),
               " ...) is not implemented yet; use --model/--config with --input and --labels");
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
