// Evaluation and its reports: per-subset mIoU of any model (highway, urban, ambiguous, all), for
// an MoE also gate-weight statistics and the expert-disagreement analysis, example predictions
// as PNG, and the Markdown table / HTML page `moeseg reproduce` writes.
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
// "all" = highway ∪ urban (spec §1.8): when both were evaluated, its confusion matrix is their
// sum instead of a second pass over the same images.
#pragma once
#include <memory>
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
  std::string list_file;              // an explicit A2D2 split file instead of the subsets
};

// {"model": name, "subsets": {"highway": {"images", "miou", "pixel_accuracy", "iou": [...],
//   "gate": {...} (MoE), "disagreement": {...} (MoE, ensemble)}, ...}}
nlohmann::json evaluate_on_subsets(SegmentationModel& model, const ExperimentConfig& c, const EvalOptions& opt,
                                   const std::string& model_name);

// Colourised class map (the palette of data/label_colours.h) as an RGB PNG; `labels` int64
// [H, W]; ignore pixels black.
void write_label_png(const std::string& path, const Tensor& labels, int64_t num_classes);

// The reproduce table: rows = models in order, columns = subsets; values mIoU in percent.
struct ResultRow {
  std::string model;
  std::vector<double> miou;   // per column, NaN = not evaluated
};
std::string markdown_table(const std::vector<std::string>& columns, const std::vector<ResultRow>& rows);
// A self-contained HTML page: title, the table, the SVG curves (inlined) and example images
// (relative paths).
void write_html_report(const std::string& path, const std::string& title, const std::string& intro,
                       const std::vector<std::string>& columns, const std::vector<ResultRow>& rows,
                       const std::vector<std::pair<std::string, std::string>>& svg_files,
                       const std::vector<std::pair<std::string, std::string>>& images);

}  // namespace moeseg
