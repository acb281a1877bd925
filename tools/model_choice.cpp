// --model / --classes / --width-mult / --config, and the tensor inputs (tools/model_choice.h).
#include "tools/model_choice.h"

#include "core/error.h"
#include "core/npy.h"
#include "core/safetensors.h"
#include "core/value_checks.h"
#include "models/registry.h"
#include "training/experiment_config.h"
#include "training/experiment_setup.h"

namespace moeseg::cli {

void add_model_choice(ArgParser& args, ModelChoice& m) {
  args.option("--model", &m.name, "NAME", "registry model name (frrn_a, frrn_b, deeplabv3plus_resnet18/50/101, ...)")
      .option("--classes", &m.classes, "N", "number of classes (with --model)", 1, 1 << 20)
      .option("--width-mult", &m.width, "M", "channel width multiplier (with --model, default 1)", 1e-3, 64.0)
      .option("--config", &m.config, "FILE", "a model config, or an experiment config whose \"model\" key holds one");
}

std::shared_ptr<SegmentationModel> build_chosen_model(const ModelChoice& m, const std::string& command) {
  if (!m.config.empty()) {
    MOESEG_CHECK(m.name.empty(), command, ": give --model or --config, not both");
    return build_experiment_model(load_experiment_config(m.config));
  }
  MOESEG_CHECK(!m.name.empty() && m.classes > 0, command, ": needs --model NAME --classes N (or --config FILE)");
  ModelOptions o;
  o.num_classes = m.classes;
  o.width = m.width;
  return make_model(m.name, o);
}

std::shared_ptr<SegmentationModel> load_chosen_model(const ModelChoice& m, const std::string& weights, const Device& dev,
                                                     const std::string& command) {
  MOESEG_CHECK(!m.config.empty() || !weights.empty(), command, ": needs --weights W.safetensors with --model (or --config FILE)");
  std::shared_ptr<SegmentationModel> model = build_chosen_model(m, command);
  if (!weights.empty()) load_checkpoint(*model, weights);
  model->to(dev);
  return model;
}

Tensor load_input_images(const std::string& path, const std::string& command) {
  const bool npy = path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0;
  Tensor x = npy ? load_npy(path) : load_safetensors(path).get("input", path);
  MOESEG_CHECK(x.dim() == 4 && x.size(1) == 3 && is_floating(x.dtype()), command, ": input ", path, " is ", x.str(),
               ", expected float N x 3 x H x W");
  check_all_finite(x, path + ": input");
  return x.to(DType::Float32).contiguous();
}

Tensor load_label_maps(const std::string& path, const Tensor& images, const std::string& command) {
  Tensor y = load_safetensors(path).get("labels", path);
  MOESEG_CHECK(y.dtype() == DType::Int64 && y.dim() == 3 && y.size(0) == images.size(0) && y.size(1) == images.size(2) &&
                   y.size(2) == images.size(3),
               command, ": labels ", path, " are ", y.str(), ", expected int64 [", images.size(0), ", ", images.size(2),
               ", ", images.size(3), "] for input ", images.str());
  return y;
}

}  // namespace moeseg::cli
