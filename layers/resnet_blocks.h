// ResNet's two residual blocks in torchvision's layout (BasicBlock: two 3x3 convs; Bottleneck:
// 1x1, 3x3 (with the stride, v1.5), 1x1 with expansion 4), each with BatchNorm, the optional
// downsample branch and torchvision's child names (conv1, bn1, ..., downsample.0/1) and
// initialisation (convs Kaiming normal, fan_out, ReLU gain). They live in layers/ so that both
// the ResNet backbone (models/resnet.h) and the BlockMoE experts (layers/sparse_moe.h) build on them.
// Tested through tests/models/test_resnet.cpp and tests/layers/test_sparse_moe.cpp.
#pragma once
#include <memory>

#include "core/rng.h"
#include "layers/batch_norm_layer.h"
#include "layers/conv2d_layer.h"
#include "layers/module.h"
#include "layers/sequential.h"

namespace moeseg {

// A bias-free Conv2d initialised as torchvision's ResNet: kaiming_normal_(mode="fan_out",
// nonlinearity="relu"), i.e. N(0, 2 / (out * k * k)).
std::shared_ptr<Conv2d> make_resnet_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                                         int64_t dil, Generator& gen);

// What both blocks share: their geometry, for building blocks like them (models/moe_insertion.h).
class ResNetBlock : public Module {
 public:
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return planes_ * expansion_; }
  int64_t planes() const { return planes_; }
  int64_t stride() const { return stride_; }
  int64_t dilation() const { return dilation_; }
  bool has_downsample() const { return downsample_ != nullptr; }

 protected:
  ResNetBlock(const char* type, int64_t inplanes, int64_t planes, int64_t expansion, int64_t stride, int64_t dilation)
      : Module(type), in_(inplanes), planes_(planes), expansion_(expansion), stride_(stride), dilation_(dilation) {}
  int64_t in_, planes_, expansion_, stride_, dilation_;
  std::shared_ptr<Sequential> downsample_;
};

class BasicBlock : public ResNetBlock {
 public:
  static constexpr int64_t kExpansion = 1;
  // dilation: both 3x3 convs dilated (padding = dilation); torchvision refuses dilation here.
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation,
             std::shared_ptr<Sequential> downsample, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;

 protected:
  // conv1 and conv2 may be replaced (a ConvMoE in their place, models/moe_insertion.h).
  bool accept_replacement(const std::string& name, const std::shared_ptr<Module>& m) override;

 private:
  std::shared_ptr<Module> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
};

class Bottleneck : public ResNetBlock {
 public:
  static constexpr int64_t kExpansion = 4;
  // groups = 1 and base_width = 64, so torchvision's inner width is `planes`.
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation,
             std::shared_ptr<Sequential> downsample, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;

 protected:
  // conv1, conv2 and conv3 may be replaced (models/moe_insertion.h).
  bool accept_replacement(const std::string& name, const std::shared_ptr<Module>& m) override;

 private:
  std::shared_ptr<Module> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
};

// torchvision's downsample branch: 1x1 conv with the stride, then BatchNorm.
std::shared_ptr<Sequential> make_resnet_downsample(int64_t in, int64_t out, int64_t stride, Generator& gen);

}  // namespace moeseg
