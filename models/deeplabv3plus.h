// DeepLabv3+ on a ResNet backbone (spec/reference-systems.md §1.4), the expert architecture B of
// the MoE. Parameter names are those of the reference (VainF/DeepLabV3Plus-Pytorch as used by
// KASTEL-MobilityLab/mixtures-of-experts), so its checkpoints load by name:
//   backbone.*                        torchvision ResNet without avgpool/fc (models/resnet.h)
//   classifier.project.{0,1}          low-level 1x1 conv (-> 48) + BN (+ ReLU)
//   classifier.aspp.*                 ASPP (models/aspp.h)
//   classifier.classifier.{0,1,3}     3x3 conv (304 -> 256) + BN (+ ReLU), 1x1 conv -> classes (bias)
// Output stride 16: layer4 dilated, ASPP rates 6/12/18; output stride 8: layer3+4 dilated, rates
// 12/24/36. The ASPP output is upsampled (bilinear, align_corners=False) to the low-level map,
// the logits likewise to the input size.
//
// Taps (SegmentationModel): "aspp" (the ASPP output after its projection — the MoE gate input),
// "layer4" (backbone output), "low_level" (layer1 output, before the 48-channel projection).
//
// `width` scales the whole network for small CPU-sized experts: the backbone's base width 64 and
// the head widths 256 and 48 (rounded, at least 1). width = 1.0 is the reference network.
// Tested by tests/models/test_deeplab.cpp against PyTorch fixtures.
#pragma once
#include <memory>

#include "core/rng.h"
#include "models/aspp.h"
#include "models/resnet.h"
#include "models/segmentation_model.h"

namespace moeseg {

struct DeepLabV3PlusConfig {
  int backbone_depth = 101;
  int64_t num_classes = 38;
  int output_stride = 16;   // 8 or 16
  double width = 1.0;
};

class DeepLabV3Plus : public SegmentationModel {
 public:
  explicit DeepLabV3Plus(const DeepLabV3PlusConfig& cfg, Generator& gen = default_generator());

  SegmentationOutput forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override { return {"aspp", "layer4", "low_level"}; }
  int64_t tap_channels(const std::string& tap) const override;
  int64_t tap_stride(const std::string& tap) const override;
  int64_t num_classes() const override { return cfg_.num_classes; }

  const DeepLabV3PlusConfig& config() const { return cfg_; }
  ResNet& backbone() const { return *backbone_; }
  ASPP& aspp() const { return *aspp_; }

 private:
  DeepLabV3PlusConfig cfg_;
  std::shared_ptr<ResNet> backbone_;
  std::shared_ptr<Module> classifier_;          // the head, named "classifier" as in the reference
  std::shared_ptr<Sequential> project_;         // classifier.project
  std::shared_ptr<ASPP> aspp_;                  // classifier.aspp
  std::shared_ptr<Sequential> decoder_;         // classifier.classifier
};

// The registry's entry point (names deeplabv3plus_resnet18/50/101): ResNet depth 18/34/50/101,
// output stride 8 or 16, width multiplier (1.0 = reference).
std::shared_ptr<SegmentationModel> make_deeplabv3plus(int backbone_depth, int64_t num_classes, int output_stride,
                                                      double width = 1.0);

}  // namespace moeseg
