// A finished `moeseg reproduce` run (model_level_moe) as the later studies reuse it (`--from RUN`):
// its results.json, and its nine models built from <run>/configs/<name>.json with their best
// weights (seed 0's models when the run has several seeds), on the device of their config. Also
// the choice of a study preset, shared by the studies that read one. Used by the robustness and
// uncertainty studies (training/experiments/{robustness,uncertainty_study}.cpp).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/segmentation_model.h"
#include "training/experiment_config.h"

namespace moeseg {

struct RunModel {
  std::string name, title;   // "frrnA_moe_simple", "MoE simple" (the main table's row)
  ExperimentConfig config;
  std::shared_ptr<SegmentationModel> model;
  std::string weights;   // its best checkpoint; "" = the weights its config names (ensembles)
};

struct FinishedRun {
  std::string dir, preset;   // canonical folder; the model_level_moe preset it ran
  int seeds = 1;
  nlohmann::json results;
  std::vector<RunModel> models;   // in the main table's order
  // The model named `name`; throws naming `where` and the run when there is none.
  RunModel& model(const std::string& name, const std::string& where);
};

// Throws naming `where` when --from is empty, the run is unfinished or not a model_level_moe run,
// or a model's config is missing.
FinishedRun load_finished_run(const std::string& from, const std::string& where);

// The preset of a study config {"presets": {...}}: `requested`, else the run's own preset when the
// config has one of that name, else "cpu". Throws naming the known presets. `chosen` gets the name.
const nlohmann::json& choose_study_preset(const nlohmann::json& study, const std::string& study_path,
                                          const std::string& requested, const std::string& run_preset,
                                          const std::string& where, std::string* chosen);

}  // namespace moeseg
