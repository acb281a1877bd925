// Adversarial attacks on any SegmentationModel (expert, baseline, ensemble, model-level MoE),
// white-box through the whole model: the input (or δ) requires grad, so gradients flow through
// frozen experts and the gate even though their parameters have requires_grad = false
// (the reference's allow_gradient_flow). Reference: spec/reference-systems.md §1.10.
//   FGSM       x_adv = x + eps·sign(∇x CE(f(x), y))                         (untargeted)
//   PGD-k      Reference: δ0 ~ U(−eps, eps); k times: Adam (lr 0.01) on δ with gradient
//              −sign(∇δ CE(f(x+δ), y)), then δ clamped to [−eps, eps]; x+δ clamped to [0,1]
//              inside the forward when clamp_01 (the reference's FRRN scripts do).
//              Madry: δ0 ~ U(−eps, eps) or 0; δ ← Π_eps(δ + α·sign(∇δ CE)); x+δ in [0,1] if clamp_01.
//   Universal  one δ [3,H,W] for a whole dataset: per batch `steps_per_batch` Adam sign steps on
//              CE(f(x+δ), y), δ clamped to [−eps, eps]; one Adam state for the whole run.
// Targeted (beyond the reference): labels are the target map and CE is descended instead;
// class_removal_target() builds the map that makes one class (e.g. road) disappear.
// Mode: the model runs in eval mode (BatchNorm running statistics, no dropout), as the
// reference's attack scripts put it (model.eval()); its previous train/eval mode is restored.
// CE uses ignore_index (the trainer's default 255; the universal attack takes the dataset's).
// Bad input (eps <= 0 or not finite, steps < 1, a δ of the wrong shape or dtype) throws one
// moeseg::Error naming the value. Tested by tests/training/test_attacks.cpp against PyTorch
// fixtures made by tools/fixtures/make_attack_fixtures.py.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "models/segmentation_model.h"

namespace moeseg {

enum class PgdVariant { Reference, Madry };
// "reference" | "madry"; anything else throws naming the value and `where`.
PgdVariant parse_pgd_variant(const std::string& name, const std::string& where);
std::string to_string(PgdVariant v);

struct AttackOptions {
  double eps = 0.1;            // L-inf radius on the [0,1] pixel scale
  int64_t ignore_index = 255;  // labels with this value do not count in CE
  bool clamp_01 = false;       // keep x + δ in [0,1] (default off: the reference's FGSM does not)
  bool targeted = false;       // labels are the target: move toward them (descend CE)
};

struct PgdOptions : AttackOptions {
  int steps = 10;
  PgdVariant variant = PgdVariant::Reference;
  double lr = 0.01;            // Reference: Adam's learning rate on δ
  double alpha = 0.0;          // Madry: step size; 0 = 2.5·eps/steps (Madry et al.)
  bool random_start = true;    // Madry: δ0 ~ U(−eps, eps), else 0 (the reference always draws)
  uint64_t seed = 0;           // δ0 from a moeseg Generator with this seed
  Tensor init_delta;           // if defined: δ0 itself (shape and dtype of x), instead of a draw
};

struct AttackResult {
  Tensor adversarial;   // x + δ (clamped to [0,1] when clamp_01), on the model's device
  Tensor delta;         // the final δ
  Tensor logits;        // logits of the last forward pass (reference PGD: before the last update)
  double loss = 0.0;    // CE of that last forward pass
};

// ∇x CE(model(x), labels) (eval mode), x [N,3,H,W] in the model's dtype, labels int64 [N,H,W].
// logits_out / loss_out receive the forward's logits and CE when given.
Tensor input_gradient(SegmentationModel& model, const Tensor& x, const Tensor& labels, int64_t ignore_index = 255,
                      Tensor* logits_out = nullptr, double* loss_out = nullptr);

AttackResult fgsm(SegmentationModel& model, const Tensor& x, const Tensor& labels, const AttackOptions& opt);
AttackResult pgd(SegmentationModel& model, const Tensor& x, const Tensor& labels, const PgdOptions& opt);

// A target map that makes class `cls` disappear (for a targeted attack): each pixel keeps the
// argmax of `logits` [N,C,H,W], except pixels predicted as `cls`, which get their second most
// likely class. int64 [N,H,W] on the CPU; cls outside [0, C) throws naming it.
Tensor class_removal_target(const Tensor& logits, int64_t cls);

struct UniversalOptions {
  double eps = 0.05;
  int epochs = 1;
  int steps_per_batch = 10;    // the reference's 10 sign-gradient steps per batch
  double lr = 0.01;
  uint64_t seed = 0;           // δ0 ~ U(−eps, eps)
  bool clamp_01 = false;       // clamp x + δ to [0,1] in the forward
  int max_batches = -1;        // per epoch; -1: all
  data::LoaderOptions loader;  // batch size, workers, resize (augment); shuffle as given
};

// The universal δ [3,H,W] (float32, on the CPU) optimised over `dataset` (labels' ignore index =
// the dataset's). Every batch must have the size of the first one, else an error naming both.
Tensor universal_perturbation(SegmentationModel& model, std::shared_ptr<const data::Dataset> dataset,
                              const UniversalOptions& opt);

// images [N,3,H,W] + δ [3,H,W] broadcast over the batch (no clamping, as the reference's
// evaluation with a saved δ); δ converted to the images' dtype and device.
Tensor apply_universal_delta(const Tensor& images, const Tensor& delta);

// safetensors with one tensor "delta" (float32 [3,H,W]) and metadata {"eps": ...}.
void save_universal_delta(const std::string& path, const Tensor& delta, double eps);
// A PNG of δ: [−eps, eps] mapped linearly to [0, 255] (0 -> 127.5), values outside clipped.
void save_delta_png(const std::string& path, const Tensor& delta, double eps);
// Loads "delta"; float32 or float64 [3,H,W] (H, W checked when > 0), else an error naming the
// file, the shape and the dtype. Returned as float32.
Tensor load_universal_delta(const std::string& path, int64_t expect_h = 0, int64_t expect_w = 0);

}  // namespace moeseg
