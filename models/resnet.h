// ResNet-18/34/50/101 backbones in torchvision's layout (v1.5: the stride of a Bottleneck sits on
// its 3x3 conv), with torchvision's parameter names ("conv1", "bn1", "layer1.0.conv1",
// "layer2.0.downsample.0", ...) so ImageNet weights load by name (the fc layer is simply absent:
// load with strict=false or drop "fc.*"). The backbone of the DeepLabv3+ expert
// (models/deeplabv3plus.h); it returns the layer1 ("low-level", stride 4) and layer4 features.
//
// replace_stride_with_dilation follows torchvision exactly, including the previous_dilation rule:
// the first block of a dilated stage still uses the dilation of the stage before on its 3x3
// conv, the remaining blocks use the new one. torchvision refuses dilation in BasicBlock; we
// allow it (both 3x3 convs dilated, padding = dilation) so ResNet-18/34 experts can run at
// output stride 8/16 — with weights this has no torchvision counterpart to compare against.
//
// `width` scales the base width 64 (stages 64/128/256/512 · width, rounded) for small CPU-sized
// experts; width 1.0 is torchvision's network.
// Tested by tests/models/test_resnet.cpp.
#pragma once
#include <array>
#include <memory>

#include "core/rng.h"
#include "layers/batch_norm_layer.h"
#include "layers/conv2d_layer.h"
#include "layers/module.h"
#include "layers/resnet_blocks.h"
#include "layers/sequential.h"

namespace moeseg {

struct ResNetConfig {
  int depth = 50;                                  // 18, 34, 50 or 101
  double width = 1.0;                              // multiplies the base width 64
  std::array<bool, 3> replace_stride_with_dilation{false, false, false};   // layer2, layer3, layer4
  int64_t in_channels = 3;
};

// replace_stride_with_dilation for an output stride of 8, 16 or 32 (DeepLab's convention).
std::array<bool, 3> dilation_flags_for_output_stride(int output_stride);

struct ResNetFeatures {
  Tensor low_level;   // layer1 output: [N, 64·width·expansion, H/4, W/4]
  Tensor out;         // layer4 output: [N, 512·width·expansion, H/os, W/os]
};

class ResNet : public Module {
 public:
  explicit ResNet(const ResNetConfig& cfg, Generator& gen = default_generator());

  ResNetFeatures forward_features(const Tensor& x);
  Tensor forward(const Tensor& x) override { return forward_features(x).out; }

  const ResNetConfig& config() const { return cfg_; }
  int64_t low_level_channels() const { return low_level_channels_; }
  int64_t out_channels() const { return out_channels_; }
  int output_stride() const { return output_stride_; }   // 32, 16 or 8
  static bool is_supported_depth(int depth) { return depth == 18 || depth == 34 || depth == 50 || depth == 101; }

 private:
  std::shared_ptr<Sequential> make_layer(bool bottleneck, int64_t planes, int blocks, int64_t stride, bool dilate,
                                         Generator& gen);

  ResNetConfig cfg_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Sequential> layer1_, layer2_, layer3_, layer4_;
  int64_t inplanes_ = 0, dilation_ = 1;   // construction state, as torchvision's _make_layer
  int64_t low_level_channels_ = 0, out_channels_ = 0;
  int output_stride_ = 32;
};

std::shared_ptr<ResNet> make_resnet(int depth, int output_stride = 32, double width = 1.0,
                                    Generator& gen = default_generator());

}  // namespace moeseg
