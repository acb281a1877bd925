// The model options shared by `moeseg infer`, `moeseg model`, `moeseg attack` and `moeseg
// uncertainty`: a registry name with --classes / --width-mult, or --config FILE, which may be a
// bare model config or an experiment config whose "model" key holds one (one config language for
// every command); and the tensor inputs of their tensor forms (X.safetensors "input", Y "labels").
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
// The chosen model with `weights` loaded (required with --model; with --config, optional) on `dev`.
std::shared_ptr<SegmentationModel> load_chosen_model(const ModelChoice& m, const std::string& weights, const Device& dev,
                                                     const std::string& command);
// Tensor "input" of a .safetensors file (or a .npy file): N x 3 x H x W, finite; float32, contiguous.
Tensor load_input_images(const std::string& path, const std::string& command);
// Tensor "labels" of a .safetensors file: int64 [N, H, W] with the N, H, W of `images`.
Tensor load_label_maps(const std::string& path, const Tensor& images, const std::string& command);

}  // namespace moeseg::cli
