// The building blocks of the Full-Resolution Residual Network (Pohlen et al. 2017) with the
// PyTorch names of the reference implementation (KASTEL-MobilityLab/mixtures-of-experts,
// models/frr_module.py), so its state_dicts load unchanged:
//   ResidualUnit  ("BasicBlock"): conv1, bn1, conv2, bn2         (3x3 convs, no bias)
//   FRRUnit:                      conv1, bn1, conv2, bn2, convz  (convz: 1x1 y->z, with bias)
//   FRRLayer:                     frr1, nexts.0, nexts.1, ...    (first unit changes channels)
// The reference's gradient checkpointing ("efficient") only saves memory and is left out.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "layers/batch_norm_layer.h"
#include "layers/conv2d_layer.h"
#include "layers/module.h"

namespace moeseg {

// conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> + x -> ReLU, channels unchanged.
class ResidualUnit : public Module {
 public:
  ResidualUnit(int64_t channels, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
};

// One full-resolution residual unit. forward(y, z) with y the pooling stream at 1/factor of the
// residual stream z's resolution:
//   y_out = ReLU(BN(conv(ReLU(BN(conv([y, maxpool_k3_s{factor}_p1(z)])))))
//   z_out = z + upsample_bilinear_align_corners(convz(y_out)) back to z's size.
// Upsampling to z's size equals the reference's scale_factor=factor whenever the reference runs
// (z's size divisible by factor); for other sizes the reference fails on the addition.
class FRRUnit : public Module {
 public:
  FRRUnit(int64_t y_in, int64_t y_out, int64_t z_channels, int64_t factor, Generator& gen);
  std::pair<Tensor, Tensor> forward2(const Tensor& y, const Tensor& z);
  int64_t factor() const { return factor_; }
  std::shared_ptr<Conv2d> conv1, conv2, convz;
  std::shared_ptr<BatchNorm2d> bn1, bn2;

 private:
  int64_t factor_;
};

// A stage of FRRUs at one resolution: [num_units, y_out channels, factor] of the FRRN tables.
class FRRLayer : public Module {
 public:
  FRRLayer(int64_t y_in, int64_t y_out, int64_t num_units, int64_t z_channels, int64_t factor, Generator& gen);
  std::pair<Tensor, Tensor> forward2(const Tensor& y, const Tensor& z);
  std::vector<std::shared_ptr<FRRUnit>> units;   // frr1, nexts.0, nexts.1, ...
};

}  // namespace moeseg
