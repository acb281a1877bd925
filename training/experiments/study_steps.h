// Steps every `moeseg reproduce` study shares (training/experiments/study.h): the preset of a
// study config, the data (the synthetic scenes generated once, or CamVid found beside the repo),
// and training a model unless a finished run with the same config exists (an interrupted one
// resumes, anything else starts afresh). Used by model_level_moe.cpp and sparse_moe_study.cpp.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "training/experiment_config.h"
#include "training/trainer.h"

namespace moeseg {

// The preset `name` of a study config; throws naming the known presets.
const nlohmann::json& preset_of(const nlohmann::json& study, const std::string& name);
// ../shared/data/camvid (or shared/data/camvid) from the working directory upwards.
std::string find_camvid_root();
// Generates the synthetic scenes of preset P ("height", "width", "synthetic": {train, val, test,
// seed}) into root unless a tree of the current generator version is there; returns the
// canonical root. `where` names the study config and preset in errors; timings["data"] is set
// when it generates.
std::string prepare_synthetic_data(const nlohmann::json& P, const std::string& root, const std::string& where,
                                   nlohmann::json& timings);
// A run of this config finished all its epochs (last and best checkpoints, same config hash).
bool study_model_finished(const ExperimentConfig& c);
// Trains c (or skips a finished run, or resumes an interrupted one) and prints one line on it.
void train_study_model(const ExperimentConfig& c, const TrainOptions& topt, const std::string& title);

}  // namespace moeseg
