// `moeseg attack`, the tensor form: an adversarial attack (training/attacks.h) on a model
// (registry name or JSON config, as `moeseg infer`) with given weights, on an input tensor with
// its labels, written as safetensors "adversarial" and "delta" (for comparisons with other
// frameworks). The input is "input" (N x 3 x H x W float) of a .safetensors file, the labels
// "labels" (int64 N x H x W). The config form (`moeseg attack CONFIG`, mIoU per subset) is not
// here yet. Tested by tests/tools/test_cli_attack.cpp.
#include <cstdio>
#include <map>
#include <string>

#include "core/cli_args.h"
#include "core/device_probe.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/value_checks.h"
#include "models/registry.h"
#include "tools/commands.h"
#include "tools/model_choice.h"
#include "training/attacks.h"

namespace moeseg::cli {

int run_attack(int argc, char** argv) {
  ModelChoice m;
  std::string weights, input, labels_path, output, attack, variant = "reference", device = "cpu";
  double eps = 0, lr = 0.01, alpha = 0;
  int steps = 10;
  int64_t ignore_index = 255, seed = 0;
  bool clamp01 = false, targeted = false;
  std::vector<std::string> positionals;
  ArgParser args("moeseg attack",
                 "(--model NAME --classes N [--width-mult M] | --config FILE) --weights W.safetensors\n"
                 "                    --input X.safetensors --labels Y.safetensors --attack fgsm|pgd --eps E\n"
                 "                    [--steps K] [--pgd reference|madry] --out OUT.safetensors",
                 "Writes tensors \"adversarial\" (x + delta) and \"delta\". The model runs in eval mode; CE ignores\n"
                 "--ignore-index (default 255). PGD \"reference\": Adam (--lr) on delta with the sign gradient,\n"
                 "delta ~ U(-eps, eps) from --seed; \"madry\": steps of --alpha (default 2.5 eps / K).");
  add_model_choice(args, m);
  args.option("--weights", &weights, "W", "model weights (safetensors state_dict)")
      .option("--input", &input, "X", "input tensor \"input\" (N x 3 x H x W) of a .safetensors file")
      .required("--input")
      .option("--labels", &labels_path, "Y", "labels \"labels\" (int64 N x H x W) of a .safetensors file")
      .required("--labels")
      .option("--attack", &attack, "A", "fgsm or pgd")
      .required("--attack")
      .option("--eps", &eps, "E", "L-inf radius on the [0,1] pixel scale")
      .required("--eps")
      .option("--steps", &steps, "K", "PGD steps (default 10)")
      .option("--pgd", &variant, "V", "PGD variant: reference (default) or madry")
      .option("--lr", &lr, "LR", "reference PGD: Adam learning rate on delta (default 0.01)")
      .option("--alpha", &alpha, "S", "Madry PGD: step size (default 2.5 eps / steps)")
      .option("--seed", &seed, "S", "seed of the random start (default 0)", 0)
      .option("--ignore-index", &ignore_index, "I", "label value CE ignores (default 255)")
      .flag("--clamp", &clamp01, "keep x + delta in [0, 1] (default off, as the reference)")
      .flag("--targeted", &targeted, "the labels are a target map: descend CE toward them")
      .option("--out", &output, "OUT", "output safetensors file")
      .required("--out")
      .option("--device", &device, "D", "cpu or cuda (default cpu)")
      .positionals(&positionals, "CONFIG", 0, 1);
  if (!args.parse(argc, argv)) return 0;
  MOESEG_CHECK(positionals.empty(), "moeseg attack: the config form (moeseg attack ", positionals.front(),
               " ...) is not implemented yet; use --model/--config with --input and --labels");
  MOESEG_CHECK(attack == "fgsm" || attack == "pgd", "moeseg attack: --attack is '", attack, "' (known: fgsm, pgd)");
  MOESEG_CHECK(!m.config.empty() || !weights.empty(),
               "moeseg attack: needs --weights W.safetensors with --model (or --config FILE)");
  std::shared_ptr<SegmentationModel> model = build_chosen_model(m, "moeseg attack");
  if (!weights.empty()) load_checkpoint(*model, weights);
  const Device dev = resolve_device(device);
  model->to(dev);

  Tensor x = load_safetensors(input).get("input", input);
  MOESEG_CHECK(x.dim() == 4 && x.size(1) == 3 && is_floating(x.dtype()), "attack: input ", input, " is ", x.str(),
               ", expected float N x 3 x H x W");
  check_all_finite(x, input + ": input");
  x = x.to(DType::Float32).contiguous();
  Tensor y = load_safetensors(labels_path).get("labels", labels_path);
  MOESEG_CHECK(y.dtype() == DType::Int64 && y.dim() == 3 && y.size(0) == x.size(0) && y.size(1) == x.size(2) &&
                   y.size(2) == x.size(3),
               "attack: labels ", labels_path, " are ", y.str(), ", expected int64 [", x.size(0), ", ", x.size(2), ", ",
               x.size(3), "] for input ", x.str());

  AttackResult r;
  if (attack == "fgsm") {
    AttackOptions o;
    o.eps = eps;
    o.ignore_index = ignore_index;
    o.clamp_01 = clamp01;
    o.targeted = targeted;
    r = fgsm(*model, x, y, o);
  } else {
    PgdOptions o;
    o.eps = eps;
    o.ignore_index = ignore_index;
    o.clamp_01 = clamp01;
    o.targeted = targeted;
    o.steps = steps;
    o.variant = parse_pgd_variant(variant, "moeseg attack: --pgd");
    o.lr = lr;
    o.alpha = alpha;
    o.seed = static_cast<uint64_t>(seed);
    r = pgd(*model, x, y, o);
  }
  save_safetensors(output, {{"adversarial", r.adversarial.to(Device{}).contiguous()},
                            {"delta", r.delta.to(Device{}).contiguous()}});
  std::printf("attack %s eps %g: %s -> %s (CE of the last forward %.6f)\n", attack.c_str(), eps, input.c_str(),
              output.c_str(), r.loss);
  return 0;
}

}  // namespace moeseg::cli
