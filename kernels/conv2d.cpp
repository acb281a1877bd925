// conv2d: the tensor-level, autograd-aware 2-D convolution (see conv2d.h for the semantics).
// This file validates shapes and options, makes the operands contiguous and calls the raw CPU
// kernels of kernels/conv2d_cpu.h; the backward node calls the matching backward kernels.
// Tested by tests/ops/test_conv2d.cpp (finite differences in float64 + PyTorch fixtures).
#include "kernels/conv2d.h"

#include "core/autograd.h"
#include "core/flop_counter.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_kernels.h"
#include "kernels/conv2d_cpu.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace moeseg {

namespace {

cpu::Conv2dGeometry make_geometry(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  cpu::Conv2dGeometry g{};
  g.n = x.size(0); g.c_in = x.size(1); g.h_in = x.size(2); g.w_in = x.size(3);
  g.c_out = w.size(0); g.kh = w.size(2); g.kw = w.size(3);
  g.stride_h = o.stride_h; g.stride_w = o.stride_w;
  g.pad_h = o.pad_h; g.pad_w = o.pad_w;
  g.dil_h = o.dil_h; g.dil_w = o.dil_w;
  g.groups = o.groups;
  return g;
}

std::string opt_str(const Conv2dOptions& o) {
  return detail::concat_message("stride=(", o.stride_h, ",", o.stride_w, ") pad=(", o.pad_h, ",", o.pad_w,
                                ") dilation=(", o.dil_h, ",", o.dil_w, ") groups=", o.groups);
}

GpuConv2dShape gpu_shape(const cpu::Conv2dGeometry& g) {
  auto i = [](int64_t v) { return static_cast<int>(v); };
  return {i(g.n), i(g.c_in), i(g.h_in), i(g.w_in), i(g.c_out), i(g.kh), i(g.kw), i(g.stride_h), i(g.stride_w),
          i(g.pad_h), i(g.pad_w), i(g.dil_h), i(g.dil_w), i(g.groups)};
}

// MOESEG_CONV=cudnn on a GPU whose table has cuDNN; otherwise our kernels (said once when cuDNN
// was asked for but is not there, e.g. on the emulated device).
bool use_cudnn() {
  if (conv2d_impl() != ConvBackend::Cudnn) return false;
  if (gpu_kernels().cudnn_conv2d_forward) return true;
  static bool said = false;
  if (!said) std::fprintf(stderr, "moeseg: MOESEG_CONV=cudnn but this CUDA device has no cuDNN; conv2d runs our kernels\n");
  said = true;
  return false;
}

// cuDNN scratch as a byte tensor on the device (at least one byte so the pointer is valid).
Tensor cudnn_workspace(const GpuKernels& k, const GpuConv2dShape& s, Device d) {
  const int64_t bytes = static_cast<int64_t>(k.cudnn_conv2d_workspace_bytes(s));
  return Tensor::empty({std::max<int64_t>(bytes, 1)}, DType::UInt8, d);
}

// All argument checks happen here, so that the raw kernels (which throw std::invalid_argument)
// never see a bad geometry and the user gets a moeseg::Error naming conv2d and the shapes.
void validate(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  check_defined(x, "conv2d", "input");
  check_defined(w, "conv2d", "weight");
  check_same_device(x, w, "conv2d");
  check_same_dtype(x, w, "conv2d");
  MOESEG_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, "conv2d: input ", x.str(),
               " must be float32 or float64");
  MOESEG_CHECK(x.dim() == 4, "conv2d: input must be 4-D [N, C_in, H, W], got ", x.str());
  MOESEG_CHECK(w.dim() == 4, "conv2d: weight must be 4-D [C_out, C_in/groups, kH, kW], got ", w.str());
  MOESEG_CHECK(x.numel() > 0, "conv2d: empty input ", x.str());
  MOESEG_CHECK(w.numel() > 0, "conv2d: empty weight ", w.str());
  MOESEG_CHECK(o.groups > 0, "conv2d: groups must be positive, got ", o.groups);
  MOESEG_CHECK(o.stride_h > 0 && o.stride_w > 0 && o.dil_h > 0 && o.dil_w > 0 && o.pad_h >= 0 && o.pad_w >= 0,
               "conv2d: stride and dilation must be positive and padding non-negative, got ", opt_str(o));
  const int64_t c_in = x.size(1), c_out = w.size(0);
  MOESEG_CHECK(c_in % o.groups == 0 && c_out % o.groups == 0, "conv2d: input ", x.str(), " and weight ", w.str(),
               ": channels (", c_in, " in, ", c_out, " out) are not divisible by groups=", o.groups);
  MOESEG_CHECK(w.size(1) == c_in / o.groups, "conv2d: weight ", w.str(), " expects ", w.size(1) * o.groups,
               " input channels (groups=", o.groups, ") but input ", x.str(), " has ", c_in);
  if (b.defined()) {
    check_same_device(x, b, "conv2d");
    check_same_dtype(x, b, "conv2d");
    MOESEG_CHECK(b.dim() == 1 && b.size(0) == c_out, "conv2d: bias ", b.str(), " must be [", c_out,
                 "] for weight ", w.str());
  }
  const int64_t eff_h = o.dil_h * (w.size(2) - 1) + 1, eff_w = o.dil_w * (w.size(3) - 1) + 1;
  MOESEG_CHECK(x.size(2) + 2 * o.pad_h >= eff_h && x.size(3) + 2 * o.pad_w >= eff_w, "conv2d: input ", x.str(),
               " padded by (", o.pad_h, ",", o.pad_w, ") is smaller than the dilated kernel ", eff_h, "x", eff_w,
               " of weight ", w.str(), " (", opt_str(o), ")");
}

struct Conv2dBackward final : autograd::Node {
  cpu::Conv2dGeometry geo{};
  autograd::SavedTensor x, w, y;   // y only with fuse_relu (the detached output)
  bool need_x = false, need_w = false, need_b = false, has_bias = false, fuse_relu = false;

  std::vector<Tensor> backward(const Tensor& grad_out) override {
    Tensor xv = x.get("conv2d"), wv = w.get("conv2d");
    Tensor dy = grad_out.contiguous();
    if (fuse_relu && !on_cuda(dy)) {   // on CUDA the relu_backward kernel below masks
      // relu'(z) with z the pre-activation: y > 0 exactly where z > 0, so the saved output suffices.
      Tensor yv = y.get("conv2d").contiguous();
      Tensor masked = Tensor::empty(dy.sizes(), dy.dtype(), dy.device());
      dispatch_float(dy.dtype(), "conv2d", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* gp = dy.data<T>();
        const T* yp = yv.data<T>();
        T* mp = masked.data<T>();
        const int64_t n = masked.numel();
#pragma omp parallel for simd if (n > (1 << 15)) schedule(static)
        for (int64_t i = 0; i < n; ++i) mp[i] = yp[i] > T(0) ? gp[i] : T(0);
      });
      dy = masked;
    }
    Tensor dx, dw, db;
    if (on_cuda(dy)) {
      // The implicit-GEMM kernels of kernels/cuda/conv2d_implicit_gemm.cu (float32 only: the
      // forward sent float64 to the CPU).
      const GpuKernels& k = gpu_kernels();
      const GpuConv2dShape s = gpu_shape(geo);
      if (fuse_relu) {
        Tensor yv = y.get("conv2d").contiguous();
        Tensor masked = Tensor::empty(dy.sizes(), dy.dtype(), dy.device());
        k.relu_backward(dy.data<float>(), yv.data<float>(), masked.data<float>(), dy.numel());
        dy = masked;
      }
      if (use_cudnn()) {
        Tensor ws = cudnn_workspace(k, s, dy.device());
        if (need_x) {
          dx = Tensor::empty(xv.sizes(), xv.dtype(), xv.device());
          k.cudnn_conv2d_backward_data(s, dy.data<float>(), wv.data<float>(), dx.data<float>(), ws.raw_data(),
                                       static_cast<size_t>(ws.numel()));
        }
        if (need_w || need_b) {
          dw = Tensor::empty(wv.sizes(), wv.dtype(), wv.device());
          db = has_bias ? Tensor::empty({geo.c_out}, wv.dtype(), wv.device()) : Tensor();
          k.cudnn_conv2d_backward_weight(s, xv.data<float>(), dy.data<float>(), dw.data<float>(),
                                         has_bias ? db.data<float>() : nullptr, ws.raw_data(),
                                         static_cast<size_t>(ws.numel()));
          if (!need_w) dw = Tensor();
          if (!need_b) db = Tensor();
        }
        return {dx, dw, db};
      }
      if (need_x) {
        dx = Tensor::empty(xv.sizes(), xv.dtype(), xv.device());
        k.conv2d_backward_data(s, dy.data<float>(), wv.data<float>(), dx.data<float>());
      }
      if (need_w || need_b) {
        Tensor dw_buf = Tensor::empty(wv.sizes(), wv.dtype(), wv.device());
        Tensor db_buf = has_bias ? Tensor::empty({geo.c_out}, wv.dtype(), wv.device()) : Tensor();
        Tensor ws = gpu_workspace(k.conv2d_backward_weight_workspace_floats(s), dy.device());
        k.conv2d_backward_weight(s, xv.data<float>(), dy.data<float>(), dw_buf.data<float>(),
                                 has_bias ? db_buf.data<float>() : nullptr, ws.data<float>());
        if (need_w) dw = dw_buf;
        if (need_b) db = db_buf;
      }
      return {dx, dw, db};
    }
    dispatch_float(dy.dtype(), "conv2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (need_x) {
        dx = Tensor::empty(xv.sizes(), xv.dtype(), xv.device());
        cpu::conv2d_backward_data<T>(geo, dy.data<T>(), wv.data<T>(), dx.data<T>());
      }
      if (need_w || need_b) {
        // The weight kernel produces dw and dbias in one pass over dy; dw is computed even when
        // only the bias needs a gradient (rare: frozen weight, trainable bias).
        Tensor dw_buf = Tensor::empty(wv.sizes(), wv.dtype(), wv.device());
        Tensor db_buf = has_bias ? Tensor::empty({geo.c_out}, wv.dtype(), wv.device()) : Tensor();
        cpu::conv2d_backward_weight<T>(geo, xv.data<T>(), dy.data<T>(), dw_buf.data<T>(),
                                       has_bias ? db_buf.data<T>() : nullptr);
        if (need_w) dw = dw_buf;
        if (need_b) db = db_buf;
      }
    });
    return {dx, dw, db};
  }
  void release() override { x.reset(); w.reset(); y.reset(); }
  std::string name() const override { return "Conv2dBackward"; }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  validate(x, weight, bias, opt);
  if (on_cuda(x) && x.dtype() != DType::Float32) {
    note_cpu_fallback("conv2d", "float64");
    return conv2d(cpu_copy(x), cpu_copy(weight), cpu_copy(bias), opt).to(x.device());
  }
  Tensor xc = x.detach().contiguous();
  Tensor wc = weight.detach().contiguous();
  Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  const cpu::Conv2dGeometry geo = make_geometry(xc, wc, opt);
  Tensor y = Tensor::empty({geo.n, geo.c_out, geo.h_out(), geo.w_out()}, x.dtype(), x.device());
  count_flops(2.0 * static_cast<double>(y.numel()) * static_cast<double>(wc.numel() / std::max<int64_t>(1, wc.size(0))));
  try {
    if (on_cuda(x) && use_cudnn()) {
      const GpuKernels& k = gpu_kernels();
      const GpuConv2dShape s = gpu_shape(geo);
      Tensor ws = cudnn_workspace(k, s, x.device());
      k.cudnn_conv2d_forward(s, xc.data<float>(), wc.data<float>(), bc.defined() ? bc.data<float>() : nullptr,
                             y.data<float>(), ws.raw_data(), static_cast<size_t>(ws.numel()));
      if (opt.fuse_relu) k.relu_forward(y.data<float>(), y.data<float>(), y.numel());
    } else if (on_cuda(x))
      gpu_kernels().conv2d_forward(gpu_shape(geo), xc.data<float>(), wc.data<float>(),
                                   bc.defined() ? bc.data<float>() : nullptr, opt.fuse_relu, y.data<float>());
    else
    dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
      using T = typename decltype(tag)::type;
      cpu::conv2d_forward<T>(geo, xc.data<T>(), wc.data<T>(), bc.defined() ? bc.data<T>() : nullptr, opt.fuse_relu,
                             y.data<T>());
    });
  } catch (const std::invalid_argument& e) {
    // Geometry limits only the raw kernel knows (32-bit BLAS sizes) arrive as std::invalid_argument.
    MOESEG_FAIL("conv2d: ", e.what(), " (input ", x.str(), ", weight ", weight.str(), ")");
  }
  if (autograd::needs_grad({&x, &weight, &bias})) {
    auto n = std::make_shared<Conv2dBackward>();
    n->geo = geo;
    // Contiguous copies (or the inputs themselves when already contiguous) are what the kernels
    // read; saving them keeps the version check on the caller's storage in the common case.
    n->x = autograd::SavedTensor(xc);
    n->w = autograd::SavedTensor(wc);
    n->need_x = x.requires_grad();
    n->need_w = weight.requires_grad();
    n->need_b = bias.defined() && bias.requires_grad();
    n->has_bias = bias.defined();
    n->fuse_relu = opt.fuse_relu;
    if (opt.fuse_relu) n->y = autograd::SavedTensor(y.detach());
    autograd::connect(n, {&x, &weight, &bias}, y);
  }
  return y;
}

}  // namespace moeseg
