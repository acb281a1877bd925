// ResNet's BasicBlock and Bottleneck (see resnet_blocks.h). Children are registered in
// torchvision's order and with its names, so state_dict names match torchvision's.
#include "layers/resnet_blocks.h"

#include <cmath>

#include "core/autograd.h"
#include "kernels/elementwise.h"

namespace moeseg {

std::shared_ptr<Conv2d> make_resnet_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                                         int64_t dil, Generator& gen) {
  auto c = std::make_shared<Conv2d>(in, out, k, stride, pad, dil, 1, /*bias=*/false, gen);
  NoGradGuard ng;
  normal_(c->weight, 0.0, std::sqrt(2.0 / static_cast<double>(out * k * k)), gen);
  return c;
}

std::shared_ptr<Sequential> make_resnet_downsample(int64_t in, int64_t out, int64_t stride, Generator& gen) {
  return make_sequential(make_resnet_conv(in, out, 1, stride, 0, 1, gen), std::make_shared<BatchNorm2d>(out));
}

BasicBlock::BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation,
                       std::shared_ptr<Sequential> downsample, Generator& gen)
    : ResNetBlock("BasicBlock", inplanes, planes, kExpansion, stride, dilation) {
  conv1_ = register_module("conv1", make_resnet_conv(inplanes, planes, 3, stride, dilation, dilation, gen));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2_ = register_module("conv2", make_resnet_conv(planes, planes, 3, 1, dilation, dilation, gen));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (downsample) downsample_ = register_module("downsample", downsample);
}

bool BasicBlock::accept_replacement(const std::string& name, const std::shared_ptr<Module>& m) {
  if (name == "conv1") conv1_ = m;
  else if (name == "conv2") conv2_ = m;
  else return false;
  return true;
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu(bn1_->forward(conv1_->forward(x)));
  out = bn2_->forward(conv2_->forward(out));
  Tensor identity = downsample_ ? downsample_->forward(x) : x;
  return relu(add(out, identity));
}

Bottleneck::Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation,
                       std::shared_ptr<Sequential> downsample, Generator& gen)
    : ResNetBlock("Bottleneck", inplanes, planes, kExpansion, stride, dilation) {
  conv1_ = register_module("conv1", make_resnet_conv(inplanes, planes, 1, 1, 0, 1, gen));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2_ = register_module("conv2", make_resnet_conv(planes, planes, 3, stride, dilation, dilation, gen));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv3_ = register_module("conv3", make_resnet_conv(planes, planes * kExpansion, 1, 1, 0, 1, gen));
  bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(planes * kExpansion));
  if (downsample) downsample_ = register_module("downsample", downsample);
}

bool Bottleneck::accept_replacement(const std::string& name, const std::shared_ptr<Module>& m) {
  if (name == "conv1") conv1_ = m;
  else if (name == "conv2") conv2_ = m;
  else if (name == "conv3") conv3_ = m;
  else return false;
  return true;
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu(bn1_->forward(conv1_->forward(x)));
  out = relu(bn2_->forward(conv2_->forward(out)));
  out = bn3_->forward(conv3_->forward(out));
  Tensor identity = downsample_ ? downsample_->forward(x) : x;
  return relu(add(out, identity));
}

}  // namespace moeseg
