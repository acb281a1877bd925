// The reference system's clean experiment (spec §1.5-1.9) at CPU scale, defined by
// configs/studies/model_level_moe.json:
//   1. data: the synthetic scenes (generated into <out>/data when absent) or CamVid (day/dusk);
//   2. train expert 1 (highway | dusk), expert 2 (urban | day) and the baseline (both), FRRN-A;
//   3. the mean and max ensembles of the two experts;
//   4. the four MoE gates on the frozen experts (simple, simple + conv, class-wise, class-wise +
//      conv), with the frozen experts' outputs cached (training/member_cache.h);
//   5. every model evaluated on each test subset: the Markdown table, results.json, report.html.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "training/experiments/study.h"

namespace moeseg {

int run_model_level_moe(const StudyOptions& opt);

// The experiment configs of one seed of the study, in table order, as JSON (name -> config),
// for a preset of the study config: what run_model_level_moe trains (tests check that every
// preset expands into configs that parse).
nlohmann::json model_level_moe_experiments(const nlohmann::json& study_config, const std::string& preset,
                                           const std::string& data_root, const std::string& out, int seed_index);

}  // namespace moeseg
