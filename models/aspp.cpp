// ASPP: five parallel branches over the backbone's last feature map, concatenated and projected.
#include "models/aspp.h"

#include <cmath>

#include "core/autograd.h"
#include "kernels/pooling.h"
#include "kernels/shape_ops.h"
#include "kernels/upsample.h"
#include "layers/activation_layers.h"
#include "layers/batch_norm_layer.h"
#include "layers/conv2d_layer.h"

namespace moeseg {

namespace {

// nn.AdaptiveAvgPool2d(1) — no parameters, present only so the children keep the reference's
// indices (convs.4.1 is the conv, convs.4.2 the BN).
class GlobalAvgPool : public Module {
 public:
  GlobalAvgPool() : Module("AdaptiveAvgPool2d") {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, 1, 1); }
};

// The image-pooling branch: pool -> conv -> BN -> ReLU -> bilinear back to the input size.
class ASPPPooling : public Sequential {
 public:
  ASPPPooling(int64_t in, int64_t out, Generator& gen) {
    push_back(std::make_shared<GlobalAvgPool>());
    push_back(make_head_conv(in, out, 1, 0, 1, false, gen));
    push_back(std::make_shared<BatchNorm2d>(out));
    push_back(std::make_shared<ReLU>());
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = Sequential::forward(x);
    return upsample_bilinear2d(y, x.size(2), x.size(3), /*align_corners=*/false);
  }
};

std::shared_ptr<Sequential> conv_bn_relu(int64_t in, int64_t out, int64_t k, int64_t dilation, Generator& gen) {
  const int64_t padding = k == 1 ? 0 : dilation;
  return make_sequential(make_head_conv(in, out, k, padding, dilation, false, gen), std::make_shared<BatchNorm2d>(out),
                         std::make_shared<ReLU>());
}

}  // namespace

std::shared_ptr<Conv2d> make_head_conv(int64_t in, int64_t out, int64_t k, int64_t padding, int64_t dilation,
                                       bool bias, Generator& gen) {
  auto c = std::make_shared<Conv2d>(in, out, k, 1, padding, dilation, 1, bias, gen);
  NoGradGuard ng;
  normal_(c->weight, 0.0, std::sqrt(2.0 / static_cast<double>(in * k * k)), gen);
  return c;   // a bias keeps nn.Conv2d's default U(±1/sqrt(fan_in)), as _init_weight leaves it
}

ASPP::ASPP(int64_t in_channels, int64_t out_channels, std::array<int64_t, 3> rates, Generator& gen, double dropout)
    : Module("ASPP"), out_channels_(out_channels), rates_(rates) {
  MOESEG_CHECK(in_channels > 0 && out_channels > 0, "ASPP: channels must be positive, got in=", in_channels,
               " out=", out_channels);
  for (int64_t r : rates) MOESEG_CHECK(r > 0, "ASPP: atrous rates must be positive, got ", r);
  convs_ = register_module("convs", std::make_shared<Module>("ModuleList"));
  convs_->register_module("0", conv_bn_relu(in_channels, out_channels, 1, 1, gen));
  for (int i = 0; i < 3; ++i)
    convs_->register_module(std::to_string(i + 1), conv_bn_relu(in_channels, out_channels, 3, rates[i], gen));
  convs_->register_module("4", std::make_shared<ASPPPooling>(in_channels, out_channels, gen));
  // Dropout draws from the global generator: `gen` is only for initialisation and may be a local
  // that dies with the constructor's caller, while Dropout keeps a pointer to its generator.
  project_ = register_module(
      "project", make_sequential(make_head_conv(5 * out_channels, out_channels, 1, 0, 1, false, gen),
                                 std::make_shared<BatchNorm2d>(out_channels), std::make_shared<ReLU>(),
                                 std::make_shared<Dropout>(dropout)));
}

Tensor ASPP::forward(const Tensor& x) {
  std::vector<Tensor> branches;
  branches.reserve(5);
  for (auto& [name, branch] : convs_->children()) branches.push_back(branch->forward(x));
  return project_->forward(concat(branches, 1));
}

}  // namespace moeseg
