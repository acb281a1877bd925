// 2-D convolution (cross-correlation, PyTorch semantics): stride, padding, dilation, groups,
// optional bias and an optional fused ReLU epilogue. Differentiable in x, weight and bias.
// CPU: kernels/conv2d_cpu.cpp (tiled im2col + OpenBLAS sgemm, OpenMP). CUDA: later, same entry.
#pragma once
#include "core/tensor.h"

namespace moeseg {

struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
  bool fuse_relu = false;   // y = relu(conv(x) + b), computed in one pass
  static Conv2dOptions same(int64_t stride, int64_t pad, int64_t dil = 1, int64_t groups = 1) {
    Conv2dOptions o;
    o.stride_h = o.stride_w = stride; o.pad_h = o.pad_w = pad; o.dil_h = o.dil_w = dil; o.groups = groups;
    return o;
  }
};

// x [N, C_in, H, W], weight [C_out, C_in/groups, kH, kW], bias [C_out] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});

}  // namespace moeseg
