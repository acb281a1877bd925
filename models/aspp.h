// Atrous Spatial Pyramid Pooling (DeepLabv3/v3+), with the parameter names of the reference
// implementation (VainF/DeepLabV3Plus-Pytorch, used by KASTEL-MobilityLab/mixtures-of-experts):
//   convs.0    1x1 conv + BN + ReLU               (Sequential: 0 conv, 1 bn, 2 relu)
//   convs.1-3  3x3 atrous conv (rate r) + BN + ReLU  (padding = dilation = r)
//   convs.4    image pooling: 0 global avg pool, 1 1x1 conv, 2 BN, 3 ReLU, then bilinear
//              (align_corners=False) back to the input size
//   project    concat(5 branches) -> 1x1 conv + BN + ReLU + Dropout(0.1)
// Every conv has no bias. Used by models/deeplabv3plus.h; tested through tests/models/test_deeplab.cpp.
#pragma once
#include <array>
#include <memory>

#include "core/rng.h"
#include "layers/conv2d_layer.h"
#include "layers/module.h"
#include "layers/sequential.h"

namespace moeseg {

class ASPP : public Module {
 public:
  // out_channels is 256 in the paper; a width-scaled expert passes fewer.
  ASPP(int64_t in_channels, int64_t out_channels, std::array<int64_t, 3> rates, Generator& gen = default_generator(),
       double dropout = 0.1);
  Tensor forward(const Tensor& x) override;
  int64_t out_channels() const { return out_channels_; }
  const std::array<int64_t, 3>& rates() const { return rates_; }

 private:
  std::shared_ptr<Module> convs_;          // the five branches, children "0".."4" (a ModuleList)
  std::shared_ptr<Sequential> project_;
  int64_t out_channels_;
  std::array<int64_t, 3> rates_;
};

// Head convs of DeepLab are initialised with kaiming_normal_(w) (fan_in, gain sqrt(2)):
// std = sqrt(2 / (in/groups · k · k)). Shared by the ASPP and the decoder.
std::shared_ptr<Conv2d> make_head_conv(int64_t in, int64_t out, int64_t k, int64_t padding, int64_t dilation,
                                             bool bias, Generator& gen);

}  // namespace moeseg
