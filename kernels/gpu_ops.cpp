// CUDA paths of pooling, upsampling, top-k and the FRRU pieces (see kernels/gpu_ops.h). Every
// backward is one node holding a closure over what it saved: the kernels do the work, so the
// nodes differ only in which launcher they call.
#include "kernels/gpu_ops.h"

#include <algorithm>
#include <functional>

#include "core/autograd.h"
#include "kernels/gpu_kernels.h"

namespace moeseg::gpu {

namespace {

// A backward node for one CUDA op: `fn` maps the upstream gradient to the inputs' gradients.
struct KernelBackward final : autograd::Node {
  std::string op;
  std::function<std::vector<Tensor>(const Tensor& grad)> fn;
  std::vector<Tensor> backward(const Tensor& g) override { return fn(g.contiguous()); }
  void release() override { fn = nullptr; }
  std::string name() const override { return op + "Backward"; }
};

void record(const char* op, std::vector<const Tensor*> inputs, Tensor& out,
            std::function<std::vector<Tensor>(const Tensor&)> fn) {
  auto n = std::make_shared<KernelBackward>();
  n->op = op;
  n->fn = std::move(fn);
  std::vector<Tensor> in;
  for (const Tensor* t : inputs) in.push_back(t->defined() ? *t : Tensor());
  autograd::connect(n, in, out);
}

int i32(int64_t v) { return static_cast<int>(v); }
float* fp(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding, int64_t ho, int64_t wo) {
  const Tensor xc = x.detach().contiguous();
  const Device d = x.device();
  const int N = i32(x.size(0)), C = i32(x.size(1)), H = i32(x.size(2)), W = i32(x.size(3));
  const bool grad = autograd::needs_grad({&x});
  Tensor y = Tensor::empty({N, C, ho, wo}, DType::Float32, d);
  Tensor idx = grad ? Tensor::empty({N, C, ho, wo}, DType::Int64, d) : Tensor();
  gpu_kernels().max_pool2d_forward(xc.data<float>(), y.data<float>(), grad ? idx.data<int64_t>() : nullptr, N, C, H,
                                   W, i32(kernel), i32(stride), i32(padding));
  if (grad)
    record("MaxPool2d", {&x}, y, [=](const Tensor& g) {
      Tensor gx = Tensor::empty({N, C, H, W}, DType::Float32, d);
      gpu_kernels().max_pool2d_backward(g.data<float>(), idx.data<int64_t>(), gx.data<float>(), N, C, H, W,
                                        i32(kernel), i32(stride), i32(padding));
      return std::vector<Tensor>{gx};
    });
  return y;
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding, int64_t ho, int64_t wo) {
  const Tensor xc = x.detach().contiguous();
  const Device d = x.device();
  const int N = i32(x.size(0)), C = i32(x.size(1)), H = i32(x.size(2)), W = i32(x.size(3));
  Tensor y = Tensor::empty({N, C, ho, wo}, DType::Float32, d);
  gpu_kernels().avg_pool2d_forward(xc.data<float>(), y.data<float>(), N, C, H, W, i32(kernel), i32(stride),
                                   i32(padding));
  if (autograd::needs_grad({&x}))
    record("AvgPool2d", {&x}, y, [=](const Tensor& g) {
      Tensor gx = Tensor::empty({N, C, H, W}, DType::Float32, d);
      gpu_kernels().avg_pool2d_backward(g.data<float>(), gx.data<float>(), N, C, H, W, i32(kernel), i32(stride),
                                        i32(padding));
      return std::vector<Tensor>{gx};
    });
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  const Tensor xc = x.detach().contiguous();
  const Device d = x.device();
  const int N = i32(x.size(0)), C = i32(x.size(1)), H = i32(x.size(2)), W = i32(x.size(3));
  Tensor y = Tensor::empty({N, C, out_h, out_w}, DType::Float32, d);
  gpu_kernels().adaptive_avg_pool2d_forward(xc.data<float>(), y.data<float>(), N, C, H, W, i32(out_h), i32(out_w));
  if (autograd::needs_grad({&x}))
    record("AdaptiveAvgPool2d", {&x}, y, [=](const Tensor& g) {
      Tensor gx = Tensor::empty({N, C, H, W}, DType::Float32, d);
      gpu_kernels().adaptive_avg_pool2d_backward(g.data<float>(), gx.data<float>(), N, C, H, W, i32(out_h),
                                                 i32(out_w));
      return std::vector<Tensor>{gx};
    });
  return y;
}

Tensor upsample_bilinear2d(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  const Tensor xc = x.detach().contiguous();
  const Device d = x.device();
  const int N = i32(x.size(0)), C = i32(x.size(1)), H = i32(x.size(2)), W = i32(x.size(3));
  Tensor y = Tensor::empty({N, C, out_h, out_w}, DType::Float32, d);
  gpu_kernels().upsample_bilinear2d_forward(xc.data<float>(), y.data<float>(), N, C, H, W, i32(out_h), i32(out_w),
                                            align_corners);
  if (autograd::needs_grad({&x}))
    record("UpsampleBilinear2d", {&x}, y, [=](const Tensor& g) {
      Tensor gx = Tensor::empty({N, C, H, W}, DType::Float32, d);
      gpu_kernels().upsample_bilinear2d_backward(g.data<float>(), gx.data<float>(), N, C, H, W, i32(out_h),
                                                 i32(out_w), align_corners);
      return std::vector<Tensor>{gx};
    });
  return y;
}

Tensor upsample_nearest2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  const Tensor xc = x.detach().contiguous();
  const Device d = x.device();
  const int N = i32(x.size(0)), C = i32(x.size(1)), H = i32(x.size(2)), W = i32(x.size(3));
  Tensor y = Tensor::empty({N, C, out_h, out_w}, DType::Float32, d);
  gpu_kernels().upsample_nearest2d_forward(xc.data<float>(), y.data<float>(), N, C, H, W, i32(out_h), i32(out_w));
  if (autograd::needs_grad({&x}))
    record("UpsampleNearest2d", {&x}, y, [=](const Tensor& g) {
      Tensor gx = Tensor::empty({N, C, H, W}, DType::Float32, d);
      gpu_kernels().upsample_nearest2d_backward(g.data<float>(), gx.data<float>(), N, C, H, W, i32(out_h),
                                                i32(out_w));
      return std::vector<Tensor>{gx};
    });
  return y;
}

std::pair<Tensor, Tensor> topk_last_dim(const Tensor& x, int64_t k, bool largest) {
  const Tensor xc = x.detach().contiguous();
  const Device d = x.device();
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  Shape vs = x.sizes();
  vs.back() = k;
  Tensor values = Tensor::empty(vs, DType::Float32, d), indices = Tensor::empty(vs, DType::Int64, d);
  gpu_kernels().topk_forward(xc.data<float>(), rows, cols, i32(k), largest, values.data<float>(),
                             indices.data<int64_t>());
  if (autograd::needs_grad({&x})) {
    const Shape xs = x.sizes();
    record("Topk", {&x}, values, [=](const Tensor& g) {
      Tensor gx = Tensor::empty(xs, DType::Float32, d);
      gpu_kernels().topk_backward(g.data<float>(), indices.data<int64_t>(), rows, cols, i32(k), gx.data<float>());
      return std::vector<Tensor>{gx};
    });
  }
  return {values, indices};
}

Tensor frru_pool_concat(const Tensor& y, const Tensor& z, int64_t factor) {
  const Tensor yc = y.detach().contiguous(), zc = z.detach().contiguous();
  const Device d = y.device();
  const int N = i32(y.size(0)), Cy = i32(y.size(1)), h = i32(y.size(2)), w = i32(y.size(3));
  const int Cz = i32(z.size(1)), H = i32(z.size(2)), W = i32(z.size(3)), f = i32(factor);
  const bool grad = autograd::needs_grad({&y, &z});
  Tensor out = Tensor::empty({N, Cy + Cz, h, w}, DType::Float32, d);
  Tensor idx = grad ? Tensor::empty({N, Cz, h, w}, DType::Int64, d) : Tensor();
  gpu_kernels().frru_pool_concat_forward(yc.data<float>(), zc.data<float>(), out.data<float>(),
                                         grad ? idx.data<int64_t>() : nullptr, N, Cy, h, w, Cz, H, W, f);
  if (grad) {
    const bool need_y = y.requires_grad(), need_z = z.requires_grad();
    record("FrruPoolConcat", {&y, &z}, out, [=](const Tensor& g) {
      Tensor gy = need_y ? Tensor::empty({N, Cy, h, w}, DType::Float32, d) : Tensor();
      Tensor gz = Tensor::empty({N, Cz, H, W}, DType::Float32, d);
      gpu_kernels().frru_pool_concat_backward(g.data<float>(), idx.data<int64_t>(), fp(gy), gz.data<float>(), N, Cy,
                                              h, w, Cz, H, W, f);
      return std::vector<Tensor>{gy, need_z ? gz : Tensor()};
    });
  }
  return out;
}

Tensor frru_conv1x1_upsample_add(const Tensor& y, const Tensor& z, const Tensor& weight, const Tensor& bias) {
  const Tensor yc = y.detach().contiguous(), zc = z.detach().contiguous(), wc = weight.detach().contiguous();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  const Device d = y.device();
  const int N = i32(y.size(0)), Cy = i32(y.size(1)), h = i32(y.size(2)), w = i32(y.size(3));
  const int Cz = i32(z.size(1)), H = i32(z.size(2)), W = i32(z.size(3));
  const GpuKernels& k = gpu_kernels();
  Tensor out = Tensor::empty({N, Cz, H, W}, DType::Float32, d);
  Tensor ws = gpu_workspace(k.frru_conv1x1_upsample_add_forward_workspace_floats(N, Cz, h, w), d);
  k.frru_conv1x1_upsample_add_forward(yc.data<float>(), wc.data<float>(), fp(bc), zc.data<float>(), out.data<float>(),
                                      ws.data<float>(), N, Cy, h, w, Cz, H, W);
  if (autograd::needs_grad({&y, &z, &weight, &bias})) {
    const bool need_y = y.requires_grad(), need_z = z.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    const Shape ws_shape = weight.sizes();
    record("FrruConv1x1UpsampleAdd", {&y, &z, &weight, &bias}, out, [=](const Tensor& g) {
      const GpuKernels& kk = gpu_kernels();
      Tensor gy = need_y ? Tensor::empty({N, Cy, h, w}, DType::Float32, d) : Tensor();
      Tensor gw = need_w ? Tensor::empty(ws_shape, DType::Float32, d) : Tensor();
      Tensor gb = need_b ? Tensor::empty({Cz}, DType::Float32, d) : Tensor();
      Tensor scratch_b = gpu_workspace(kk.frru_conv1x1_upsample_add_backward_workspace_floats(N, Cy, h, w, Cz), d);
      kk.frru_conv1x1_upsample_add_backward(g.data<float>(), yc.data<float>(), wc.data<float>(), fp(gy), fp(gw),
                                            fp(gb), scratch_b.data<float>(), N, Cy, h, w, Cz, H, W);
      return std::vector<Tensor>{gy, need_z ? g : Tensor(), gw, gb};   // d z_out / d z_in is the identity
    });
  }
  return out;
}

}  // namespace moeseg::gpu
