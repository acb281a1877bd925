// `moeseg infer`: one eval-mode forward of a model (registry name or JSON config) with given
// weights on an input tensor, written as safetensors: "logits", and for an MoE also "gate"
// ([N, G, E] gate weights) and "expert<i>_logits"; for an ensemble "expert<i>_logits".
// The input is "input" (N x 3 x H x W float32) of a .safetensors file, or a .npy array.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "core/autograd.h"
#include "core/device_probe.h"
#include "core/error.h"
#include "core/npy.h"
#include "core/safetensors.h"
#include "models/ensemble.h"
#include "models/moe.h"
#include "models/registry.h"
#include "tools/cmd_models.h"

namespace moeseg::cli {

namespace {

void infer_usage() {
  std::printf(
      "usage: moeseg infer (--model NAME --classes N [--width-mult M] | --config FILE)\n"
      "                    --weights W.safetensors --input X.safetensors|X.npy --out Y.safetensors\n"
      "                    [--device cpu|cuda]\n"
      "  --weights is optional with --config when the config names its checkpoints\n");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int run_infer(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help")) {
    infer_usage();
    return argc < 2 ? 1 : 0;
  }
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    MOESEG_CHECK(k.rfind("--", 0) == 0 && i + 1 < argc, "infer: expected --option value, got '", k, "'");
    args[k] = argv[++i];
  }
  for (auto& [k, v] : args)
    MOESEG_CHECK(k == "--model" || k == "--classes" || k == "--width-mult" || k == "--config" || k == "--weights" ||
                     k == "--input" || k == "--out" || k == "--device",
                 "infer: unknown option ", k);
  MOESEG_CHECK(args.count("--input") && args.count("--out"), "infer: needs --input and --out");

  std::shared_ptr<SegmentationModel> model;
  if (args.count("--config")) {
    MOESEG_CHECK(!args.count("--model"), "infer: give --model or --config, not both");
    model = load_model_config(args["--config"]);
  } else {
    MOESEG_CHECK(args.count("--model") && args.count("--classes") && args.count("--weights"),
                 "infer: needs --model NAME --classes N --weights W.safetensors (or --config FILE)");
    ModelOptions o;
    o.num_classes = std::stoll(args["--classes"]);
    if (args.count("--width-mult")) o.width = std::stod(args["--width-mult"]);
    model = make_model(args["--model"], o);
  }
  if (args.count("--weights")) load_checkpoint(*model, args["--weights"]);

  const Device dev = resolve_device(args.count("--device") ? args["--device"] : "cpu");
  model->to(dev);

  const std::string in = args["--input"];
  Tensor x = ends_with(in, ".npy") ? load_npy(in) : load_safetensors(in).get("input", in);
  MOESEG_CHECK(x.dim() == 4 && x.size(1) == 3, "infer: input ", in, " is ", x.str(), ", expected N x 3 x H x W");
  x = x.to(DType::Float32).contiguous().to(dev);

  model->eval();
  NoGradGuard ng;
  std::map<std::string, Tensor> out;
  std::vector<Tensor> experts;
  if (auto* moe = dynamic_cast<MoE*>(model.get())) {
    MoEOutput o = moe->forward_moe(x);
    out["logits"] = o.logits;
    out["gate"] = o.gate;
    experts = o.expert_logits;
  } else if (auto* ens = dynamic_cast<Ensemble*>(model.get())) {
    MoEOutput o = ens->forward_all(x);
    out["logits"] = o.logits;
    experts = o.expert_logits;
  } else {
    out["logits"] = model->forward(x);
  }
  for (size_t i = 0; i < experts.size(); ++i) out["expert" + std::to_string(i + 1) + "_logits"] = experts[i];
  for (auto& [k, v] : out) v = v.contiguous();
  save_safetensors(args["--out"], out);
  std::printf("infer: %s -> %s (logits %s)\n", in.c_str(), args["--out"].c_str(), shape_str(out["logits"].shape()).c_str());
  return 0;
}

}  // namespace moeseg::cli
