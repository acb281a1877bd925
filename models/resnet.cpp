// ResNet backbone: torchvision's _make_layer (downsample rule and the previous_dilation rule) over
// the blocks of layers/resnet_blocks.h, and its initialisation (convs Kaiming normal, fan_out,
// ReLU gain; BatchNorm weight 1, bias 0).
#include "models/resnet.h"

#include <cmath>

#include "core/autograd.h"
#include "kernels/elementwise.h"
#include "kernels/pooling.h"

namespace moeseg {

namespace {

std::array<int, 4> blocks_for_depth(int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    default: MOESEG_FAIL("ResNet: depth ", depth, " is not supported (18, 34, 50 or 101)");
  }
}

}  // namespace

std::array<bool, 3> dilation_flags_for_output_stride(int output_stride) {
  switch (output_stride) {
    case 32: return {false, false, false};
    case 16: return {false, false, true};
    case 8: return {false, true, true};
    default: MOESEG_FAIL("ResNet: output stride ", output_stride, " is not supported (8, 16 or 32)");
  }
}

ResNet::ResNet(const ResNetConfig& cfg, Generator& gen) : Module("ResNet"), cfg_(cfg) {
  const auto blocks = blocks_for_depth(cfg.depth);
  MOESEG_CHECK(cfg.width > 0.0 && std::isfinite(cfg.width), "ResNet: width multiplier must be positive, got ",
               cfg.width);
  MOESEG_CHECK(cfg.in_channels > 0, "ResNet: in_channels must be positive, got ", cfg.in_channels);
  const bool bottleneck = cfg.depth >= 50;
  const int64_t expansion = bottleneck ? Bottleneck::kExpansion : BasicBlock::kExpansion;
  const int64_t base = std::max<int64_t>(1, std::llround(64.0 * cfg.width));

  inplanes_ = base;
  dilation_ = 1;
  conv1_ = register_module("conv1", make_resnet_conv(cfg.in_channels, base, 7, 2, 3, 1, gen));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(base));
  layer1_ = register_module("layer1", make_layer(bottleneck, base, blocks[0], 1, false, gen));
  layer2_ = register_module("layer2", make_layer(bottleneck, base * 2, blocks[1], 2,
                                                 cfg.replace_stride_with_dilation[0], gen));
  layer3_ = register_module("layer3", make_layer(bottleneck, base * 4, blocks[2], 2,
                                                 cfg.replace_stride_with_dilation[1], gen));
  layer4_ = register_module("layer4", make_layer(bottleneck, base * 8, blocks[3], 2,
                                                 cfg.replace_stride_with_dilation[2], gen));
  low_level_channels_ = base * expansion;
  out_channels_ = base * 8 * expansion;
  output_stride_ = 32;
  for (bool d : cfg.replace_stride_with_dilation)
    if (d) output_stride_ /= 2;
}

std::shared_ptr<Sequential> ResNet::make_layer(bool bottleneck, int64_t planes, int blocks, int64_t stride,
                                               bool dilate, Generator& gen) {
  const int64_t expansion = bottleneck ? Bottleneck::kExpansion : BasicBlock::kExpansion;
  const int64_t previous_dilation = dilation_;
  if (dilate) {
    dilation_ *= stride;
    stride = 1;
  }
  std::shared_ptr<Sequential> downsample;
  if (stride != 1 || inplanes_ != planes * expansion) {
    downsample = make_sequential(make_resnet_conv(inplanes_, planes * expansion, 1, stride, 0, 1, gen),
                                 std::make_shared<BatchNorm2d>(planes * expansion));
  }
  auto layer = std::make_shared<Sequential>();
  auto block = [&](int64_t in, int64_t s, int64_t d, std::shared_ptr<Sequential> ds) -> std::shared_ptr<Module> {
    if (bottleneck) return std::make_shared<Bottleneck>(in, planes, s, d, std::move(ds), gen);
    return std::make_shared<BasicBlock>(in, planes, s, d, std::move(ds), gen);
  };
  // torchvision: the first block keeps the previous stage's dilation, the others use the new one.
  layer->push_back(block(inplanes_, stride, previous_dilation, downsample));
  inplanes_ = planes * expansion;
  for (int i = 1; i < blocks; ++i) layer->push_back(block(inplanes_, 1, dilation_, nullptr));
  return layer;
}

ResNetFeatures ResNet::forward_features(const Tensor& x) {
  check_dim(x, 4, "ResNet", "x");
  MOESEG_CHECK(x.size(1) == cfg_.in_channels, "ResNet-", cfg_.depth, ": input ", x.str(), " has ", x.size(1),
               " channels, expected ", cfg_.in_channels);
  Tensor h = relu(bn1_->forward(conv1_->forward(x)));
  h = max_pool2d(h, 3, 2, 1);
  ResNetFeatures f;
  f.low_level = layer1_->forward(h);
  h = layer2_->forward(f.low_level);
  h = layer3_->forward(h);
  f.out = layer4_->forward(h);
  return f;
}

std::shared_ptr<ResNet> make_resnet(int depth, int output_stride, double width, Generator& gen) {
  ResNetConfig cfg;
  cfg.depth = depth;
  cfg.width = width;
  cfg.replace_stride_with_dilation = dilation_flags_for_output_stride(output_stride);
  return std::make_shared<ResNet>(cfg, gen);
}

}  // namespace moeseg
