// Full-Resolution Residual Networks, tables A and B (Pohlen et al. 2017), as the experts of the
// model-level MoE (spec/reference-systems.md §1.3). State-dict names follow the reference
// (KASTEL-MobilityLab/mixtures-of-experts, models/frrn.py): first.{conv,bn}, reslayers_in.<i>,
// divide, frrnlayer1..K, defrrnlayer1..K-1, compress, reslayers_out.<i>, out_conv.
//
// Table B (5 encoder + 4 decoder stages) is defined but not buildable in the reference, whose
// network hard-wires 4 + 3 stages; here the stages are built from the table, so both work.
// A width multiplier scales every channel count, the residual stream's included (round half up,
// at least 1), so that small experts can be trained on a CPU; width 1 is the published network.
// Taps: "frrnlayer<i>" = the pooling stream y after encoder stage i (stride 2^i); the MoE gate
// reads the last one (FRRN-A: "frrnlayer4", 384 x H/16 x W/16).
// One addition to the reference: a Dropout (rate FRRNConfig::dropout, 0 by default, which returns
// its input unchanged and draws nothing) before out_conv, named out_dropout; it has no parameters,
// so state dicts are unchanged, and MC-dropout has a layer to switch on.
// Tested by tests/models/test_frrn.cpp against PyTorch fixtures (tools/fixtures/make_model_fixtures.py).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/activation_layers.h"
#include "models/frrn_blocks.h"
#include "models/segmentation_model.h"

namespace moeseg {

struct FRRNStage {
  int64_t units, channels, factor;
};

struct FRRNTable {
  int64_t pool_channels, res_channels;
  std::vector<FRRNStage> encoder, decoder;
};

// 'A' or 'B' (the reference's FRRN_PARAMS); throws for anything else.
FRRNTable frrn_table(char table);
// Channel count under a width multiplier: max(1, floor(c * width + 0.5)).
int64_t frrn_scaled_channels(int64_t c, double width);

struct FRRNConfig {
  char table = 'A';
  int64_t in_channels = 3;
  int64_t num_classes = 38;
  double width = 1.0;
  uint64_t seed = 0;   // initialisation (PyTorch's default initialisers, Philox)
  double dropout = 0.0;   // rate of the Dropout before out_conv (not in the reference: 0 = identity;
                          // it is the layer MC-dropout (training/mc_dropout.h) switches on)
};

class FRRN : public SegmentationModel {
 public:
  explicit FRRN(const FRRNConfig& cfg);
  SegmentationOutput forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override;
  int64_t tap_channels(const std::string& tap) const override;
  int64_t tap_stride(const std::string& tap) const override;
  int64_t num_classes() const override { return cfg_.num_classes; }
  const FRRNConfig& config() const { return cfg_; }
  // The table with the width multiplier applied.
  const FRRNTable& scaled_table() const { return table_; }

 private:
  int64_t tap_index(const std::string& tap) const;   // encoder stage (0-based), throws if unknown

  FRRNConfig cfg_;
  FRRNTable table_;
  std::shared_ptr<Module> first_;
  std::shared_ptr<Conv2d> first_conv_, divide_, compress_, out_conv_;
  std::shared_ptr<BatchNorm2d> first_bn_;
  std::shared_ptr<Dropout> out_dropout_;
  std::vector<std::shared_ptr<ResidualUnit>> res_in_, res_out_;
  std::vector<std::shared_ptr<FRRLayer>> encoder_, decoder_;
};

}  // namespace moeseg
