// --model / --classes / --width-mult / --config (tools/model_choice.h).
#include "tools/model_choice.h"

#include "core/error.h"
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

}  // namespace moeseg::cli
