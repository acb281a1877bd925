// A tiny experiment for the training-side tests: synthetic scenes at 48x64 (`train` training
// images, 1 validation, 3 test per domain) generated into <dir>/data, and an experiment config
// around an untrained FRRN-A of width 0.125 (seed 5) on highway + urban, tested on highway, urban
// and all, batch 2, one epoch, output <dir>/run. Used by test_robustness and test_uncertainty_evaluation.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "data/synthetic_scenes.h"
#include "tests/support/temp_dir.h"
#include "training/experiment_config.h"

namespace moeseg::testing {

inline ExperimentConfig tiny_synthetic_experiment(const TempDir& d, const std::string& name, int train) {
  data::SynthOptions so;
  so.out = d.str("data");
  so.height = 48;
  so.width = 64;
  so.train = train;
  so.val = 1;
  so.test = 3;
  so.threads = 1;
  data::generate_synthetic_a2d2(so);
  const nlohmann::json j = {
      {"name", name},
      {"model", {{"model", "frrn_a"}, {"num_classes", 38}, {"seed", 5}, {"width", 0.125}}},
      {"data",
       {{"dataset", "a2d2"}, {"root", d.str("data")}, {"subset", "highway,urban"}, {"height", 48}, {"width", 64},
        {"preset", "reference"}, {"workers", 0}, {"test_subsets", {"highway", "urban", "all"}}}},
      {"train", {{"batch", 2}, {"epochs", 1}}},
      {"out", d.str("run")}};
  return parse_experiment_config(j, d.str("config.json"), d.str());
}

}  // namespace moeseg::testing
