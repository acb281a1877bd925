// DeepLabv3+: ResNet backbone -> ASPP -> decoder with the low-level (layer1) features -> logits.
#include "models/deeplabv3plus.h"

#include <algorithm>
#include <cmath>

#include "kernels/shape_ops.h"
#include "kernels/upsample.h"
#include "layers/activation_layers.h"
#include "layers/batch_norm_layer.h"

namespace moeseg {

namespace {

int64_t scaled(int64_t channels, double width) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(channels) * width));
}

std::array<int64_t, 3> aspp_rates_for_output_stride(int output_stride) {
  if (output_stride == 16) return {6, 12, 18};
  if (output_stride == 8) return {12, 24, 36};
  MOESEG_FAIL("DeepLabv3+: output stride ", output_stride, " is not supported (8 or 16)");
}

}  // namespace

DeepLabV3Plus::DeepLabV3Plus(const DeepLabV3PlusConfig& cfg, Generator& gen)
    : SegmentationModel("DeepLabV3Plus"), cfg_(cfg) {
  MOESEG_CHECK(cfg.num_classes > 0, "DeepLabv3+: num_classes must be positive, got ", cfg.num_classes);
  const auto rates = aspp_rates_for_output_stride(cfg.output_stride);
  MOESEG_CHECK(ResNet::is_supported_depth(cfg.backbone_depth), "DeepLabv3+: backbone ResNet-", cfg.backbone_depth,
               " is not supported (18, 34, 50 or 101)");

  ResNetConfig rc;
  rc.depth = cfg.backbone_depth;
  rc.width = cfg.width;
  rc.replace_stride_with_dilation = dilation_flags_for_output_stride(cfg.output_stride);
  backbone_ = register_module("backbone", std::make_shared<ResNet>(rc, gen));

  const int64_t aspp_ch = scaled(256, cfg.width);
  const int64_t low_ch = scaled(48, cfg.width);
  // Registration order as the reference's DeepLabHeadV3Plus: project, aspp, classifier.
  classifier_ = register_module("classifier", std::make_shared<Module>("DeepLabHeadV3Plus"));
  project_ = classifier_->register_module(
      "project", make_sequential(make_head_conv(backbone_->low_level_channels(), low_ch, 1, 0, 1, false, gen),
                                 std::make_shared<BatchNorm2d>(low_ch), std::make_shared<ReLU>()));
  aspp_ = classifier_->register_module("aspp", std::make_shared<ASPP>(backbone_->out_channels(), aspp_ch, rates, gen));
  decoder_ = classifier_->register_module(
      "classifier", make_sequential(make_head_conv(low_ch + aspp_ch, aspp_ch, 3, 1, 1, false, gen),
                                    std::make_shared<BatchNorm2d>(aspp_ch), std::make_shared<ReLU>(),
                                    make_head_conv(aspp_ch, cfg.num_classes, 1, 0, 1, true, gen)));
}

SegmentationOutput DeepLabV3Plus::forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) {
  check_dim(x, 4, "DeepLabv3+", "x");
  for (const auto& t : taps) tap_channels(t);   // validates the names before any work
  auto wants = [&](const char* name) { return std::find(taps.begin(), taps.end(), name) != taps.end(); };

  SegmentationOutput out;
  ResNetFeatures f = backbone_->forward_features(x);
  Tensor low = project_->forward(f.low_level);
  Tensor a = aspp_->forward(f.out);
  Tensor up = upsample_bilinear2d(a, low.size(2), low.size(3), /*align_corners=*/false);
  Tensor logits = decoder_->forward(concat({low, up}, 1));
  out.logits = upsample_bilinear2d(logits, x.size(2), x.size(3), /*align_corners=*/false);
  if (wants("aspp")) out.taps["aspp"] = a;
  if (wants("layer4")) out.taps["layer4"] = f.out;
  if (wants("low_level")) out.taps["low_level"] = f.low_level;
  return out;
}

int64_t DeepLabV3Plus::tap_channels(const std::string& tap) const {
  if (tap == "aspp") return aspp_->out_channels();
  if (tap == "layer4") return backbone_->out_channels();
  if (tap == "low_level") return backbone_->low_level_channels();
  MOESEG_FAIL("DeepLabv3+: unknown tap '", tap, "' (known: aspp, layer4, low_level)");
}

int64_t DeepLabV3Plus::tap_stride(const std::string& tap) const {
  tap_channels(tap);   // validates the name
  return tap == "low_level" ? 4 : cfg_.output_stride;
}

std::shared_ptr<SegmentationModel> make_deeplabv3plus(int backbone_depth, int64_t num_classes, int output_stride,
                                                      double width) {
  DeepLabV3PlusConfig cfg;
  cfg.backbone_depth = backbone_depth;
  cfg.num_classes = num_classes;
  cfg.output_stride = output_stride;
  cfg.width = width;
  return std::make_shared<DeepLabV3Plus>(cfg, default_generator());
}

}  // namespace moeseg
