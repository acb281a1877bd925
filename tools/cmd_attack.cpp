// `moeseg attack`, two forms.
// Config form: `moeseg attack CONFIG --attack fgsm|pgd|universal --eps E [--steps K] [--delta FILE]
//   [--subsets a,b] [--json OUT]`: mIoU per test subset of the config's trained model (weights as
//   `moeseg eval`: --checkpoint, else <run>/best/model.safetensors, else the model config's own),
//   clean and under the attack (training/robustness.h); universal without --delta makes the δ on
//   the config's training split (--save-delta FILE keeps it), with --delta evaluates a saved one.
// Tensor form: an adversarial attack (training/attacks.h) on a model (registry name or JSON config,
//   as `moeseg infer`) with given weights, on an input tensor with its labels, written as
//   safetensors "adversarial" and "delta" (for comparisons with other frameworks). The input is
//   "input" (N x 3 x H x W float) of a .safetensors file, the labels "labels" (int64 N x H x W).
// Tested by tests/tools/test_cli_attack.cpp and tests/tools/test_cli_robustness.cpp.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "core/cli_args.h"
#include "core/device_probe.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/value_checks.h"
#include "data/dataset_factory.h"
#include "models/registry.h"
#include "tools/cmd_training.h"
#include "tools/commands.h"
#include "tools/model_choice.h"
#include "training/attacks.h"
#include "training/experiment_setup.h"
#include "training/robustness.h"

namespace moeseg::cli {

namespace {

struct ConfigForm {
  std::string config, checkpoint, delta, save_delta, json_out, subsets, variant, attack;
  double eps = 0, lr = 0.01, alpha = 0;
  int steps = 10, max_images = 0, universal_epochs = 1, universal_images = 0;
  int64_t seed = 0;
  bool clamp01 = false, quiet = false;
};

int run_attack_config(const ConfigForm& f) {
  const AttackKind kind = parse_attack_kind(f.attack, "moeseg attack: --attack");
  MOESEG_CHECK(kind != AttackKind::Clean, "moeseg attack: --attack is 'clean' (known: fgsm, pgd, universal)");
  MOESEG_CHECK(f.delta.empty() || kind == AttackKind::Universal, "moeseg attack: --delta ", f.delta,
               " is a universal delta; use it with --attack universal");
  const bool needs_eps = !(kind == AttackKind::Universal && !f.delta.empty());
  MOESEG_CHECK(!needs_eps || (std::isfinite(f.eps) && f.eps > 0), "moeseg attack: --eps must be a finite number > 0, got ",
               f.eps, f.eps == 0 ? " (is --eps missing?)" : "");
  ExperimentConfig c = load_experiment_config(f.config);
  std::string checkpoint;
  auto model = load_trained_experiment_model(c, f.checkpoint, &checkpoint);
  model->to(resolve_device(c.train.device));

  AttackSpec spec{f.attack, kind, {}, {}, {}};
  spec.fgsm.eps = spec.pgd.eps = f.eps;
  spec.fgsm.clamp_01 = f.clamp01;
  spec.pgd.clamp_01 = f.clamp01;
  spec.pgd.steps = f.steps;
  spec.pgd.variant = parse_pgd_variant(f.variant, "moeseg attack: --pgd");
  spec.pgd.lr = f.lr;
  spec.pgd.alpha = f.alpha;
  spec.pgd.seed = static_cast<uint64_t>(f.seed);
  if (kind == AttackKind::Pgd) MOESEG_CHECK(f.steps >= 1, "moeseg attack: steps must be >= 1, got ", f.steps);
  if (kind == AttackKind::Universal) {
    if (!f.delta.empty()) {
      spec.delta = load_universal_delta(f.delta, c.data.height, c.data.width);
    } else {
      UniversalSpec us;
      us.attack.eps = f.eps;
      us.attack.epochs = f.universal_epochs;
      us.attack.steps_per_batch = f.steps;
      us.attack.lr = f.lr;
      us.attack.seed = static_cast<uint64_t>(f.seed);
      us.batch = c.train.batch;
      us.max_images = f.universal_images;
      spec.delta = make_universal_delta(*model, c, us);
    }
    if (!f.save_delta.empty()) {
      save_universal_delta(f.save_delta, spec.delta, f.eps);
      std::printf("wrote %s\n", f.save_delta.c_str());
    }
  }
  RobustnessOptions ro;
  ro.subsets = data::split_csv(f.subsets);
  ro.max_images = f.max_images;
  ro.quiet = f.quiet;
  AttackSpec clean{"clean", AttackKind::Clean, {}, {}, {}};
  nlohmann::json r = evaluate_attacks(*model, c, {clean, spec}, ro, c.name);
  r["checkpoint"] = checkpoint;
  r["attack"] = {{"kind", f.attack}, {"eps", needs_eps ? nlohmann::json(f.eps) : nlohmann::json()},
                 {"steps", f.steps}, {"pgd", f.variant}, {"delta", f.delta}, {"clamp_01", f.clamp01}};
  std::printf("%s (%s), attack %s", c.name.c_str(), checkpoint.empty() ? "weights from the model config" : checkpoint.c_str(),
              f.attack.c_str());
  if (needs_eps) std::printf(" eps %g", f.eps);
  if (kind == AttackKind::Pgd) std::printf(" steps %d (%s)", f.steps, f.variant.c_str());
  if (!f.delta.empty()) std::printf(" delta %s", f.delta.c_str());
  std::printf("\n");
  const std::vector<std::string> order = ro.subsets.empty() ? c.data.test_subsets : ro.subsets;
  for (const std::string& s : order) {
    const double a = attacked_miou(r, "clean", s), b = attacked_miou(r, f.attack, s);
    std::printf("  %-10s %5lld images  clean mIoU %6.2f%%  attacked mIoU %6.2f%%\n", s.c_str(),
                static_cast<long long>(r["attacks"]["clean"]["subsets"][s].value("images", 0)), 100 * a, 100 * b);
  }
  if (!f.json_out.empty()) {
    write_file_atomic(f.json_out, r.dump(2) + "\n");
    std::printf("wrote %s\n", f.json_out.c_str());
  }
  return 0;
}

}  // namespace

int run_attack(int argc, char** argv) {
  ModelChoice m;
  std::string weights, input, labels_path, output, attack, variant = "reference", device = "cpu";
  double eps = 0, lr = 0.01, alpha = 0;
  int steps = 10;
  int64_t ignore_index = 255, seed = 0;
  bool clamp01 = false, targeted = false;
  std::vector<std::string> positionals;
  ConfigForm cf;
  std::string delta_file, save_delta, json_out, subsets, checkpoint;
  int max_images = 0, universal_epochs = 1, universal_images = 0;
  bool quiet = false;
  ArgParser args("moeseg attack",
                 "CONFIG --attack fgsm|pgd|universal --eps E [--steps K] [--delta FILE] [--subsets A,B] [--json OUT]\n"
                 "                    (mIoU per test subset, clean and attacked), or\n"
                 "                    (--model NAME --classes N [--width-mult M] | --config FILE) --weights W.safetensors\n"
                 "                    --input X.safetensors --labels Y.safetensors --attack fgsm|pgd --eps E\n"
                 "                    [--steps K] [--pgd reference|madry] --out OUT.safetensors",
                 "Writes tensors \"adversarial\" (x + delta) and \"delta\". The model runs in eval mode; CE ignores\n"
                 "--ignore-index (default 255). PGD \"reference\": Adam (--lr) on delta with the sign gradient,\n"
                 "delta ~ U(-eps, eps) from --seed; \"madry\": steps of --alpha (default 2.5 eps / K).\n"
                 "Config form: weights from --checkpoint, else <run>/best/model.safetensors; --attack universal\n"
                 "makes delta on the config's training split (--steps sign steps per batch) unless --delta FILE.");
  add_model_choice(args, m);
  args.option("--weights", &weights, "W", "model weights (safetensors state_dict)")
      .option("--input", &input, "X", "input tensor \"input\" (N x 3 x H x W) of a .safetensors file")
      .option("--labels", &labels_path, "Y", "labels \"labels\" (int64 N x H x W) of a .safetensors file")
      .option("--attack", &attack, "A", "fgsm or pgd (config form also universal)")
      .required("--attack")
      .option("--eps", &eps, "E", "L-inf radius on the [0,1] pixel scale")
      .option("--steps", &steps, "K", "PGD steps (default 10)")
      .option("--pgd", &variant, "V", "PGD variant: reference (default) or madry")
      .option("--lr", &lr, "LR", "reference PGD: Adam learning rate on delta (default 0.01)")
      .option("--alpha", &alpha, "S", "Madry PGD: step size (default 2.5 eps / steps)")
      .option("--seed", &seed, "S", "seed of the random start (default 0)", 0)
      .option("--ignore-index", &ignore_index, "I", "label value CE ignores (default 255)")
      .flag("--clamp", &clamp01, "keep x + delta in [0, 1] (default off, as the reference)")
      .flag("--targeted", &targeted, "the labels are a target map: descend CE toward them")
      .option("--out", &output, "OUT", "output safetensors file (tensor form)")
      .option("--checkpoint", &checkpoint, "W", "config form: model weights (default <run>/best/model.safetensors)")
      .option("--delta", &delta_file, "FILE", "config form: evaluate this saved universal delta (safetensors \"delta\")")
      .option("--save-delta", &save_delta, "FILE", "config form: write the universal delta made here")
      .option("--subsets", &subsets, "A,B", "config form: test subsets (default the config's data.test_subsets)")
      .option("--max-images", &max_images, "N", "config form: first N test images per subset (default all)", 0)
      .option("--universal-epochs", &universal_epochs, "N", "config form: epochs of the universal delta (default 1)", 1)
      .option("--universal-images", &universal_images, "N",
              "config form: training images per domain for the universal delta (default all)", 0)
      .option("--json", &json_out, "FILE", "config form: write the results as JSON")
      .flag("--quiet", &quiet, "config form: no progress output")
      .option("--device", &device, "D", "cpu or cuda (default cpu)")
      .positionals(&positionals, "CONFIG", 0, 1);
  if (!args.parse(argc, argv)) return 0;
  if (!positionals.empty()) {
    ensure_passive_omp_wait("attack");
    MOESEG_CHECK(input.empty() && labels_path.empty() && output.empty() && m.config.empty() && m.name.empty(),
                 "moeseg attack ", positionals.front(),
                 ": the config form takes no --input/--labels/--out/--model/--config (that is the tensor form)");
    MOESEG_CHECK(!targeted, "moeseg attack ", positionals.front(),
                 ": --targeted needs a target map, which only the tensor form (--labels) takes");
    cf.config = positionals.front();
    cf.checkpoint = checkpoint.empty() ? weights : checkpoint;
    cf.delta = delta_file;
    cf.save_delta = save_delta;
    cf.json_out = json_out;
    cf.subsets = subsets;
    cf.variant = variant;
    cf.attack = attack;
    cf.eps = eps;
    cf.lr = lr;
    cf.alpha = alpha;
    cf.steps = steps;
    cf.max_images = max_images;
    cf.universal_epochs = universal_epochs;
    cf.universal_images = universal_images;
    cf.seed = seed;
    cf.clamp01 = clamp01;
    cf.quiet = quiet;
    return run_attack_config(cf);
  }
  MOESEG_CHECK(!input.empty() && !labels_path.empty() && !output.empty(),
               "moeseg attack: the tensor form needs --input X.safetensors, --labels Y.safetensors and --out OUT "
               "(or give a CONFIG for the config form)");
  MOESEG_CHECK(attack == "fgsm" || attack == "pgd", "moeseg attack: --attack is '", attack, "' (known: fgsm, pgd)");
  const Device dev = resolve_device(device);
  std::shared_ptr<SegmentationModel> model = load_chosen_model(m, weights, dev, "moeseg attack");
  Tensor x = load_input_images(input, "moeseg attack");
  Tensor y = load_label_maps(labels_path, x, "moeseg attack");

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
