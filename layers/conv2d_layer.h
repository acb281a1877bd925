// Conv2d layer: weight [out, in/groups, k, k] and optional bias [out] around the conv2d op,
// initialised as PyTorch does (kaiming_uniform with a = sqrt(5), which reduces to
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the same bound for the bias), drawn with Philox from the
// given generator. Parameter names "weight" and "bias" as in torch.nn.Conv2d.
#pragma once
#include "core/rng.h"
#include "kernels/conv2d.h"
#include "layers/module.h"

namespace moeseg {

struct Conv2dConfig {
  int64_t in_channels = 1, out_channels = 1, kernel = 1;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         int64_t dilation = 1, int64_t groups = 1, bool bias = true, Generator& gen = default_generator());
  explicit Conv2d(const Conv2dConfig& cfg, Generator& gen = default_generator());

  Tensor forward(const Tensor& x) override;
  // Fuses a ReLU into the convolution's epilogue (same result as ReLU after the conv).
  void set_fuse_relu(bool on) { opt_.fuse_relu = on; }
  // Redraws weight and bias with PyTorch's default initialisation.
  void reset_parameters(Generator& gen = default_generator());

  const Conv2dConfig& config() const { return cfg_; }
  Tensor weight, bias;   // bias undefined when cfg.bias is false

 private:
  Conv2dConfig cfg_;
  Conv2dOptions opt_;
};

}  // namespace moeseg
