// Uncertainty and calibration of models over a dataset (spec §1.11), the engine of the uncertainty
// study and of `moeseg uncertainty CONFIG`: rows (a model, how its members are taken: a member set
// of its output or MC-dropout samples, and its measures) evaluated on a condition (test subsets
// clean, under corruptions at a severity, or another subset such as the OOD "ambiguous" one).
//
// Per batch every model needed runs once in eval mode (MC-dropout rows run their own S passes);
// each row's members give the maps of training/uncertainty.h, and each measure's normalised
// uncertainty feeds a pooled CalibrationAccumulator and a PerImageCalibration
// (training/calibration.h). The scores of a (row, measure), the table's columns, are the
// reference's: ECE, MCE, Brier and NLL between the correctness indicator and the measure's
// confidence 1 − u, per image and averaged over images; AUROC of misclassification detection
// pooled over pixels (beyond the reference); PAvPU in the reference's form (and the standard one)
// at one threshold of the 0.01…0.99 grid. With several corruptions each is its own pass and the
// scores are their mean (the pooled metrics of every pass are kept in the detail JSON).
// Corrupted images: data/corruptions.h on each resized image, seed = condition seed + the image's
// index in the pass, so a rerun gives the same pixels. MC-dropout seeds: mc_seed + batch index.
// Tested by tests/training/test_uncertainty_evaluation.cpp.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/corruptions.h"
#include "models/segmentation_model.h"
#include "training/experiment_config.h"
#include "training/report.h"
#include "training/uncertainty.h"

namespace moeseg {

struct UncertaintyRowSpec {
  std::string model;      // key of the model in the map given to evaluate_uncertainty
  std::string members;    // the table's Members cell, e.g. "MoE simple · weighted"
  bool mc_dropout = false;
  MemberSet set = MemberSet::Plain;   // when not MC-dropout
  GateReduction reduction = GateReduction::PredictedClass;
  double mc_rate = 0.1;
  int mc_samples = 2;
  uint64_t mc_seed = 0;
  std::vector<std::string> measures;   // predictive_entropy | mutual_information | expert_variance | gate_entropy
};

struct UncertaintyCondition {
  std::string name = "clean";                 // the line "condition: NAME"
  std::vector<std::string> subsets;           // evaluated together, each its first max_images
  std::vector<data::Corruption> corruptions;  // empty: clean images
  int severity = 0;                           // 1..5 when corrupted
  uint64_t seed = 0;
};

struct UncertaintyEvalOptions {
  std::string split = "test";
  int max_images = 0;             // per subset; 0 = all
  int batch = 8;
  int64_t ignore_index = -1;      // -1: the dataset's
  double pavpu_threshold = 0.49;  // must be a point of conditional_thresholds()
  std::string pictures_dir;       // non-empty: reliability diagrams and maps of the first image
  bool quiet = false;
};

struct UncertaintyScores {
  double ece = 0, mce = 0, brier = 0, nll = 0;   // reference forms, means over images
  double auroc = 0, pavpu = 0, pavpu_standard = 0, accuracy = 0;
  double ece_standard = 0;                       // confidence = max probability, pooled
  int64_t images = 0, pixels = 0;
};

struct UncertaintyCell {
  std::string model, members, measure;
  UncertaintyScores scores;
  nlohmann::json detail;                                      // pooled metrics (per corruption when corrupted)
  std::vector<std::pair<std::string, std::string>> pictures;   // (caption, file name in pictures_dir)
};

// Cells in row order, each row's measures in its order. Throws naming the row for an unknown
// model or measure, gate entropy of a model without a gate, a weighted set without a gate, a
// threshold off the grid, a severity outside 1..5.
std::vector<UncertaintyCell> evaluate_uncertainty(const std::map<std::string, SegmentationModel*>& models,
                                                  const DataConfig& data, const std::vector<UncertaintyRowSpec>& rows,
                                                  const UncertaintyCondition& condition,
                                                  const UncertaintyEvalOptions& opt);

// "PE", "MI", "EV", "gate entropy" for the table.
std::string measure_title(const std::string& measure);
// The rows a single model gets when none are chosen, from one output of it (`probe`): its plain set
// (and weighted and stacked when it has a gate), every measure that applies (MI and EV need >= 2
// members, gate entropy a gate).
std::vector<UncertaintyRowSpec> default_uncertainty_rows(const ModelOutput& probe, const std::string& key,
                                                         const std::string& title);
nlohmann::json scores_json(const UncertaintyScores& s);

// The table `| Measure | Members | ECE | MCE | Brier | NLL | AUROC | PAvPU |` of the cells (4 decimals)
// and their JSON ({"measure", "members", "model", "scores", "detail"} each).
TextTable uncertainty_table(const std::vector<UncertaintyCell>& cells);
nlohmann::json uncertainty_cells_json(const std::vector<UncertaintyCell>& cells);

}  // namespace moeseg
