// Builds models from a name or from a JSON config, so the CLI, the trainer and the tests create
// FRRN, DeepLabv3+, MoEs and ensembles the same way (tiny-cuda-nn's shape: a registry that refuses
// unknown names and unknown keys, naming them).
//
// Names: frrn_a, frrn_b, deeplabv3plus_resnet18, deeplabv3plus_resnet50, deeplabv3plus_resnet101.
// JSON config (relative paths are resolved against the config file's folder):
//   single model: {"model": "frrn_a", "num_classes": 38, "width": 1.0, "output_stride": 16,
//                  "seed": 0, "checkpoint": "w.safetensors",
//                  "sparse_moe": {...} or [{...}, ...] (sparse MoE layers inserted by module name,
//                  models/moe_insertion.h; applied before the checkpoint is loaded)}
//   MoE:          {"type": "moe", "num_classes": 38, "experts": [E, E, ...], "gate": "simple"|"classwise",
//                  "with_conv": false, "tap": "frrnlayer4", "input_size": [480, 640],
//                  "pool_grid": [30, 40] (optional: resolution-independent gate), "fc_features": 128,
//                  "experts_bn_train_mode": false, "reference_unused_expert": false, "seed": 0,
//                  "checkpoint": "moe.safetensors" (optional: the whole MoE's weights)}
//   ensemble:     {"type": "ensemble", "num_classes": 38, "mode": "mean"|"max", "experts": [E, ...]}
//   expert E:     "frrn_a" | {"model": ..., "width", "output_stride", "seed", "checkpoint"} |
//                 {"config": "expert.json", "checkpoint": ...}   (num_classes inherited)
// Checkpoints are safetensors state_dicts; a common "module." prefix (DataParallel) is stripped;
// loading is strict and the error lists missing, unexpected and mis-shaped tensors.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/segmentation_model.h"

namespace moeseg {

struct ModelOptions {
  int64_t num_classes = 38;
  double width = 1.0;
  int output_stride = 16;   // DeepLabv3+ only
  uint64_t seed = 0;        // initialisation (FRRN)
};

std::vector<std::string> model_names();
// Throws naming the unknown model and the known ones.
std::shared_ptr<SegmentationModel> make_model(const std::string& name, const ModelOptions& opt);

// base_dir: where relative paths in the config point to ("" = current directory).
std::shared_ptr<SegmentationModel> make_model_from_config(const nlohmann::json& cfg, const std::string& base_dir = "");
std::shared_ptr<SegmentationModel> load_model_config(const std::string& path);

// Loads a safetensors state_dict into `model` (strict), stripping a common "module." prefix.
void load_checkpoint(Module& model, const std::string& path);

}  // namespace moeseg
