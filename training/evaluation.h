// Evaluation of any model on an experiment config's test subsets: per-subset mIoU (highway,
// urban, ambiguous, all), for a mixture also gate-weight statistics and the expert-disagreement
// analysis, and example predictions as PNG (training/evaluation.cpp).
//
// Expert-disagreement analysis (spec §1.12, extended with the ground truth). Per valid pixel
// (ground truth not ignore), with argmax maps m (MoE or ensemble), e1, e2 (experts) and g (truth):
//   reference categories (no ground truth, as the reference's disagreements_analysis_*.py;
//   per pixel: expert_agreement() in training/disagreement.h):
//     perfect   m = e1 = e2          follows_1 m = e1 != e2
//     follows_2 m = e2 != e1         critical  m != e1 and m != e2
//   ground-truth categories (which expert was right, and what the MoE did with it):
//     both_right          e1 = g and e2 = g (the MoE is right unless its conv changes it)
//     only_1_right        e1 = g != e2, split into moe_right (it followed expert 1) / moe_wrong
//     only_2_right        e2 = g != e1, split likewise
//     neither_right       e1 != g and e2 != g, split into moe_right (the MoE rescued it: possible
//                         with the final conv or class-wise weights) / moe_wrong ("critical")
//   Fractions are over the valid pixels of the subset. With more than two experts the analysis
//   uses experts 1 and 2.
// "all" = highway ∪ urban (spec §1.8; data::union_subset_parts): when both were evaluated, its
// counts are their sums instead of a second pass over the same images.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/segmentation_model.h"
#include "training/experiment_config.h"

namespace moeseg {

struct EvalOptions {
  std::vector<std::string> subsets;   // empty: the config's data.test_subsets
  std::string split = "test";
  int max_images = -1;                // -1: the config's data.max_test
  bool quiet = false;
  std::string examples_dir;           // "": no example PNGs
  int examples_per_subset = 0;
  std::string list_file;              // a list file of the config's dataset instead of the subsets
};

// {"model": name, "subsets": {"highway": {"images", "miou", "pixel_accuracy", "iou": [...],
//   "gate": {...} (MoE), "disagreement": {...} (MoE, ensemble)}, ...}}
nlohmann::json evaluate_on_subsets(SegmentationModel& model, const ExperimentConfig& c, const EvalOptions& opt,
                                   const std::string& model_name);

}  // namespace moeseg
