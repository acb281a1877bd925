// Insertion of sparse MoE layers (layers/sparse_moe.h) into a built network by module name, as
// the lineage code does (reference-systems §5.2: "all Conv2d whose name contains `layer4`
// replaced"; the later edge work replaces one named conv, e.g. ResNet-50 `layer4.1.conv2`).
//
// A MoeInsertion names a pattern and a target kind:
//   target conv   every Conv2d whose dotted module name contains the pattern becomes a ConvMoE
//                 (per-image tokens) or a PatchMoE (per-patch tokens): N experts, each a Conv2d
//                 with the replaced conv's geometry (kernel, dilation, padding, groups, bias);
//   target block  every ResNet BasicBlock / Bottleneck whose name contains the pattern becomes a
//                 BlockMoE: N experts, each a block of the same kind and geometry (with its own
//                 downsample branch where the replaced block has one).
// A pattern that is a full module name ("backbone.layer4.1.conv2") therefore replaces one layer.
// Modules inside an already inserted SparseMoE are never matched. Each replaced module must keep
// the spatial size (stride 1 and "same" padding, as layer4 at output stride 16 or 8 does);
// anything else is refused naming the module and its geometry.
//
// Experts start fresh (the default: convs Kaiming normal, fan_out, as torchvision's ResNet and the
// lineage's _initialize_weights; BatchNorm 1 / 0) or as copies of the replaced module ("copy":
// the network computes what it computed before, whatever the router picks). Each inserted layer
// is named by its module path (its errors and aux-loss names say "backbone.layer4.0.conv1") and
// gets its own noise seed.
//
// State-dict names: the replaced module's prefix, then the SparseMoE's own: "<path>.experts.<e>.*"
// as the lineage's MOELayer ("experts" ModuleList) and "<path>.router.*" where the lineage has
// "<path>.gate.network.*" (the index layout of its router Sequential depends on its config, which
// the spec does not give, so we keep our router's child names; README, "Sparse MoE layers").
//
// JSON (the "sparse_moe" key of a single-model config, an object or a list of them):
//   {"replace": "layer4", "target": "conv"|"block", "tokens": "per_image"|"per_patch", "patch": 2,
//    "patch_halo": -1 (-1: the replaced module's reach: dilation*(K-1)/2 for a conv, 2*dilation
//    for a BasicBlock, dilation for a Bottleneck), "num_experts": 4,
//    "k": 1, "router": "gap_linear"|"conv1x1_gap"|"conv3x3_gap"|"two_conv_bn_gap"|"random_projection",
//    "noise": "none"|"shazeer_learned"|"std_normalized", "noise_std": 0.1,
//    "capacity_factor": 1.25, "overflow": "drop"|"reassign", "reassign_rounds": 25,
//    "straight_through": false, "hard_constraint_share": 0.5,
//    "importance_weight": 0, "load_weight": 0, "switch_weight": 0, "entropy_weight": 0,
//    "expert_init": "fresh"|"copy", "seed": 0}   (layers/sparse_moe.h says what each does)
// Unknown keys and out-of-range values are refused naming the key.
// Tested by tests/models/test_moe_insertion.cpp.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "layers/module.h"
#include "layers/sparse_moe.h"

namespace moeseg {

enum class MoeInsertTarget { Conv, Block };

struct MoeInsertion {
  std::string pattern;                       // matched against dotted module names (substring)
  MoeInsertTarget target = MoeInsertTarget::Conv;
  SparseMoEConfig layer;                     // the template of every inserted layer (name, seed set per layer)
  int64_t patch_halo = -1;                   // per-patch tokens: -1 = the replaced module's reach
  bool copy_weights = false;                 // experts start as copies of the replaced module
  uint64_t seed = 0;                         // expert initialisation and noise seeds
};

// Replaces every matching module of `root`; returns the replaced modules' names in tree order.
// Throws naming the pattern and the candidate modules when nothing matches.
std::vector<std::string> insert_sparse_moe(Module& root, const MoeInsertion& ins);

// Parses one insertion object; `where` names the config and key ("model.json: sparse_moe[0]").
MoeInsertion parse_moe_insertion(const nlohmann::json& j, const std::string& where);

// Every SparseMoE of a module tree with its dotted name, in tree (= forward) order.
std::vector<std::pair<std::string, SparseMoE*>> sparse_moe_layers(Module& root);

}  // namespace moeseg
