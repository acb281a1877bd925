// Robustness evaluation of a trained model over a dataset's subsets (spec §1.10): mIoU per test
// subset clean, under FGSM(eps), PGD-k(eps) and a universal δ, all in one pass over the data
// (every batch is attacked by each requested attack in turn), and the pieces of the transfer
// matrix (δ made on model A evaluated on model B: a Universal attack with A's δ run on B).
// Attacks come from training/attacks.h and run in eval mode (BatchNorm running statistics), white-
// box through the whole model. Batches come from the project's loader with the evaluation
// augmentation of the config (resize, no flip); "all" is merged from highway + urban when both are
// evaluated (data::union_subset_parts), as training/evaluation.h does.
// Tested by tests/training/test_robustness.cpp and, through the CLI, tests/tools/test_cli_robustness.cpp.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "models/segmentation_model.h"
#include "training/attacks.h"
#include "training/experiment_config.h"

namespace moeseg {

enum class AttackKind { Clean, Fgsm, Pgd, Universal };
// "clean" | "fgsm" | "pgd" | "universal"; anything else throws naming the value and `where`.
AttackKind parse_attack_kind(const std::string& name, const std::string& where);

struct AttackSpec {
  std::string name;             // the key in the result ("clean", "fgsm", "pgd", "universal", "delta:<model>")
  AttackKind kind = AttackKind::Clean;
  AttackOptions fgsm;           // Fgsm
  PgdOptions pgd;               // Pgd (the reference variant by default)
  Tensor delta;                 // Universal: [3,H,W], added to every image without clamping
};

struct RobustnessOptions {
  std::vector<std::string> subsets;   // empty: the config's data.test_subsets
  std::string split = "test";
  int max_images = 0;                 // per subset; 0 = all
  int batch = 0;                      // 0: the config's train.batch
  bool quiet = false;
};

// {"model": name, "attacks": {spec.name: {"subsets": {subset: {"images", "miou", "pixel_accuracy"}}}}}
// mIoU as a fraction in [0,1] (null where undefined). The PGD seed of each batch is spec.pgd.seed +
// the batch index, so a rerun gives the same numbers.
nlohmann::json evaluate_attacks(SegmentationModel& model, const ExperimentConfig& c, const std::vector<AttackSpec>& attacks,
                                const RobustnessOptions& opt, const std::string& model_name);

struct UniversalSpec {
  UniversalOptions attack;     // eps, epochs, steps per batch, lr, seed, max_batches
  int batch = 8;               // loader batch size
  int max_images = 0;          // per subset of the training data; 0 = all
  std::string split = "train";
  std::string subsets;         // "": the config's data.subset (the model's own training data)
};

// The universal δ [3,H,W] (float32, CPU) of `model` optimised on its config's training split
// (the reference's DeepLab scripts optimise on the train loader of the config's dataset).
Tensor make_universal_delta(SegmentationModel& model, const ExperimentConfig& c, const UniversalSpec& spec);

// While alive, the model's parameters do not require grad (restored on exit): an attack needs
// ∇x or ∇δ only, and the weight gradients the backward would otherwise compute are wasted work.
// evaluate_attacks and make_universal_delta hold one; so does `moeseg bench attack`.
class FrozenParameters {
 public:
  explicit FrozenParameters(SegmentationModel& model);
  ~FrozenParameters();
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<Tensor> frozen_;
};

// mIoU of `result` (evaluate_attacks' JSON) for attack and subset, NaN when absent or undefined.
double attacked_miou(const nlohmann::json& result, const std::string& attack, const std::string& subset);

}  // namespace moeseg
