// The model options shared by `moeseg infer`, `moeseg model summary` (and the attack and
// uncertainty tools to come): a registry name with --classes / --width-mult, or --config FILE,
// which may be a bare model config or an experiment config whose "model" key holds one (one
// config language for every command).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/cli_args.h"
#include "models/segmentation_model.h"

namespace moeseg::cli {

struct ModelChoice {
  std::string name, config;
  int64_t classes = 0;
  double width = 1.0;
};

void add_model_choice(ArgParser& args, ModelChoice& m);
// The model, or an error naming `command` when the choice is incomplete or contradictory.
std::shared_ptr<SegmentationModel> build_chosen_model(const ModelChoice& m, const std::string& command);

}  // namespace moeseg::cli
