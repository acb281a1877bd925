// FRRU pieces (see kernels/frru.h): argument checks naming the op and shapes, then the
// composition of the ops they fuse on the CPU (and for float64 on a device); float32 CUDA tensors
// run the fused kernels of kernels/cuda/frru.cu (kernels/gpu_ops.h).
#include "kernels/frru.h"

#include "kernels/conv2d.h"
#include "kernels/device_fallback.h"
#include "kernels/elementwise.h"
#include "kernels/gpu_ops.h"
#include "kernels/pooling.h"
#include "kernels/shape_ops.h"
#include "kernels/upsample.h"

namespace moeseg {

namespace {

void check_streams(const Tensor& y, const Tensor& z, const char* op) {
  check_defined(y, op, "y");
  check_defined(z, op, "z");
  check_same_device(y, z, op);
  check_same_dtype(y, z, op);
  MOESEG_CHECK(y.dim() == 4 && z.dim() == 4 && y.size(0) == z.size(0), op, ": y ", y.str(), " and z ", z.str(),
               " must be 4-D [N, C, H, W] with the same batch");
}

}  // namespace

Tensor frru_pool_concat(const Tensor& y, const Tensor& z, int64_t factor) {
  const char* op = "frru_pool_concat";
  check_streams(y, z, op);
  MOESEG_CHECK(factor >= 1, op, ": factor must be >= 1, got ", factor);
  const int64_t h = (z.size(2) + 2 - 3) / factor + 1, w = (z.size(3) + 2 - 3) / factor + 1;   // k3, pad 1
  MOESEG_CHECK(h == y.size(2) && w == y.size(3), op, " (factor ", factor, "): pooling stream ", y.str(),
               " and the residual stream ", z.str(), " pooled to ", h, "x", w, " differ in size");
  if (on_cuda(y) && y.dtype() == DType::Float32) return gpu::frru_pool_concat(y, z, factor);   // one fused kernel
  return concat({y, max_pool2d(z, 3, factor, 1)}, 1);
}

Tensor frru_conv1x1_upsample_add(const Tensor& y, const Tensor& z, const Tensor& weight, const Tensor& bias) {
  const char* op = "frru_conv1x1_upsample_add";
  check_streams(y, z, op);
  check_defined(weight, op, "weight");
  MOESEG_CHECK(weight.dim() == 4 && weight.size(0) == z.size(1) && weight.size(1) == y.size(1) &&
                   weight.size(2) == 1 && weight.size(3) == 1,
               op, ": weight ", weight.str(), " must be [", z.size(1), ", ", y.size(1), ", 1, 1] for y ", y.str(),
               " and z ", z.str());
  MOESEG_CHECK(y.size(2) <= z.size(2) && y.size(3) <= z.size(3), op, ": y ", y.str(),
               " must not be larger than z ", z.str());
  if (bias.defined()) {
    check_same_device(y, bias, op);
    MOESEG_CHECK(bias.dim() == 1 && bias.size(0) == z.size(1), op, ": bias ", bias.str(), " must be [", z.size(1), "]");
  }
  if (on_cuda(y) && y.dtype() == DType::Float32) return gpu::frru_conv1x1_upsample_add(y, z, weight, bias);
  Tensor r = conv2d(y, weight, bias, Conv2dOptions{});
  return add(z, upsample_bilinear2d(r, z.size(2), z.size(3), /*align_corners=*/true));
}

}  // namespace moeseg
