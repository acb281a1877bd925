// Evaluation of a segmentation network with sparse MoE layers inside (layers/sparse_moe.h,
// inserted by models/moe_insertion.h) for the sparse-MoE study (issue 12): mIoU per test subset,
// expert usage of every MoE layer, the specialisation of the last MoE layer, the cost as run, and
// the routing pictures. A network without MoE layers (the dense baseline) gets the same numbers
// minus the routing.
//
// Usage of a layer over the evaluated images: c_e = the token-expert pairs (all k slots) routed to
// expert e (eval mode: plain top-k, no noise, no capacity); p_e = c_e / Σ c;
//   usage entropy = −Σ p_e log p_e / log N   (normalised: 1 = uniform use, 0 = one expert; N = 1: 1)
//   usage CV      = std(c) / mean(c)          (population std over the N experts; 0 = uniform)
// The model's usage entropy / CV are the means over its MoE layers.
// Specialisation (the last MoE layer in forward order, the one nearest the head): each token's
// top-1 expert, counted per domain (the subset the image comes from) and per class of the
// token's majority label (the ground-truth pixels under its patch, ignore pixels left out; a
// per-image token covers the whole image; a token without a valid pixel is not counted). A
// token's patch (r, c) of an nh x nw grid covers rows [r·H/nh, (r+1)·H/nh) and the same in x.
// Cost: parameters; GFLOPs per image counted as run (core/flop_counter.h) over the evaluation
// pass; ms per image timed on the first `timing_images` test images one at a time after one
// warm-up image (the median).
// Routing picture: the input image with each token's patch tinted by the colour of its top-1
// expert (moe_expert_colour) at 45%, for the first images of each subset, enlarged to at least
// 240 pixels high.
// Tested by tests/training/test_sparse_moe_evaluation.cpp.
#pragma once
#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/image_io.h"
#include "models/segmentation_model.h"
#include "training/experiment_config.h"

namespace moeseg {

struct MoeLayerUsage {
  std::string layer;
  std::vector<int64_t> pairs;   // [N] routed pairs per expert
  double entropy() const;       // normalised, see above
  double cv() const;
};

struct MoeSpecialisation {
  std::string layer;                              // "" when the model has no MoE layer
  int64_t experts = 0;
  std::vector<std::string> domains;               // the evaluated subsets, in order
  std::vector<std::vector<int64_t>> by_domain;    // [domain][expert] top-1 tokens
  std::vector<std::vector<int64_t>> by_class;     // [class][expert] top-1 tokens
};

struct SparseMoeEvalOptions {
  std::vector<std::string> subsets = {"highway", "urban", "ambiguous"};
  std::string union_name = "all";   // the union of the first two subsets, "" = none
  int max_images = -1;              // per subset; -1 = the config's data.max_test
  int timing_images = 12;
  std::string pictures_dir;         // "" = no routing pictures
  int pictures_per_subset = 0;
  bool quiet = true;
};

struct SparseMoeEvaluation {
  std::vector<std::string> columns;   // subsets, then the union
  std::vector<double> miou;           // per column, in [0, 1]
  std::vector<MoeLayerUsage> layers;
  MoeSpecialisation specialisation;
  int64_t parameters = 0;
  double gflops_per_image = 0, ms_per_image = 0;
  std::vector<std::pair<std::string, std::string>> pictures;   // (caption, file name in pictures_dir)
  double usage_entropy() const;       // mean over layers, NaN without layers
  double usage_cv() const;
  nlohmann::json to_json() const;
};

SparseMoeEvaluation evaluate_sparse_moe_model(SegmentationModel& model, const ExperimentConfig& c,
                                              const SparseMoeEvalOptions& opt, const std::string& model_name);

// A distinct colour per expert (12 colours, then repeating).
std::array<uint8_t, 3> moe_expert_colour(int64_t expert);
// The routing picture of one image: image [3, H, W] in [0, 1]; top1 [nh * nw] in row order;
// enlarged `scale` times (nearest neighbour) so that small CPU-sized inputs can be seen.
data::Image routing_picture(const Tensor& image, const std::vector<int64_t>& top1, int64_t nh, int64_t nw,
                            int scale = 1);
// The majority class of each token's patch: labels [H, W] int64; -1 for a patch of ignore pixels.
std::vector<int64_t> patch_majority_labels(const Tensor& labels, int64_t nh, int64_t nw, int64_t num_classes);

}  // namespace moeseg
