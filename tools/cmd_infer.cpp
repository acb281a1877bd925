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
#include "core/cli_args.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "models/registry.h"
#include "tools/cmd_models.h"
#include "tools/model_choice.h"

namespace moeseg::cli {

int run_infer(int argc, char** argv) {
  ModelChoice m;
  std::string weights, input, output, device = "cpu";
  ArgParser args("moeseg infer",
                 "(--model NAME --classes N [--width-mult M] | --config FILE) --weights W.safetensors\n"
                 "                    --input X.safetensors|X.npy --out Y.safetensors [--device cpu|cuda]",
                 "--weights is optional with --config when the config names its checkpoints. FILE is a model config\n"
                 "or an experiment config (whose \"model\" key holds one).");
  add_model_choice(args, m);
  args.option("--weights", &weights, "W", "model weights (safetensors state_dict)")
      .option("--input", &input, "X", "input tensor \"input\" (N x 3 x H x W) of a .safetensors file, or a .npy array")
      .required("--input")
      .option("--out", &output, "Y", "output safetensors file")
      .required("--out")
      .option("--device", &device, "D", "cpu or cuda (default cpu)");
  if (!args.parse(argc, argv)) return 0;
  const Device dev = resolve_device(device);
  std::shared_ptr<SegmentationModel> model = load_chosen_model(m, weights, dev, "moeseg infer");
  Tensor x = load_input_images(input, "moeseg infer").to(dev);

  model->eval();
  NoGradGuard ng;
  std::map<std::string, Tensor> out;
  ModelOutput o = model->forward_detailed(x);
  out["logits"] = o.logits;
  if (o.gate.defined()) out["gate"] = o.gate;
  const std::vector<Tensor>& experts = o.member_logits;
  for (size_t i = 0; i < experts.size(); ++i) out["expert" + std::to_string(i + 1) + "_logits"] = experts[i];
  for (auto& [k, v] : out) v = v.contiguous();
  save_safetensors(output, out);
  std::printf("infer: %s -> %s (logits %s)\n", input.c_str(), output.c_str(), shape_str(out["logits"].shape()).c_str());
  return 0;
}

}  // namespace moeseg::cli
