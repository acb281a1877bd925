// Conv2d layer: parameters, PyTorch default initialisation, forward through kernels/conv2d.h.
#include "layers/conv2d_layer.h"

#include <cmath>

#include "core/autograd.h"

namespace moeseg {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
               int64_t dilation, int64_t groups, bool bias, Generator& gen)
    : Conv2d(Conv2dConfig{in_channels, out_channels, kernel, stride, padding, dilation, groups, bias}, gen) {}

Conv2d::Conv2d(const Conv2dConfig& cfg, Generator& gen) : Module("Conv2d"), cfg_(cfg) {
  MOESEG_CHECK(cfg.in_channels > 0 && cfg.out_channels > 0 && cfg.kernel > 0 && cfg.stride > 0 &&
                   cfg.padding >= 0 && cfg.dilation > 0 && cfg.groups > 0,
               "Conv2d: invalid configuration in=", cfg.in_channels, " out=", cfg.out_channels, " kernel=", cfg.kernel,
               " stride=", cfg.stride, " padding=", cfg.padding, " dilation=", cfg.dilation, " groups=", cfg.groups);
  MOESEG_CHECK(cfg.in_channels % cfg.groups == 0 && cfg.out_channels % cfg.groups == 0, "Conv2d: in=",
               cfg.in_channels, " and out=", cfg.out_channels, " must both be divisible by groups=", cfg.groups);
  opt_ = Conv2dOptions::same(cfg.stride, cfg.padding, cfg.dilation, cfg.groups);
  weight = register_parameter(
      "weight", Tensor::empty({cfg.out_channels, cfg.in_channels / cfg.groups, cfg.kernel, cfg.kernel}));
  if (cfg.bias) bias = register_parameter("bias", Tensor::empty({cfg.out_channels}));
  reset_parameters(gen);
}

void Conv2d::reset_parameters(Generator& gen) {
  // kaiming_uniform_(a=sqrt(5)): gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain * sqrt(3 / fan_in)
  // = 1 / sqrt(fan_in). PyTorch uses the same bound for the bias.
  const double fan_in = static_cast<double>(cfg_.in_channels / cfg_.groups * cfg_.kernel * cfg_.kernel);
  const double bound = 1.0 / std::sqrt(fan_in);
  NoGradGuard ng;
  uniform_(weight, -bound, bound, gen);
  if (bias.defined()) uniform_(bias, -bound, bound, gen);
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, opt_); }

}  // namespace moeseg
