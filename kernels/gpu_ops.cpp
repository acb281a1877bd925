// CUDA paths of pooling, upsampling, top-k, the FRRU pieces and the MoE dispatch (see
// kernels/gpu_ops.h). Every
// backward is one node holding a closure over what it saved: the kernels do the work, so the
// nodes differ only in which launcher they call.
#include "kernels/gpu_ops.h"

#include <algorithm>
#include <functional>

#include "core/autograd.h"
#include "kernels/gpu_kernels.h"
#include "kernels/moe_dispatch.h"

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

// ---- sparse-MoE dispatch -----------------------------------------------------------------------
namespace {

// What the kernels read of a plan, on device d.
struct MoePlanTensors {
  Tensor order, position, offsets;
};

// The plan's device copies from its cache, made there by explicit host->device copies when the
// cache is empty or on another device (then replaced: one device at a time).
MoePlanTensors plan_on(const MoeRoutingPlan& plan, Device d) {
  MoePlanDeviceCache& c = plan.device_cache;
  std::lock_guard<std::mutex> lock(c.mu);
  if (!c.order.defined() || c.device != d) {
    c.order = Tensor::from_vector(plan.order, {plan.kept()}, d);
    c.position = Tensor::from_vector(plan.position, {plan.tokens * plan.k}, d);
    c.offsets = Tensor::from_vector(plan.offsets, {plan.experts + 1}, d);
    c.device = d;
    c.uploads++;
  }
  return {c.order, c.position, c.offsets};
}

const int64_t* ip(const Tensor& t) { return t.data<int64_t>(); }

}  // namespace

MoeRoutingPlan moe_routing_plan(const Tensor& idx, int64_t num_experts, int64_t capacity) {
  const Device d = idx.device();
  const Tensor ic = idx.contiguous();
  const int64_t T = idx.size(0), k = idx.size(1), pairs = T * k, N = num_experts;
  const GpuKernels& kt = gpu_kernels();
  // One int64 buffer for every output, so one device->host copy brings the plan back:
  // [requested N | counts N | offsets N+1 | invalid 1 | position T*k | order T*k (first P used)].
  const int64_t o_cnt = N, o_off = 2 * N, o_inv = 3 * N + 1, o_pos = 3 * N + 2, o_ord = o_pos + pairs;
  // Zeroed: with drops the tail of `order` is never written, and the copy back reads it
  // (compute-sanitizer's initcheck reported that on the first GPU run).
  Tensor buf = Tensor::zeros({o_ord + pairs}, DType::Int64, d);
  auto part = [&](int64_t off, int64_t n) { return buf.narrow(0, off, n); };
  const size_t ws_elems = kt.moe_routing_plan_workspace_elems(T, i32(k), i32(N));
  Tensor ws = Tensor::empty({std::max<int64_t>(static_cast<int64_t>(ws_elems), 1)}, DType::Int64, d);
  kt.moe_routing_plan(ip(ic), T, i32(k), i32(N), capacity, part(0, N).data<int64_t>(),
                      part(o_cnt, N).data<int64_t>(), part(o_off, N + 1).data<int64_t>(),
                      part(o_ord, pairs).data<int64_t>(), part(o_pos, pairs).data<int64_t>(),
                      part(o_inv, 1).data<int64_t>(), ws.data<int64_t>());
  const std::vector<int64_t> h = buf.to_vector<int64_t>();   // the explicit device->host copy
  if (h[static_cast<size_t>(o_inv)] != 0) {
    // An index outside [0, N): the host plan of a host copy of idx throws naming it.
    (void)::moeseg::moe_routing_plan(idx.to(Device{}), N, capacity > 0 ? std::optional<int64_t>(capacity)
                                                                       : std::nullopt);
    MOESEG_FAIL("moe_routing_plan: ", h[static_cast<size_t>(o_inv)], " expert indices of ", idx.str(),
                " are outside [0, ", N, ")");
  }
  auto slice = [&](int64_t off, int64_t n) {
    return std::vector<int64_t>(h.begin() + off, h.begin() + off + n);
  };
  MoeRoutingPlan plan;
  plan.tokens = T, plan.k = k, plan.experts = N, plan.capacity = capacity > 0 ? capacity : -1;
  plan.requested = slice(0, N);
  plan.counts = slice(o_cnt, N);
  plan.offsets = slice(o_off, N + 1);
  const int64_t P = plan.offsets.back();
  plan.position = slice(o_pos, pairs);
  plan.order = slice(o_ord, P);
  plan.dropped = pairs - P;
  MoePlanDeviceCache& c = plan.device_cache;   // the kernels' copies are already on the device
  c.device = d;
  c.order = part(o_ord, P), c.position = part(o_pos, pairs), c.offsets = part(o_off, N + 1);
  return plan;
}

Tensor moe_permute(const Tensor& x, const MoeRoutingPlan& plan) {
  const Tensor xc = x.detach().contiguous();
  const Device d = x.device();
  const MoePlanTensors p = plan_on(plan, d);
  const int64_t P = plan.kept(), D = x.size(1), T = plan.tokens;
  const int k = i32(plan.k);
  Tensor xp = Tensor::empty({P, D}, DType::Float32, d);
  gpu_kernels().moe_permute_rows(xc.data<float>(), ip(p.order), P, k, D, xp.data<float>());
  if (autograd::needs_grad({&x}))
    record("MoePermute", {&x}, xp, [=](const Tensor& g) {   // dx = the weight-1 combine of dxp
      Tensor gx = Tensor::empty({T, D}, DType::Float32, d);
      gpu_kernels().moe_combine_rows(g.data<float>(), nullptr, ip(p.position), T, k, D, gx.data<float>());
      return std::vector<Tensor>{gx};
    });
  return xp;
}

Tensor moe_unpermute_combine(const Tensor& yp, const MoeRoutingPlan& plan, const Tensor& w) {
  const Tensor yc = yp.detach().contiguous(), wc = w.detach().contiguous();
  const Device d = yp.device();
  const MoePlanTensors p = plan_on(plan, d);
  const int64_t P = plan.kept(), Do = yp.size(1), T = plan.tokens;
  const int k = i32(plan.k);
  Tensor y = Tensor::empty({T, Do}, DType::Float32, d);
  gpu_kernels().moe_combine_rows(yc.data<float>(), wc.data<float>(), ip(p.position), T, k, Do, y.data<float>());
  if (autograd::needs_grad({&yp, &w})) {
    const bool need_yp = yp.requires_grad(), need_w = w.requires_grad();
    record("MoeUnpermuteCombine", {&yp, &w}, y, [=](const Tensor& g) {
      Tensor gyp = need_yp ? Tensor::empty({P, Do}, DType::Float32, d) : Tensor();
      Tensor gw = need_w ? Tensor::empty({T, k}, DType::Float32, d) : Tensor();
      gpu_kernels().moe_combine_backward(g.data<float>(), wc.data<float>(), yc.data<float>(), ip(p.order),
                                         ip(p.position), T, k, P, Do, fp(gyp), fp(gw));
      return std::vector<Tensor>{gyp, gw};
    });
  }
  return y;
}

Tensor moe_grouped_linear(const Tensor& xp, const MoeRoutingPlan& plan, const Tensor& weight, const Tensor& bias) {
  const Tensor xc = xp.detach().contiguous(), wc = weight.detach().contiguous();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  const Device d = xp.device();
  const MoePlanTensors p = plan_on(plan, d);
  const int64_t P = plan.kept(), D = xp.size(1), Do = weight.size(1);
  const int N = i32(plan.experts);
  const GpuKernels& kt = gpu_kernels();
  Tensor yp = Tensor::empty({P, Do}, DType::Float32, d);
  kt.moe_grouped_bias_fill(fp(bc), ip(p.offsets), N, P, Do, yp.data<float>());   // bias undefined: zeros
  kt.moe_grouped_gemm_forward(xc.data<float>(), wc.data<float>(), ip(p.offsets), N, P, D, Do, yp.data<float>());
  if (autograd::needs_grad({&xp, &weight, &bias})) {
    const bool need_x = xp.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    record("MoeGroupedLinear", {&xp, &weight, &bias}, yp, [=](const Tensor& g) {
      const GpuKernels& kk = gpu_kernels();
      Tensor gx = need_x ? Tensor::empty({P, D}, DType::Float32, d) : Tensor();
      Tensor gw = need_w ? Tensor::empty({N, Do, D}, DType::Float32, d) : Tensor();
      Tensor gb = need_b ? Tensor::empty({N, Do}, DType::Float32, d) : Tensor();
      if (need_x)
        kk.moe_grouped_gemm_backward_data(g.data<float>(), wc.data<float>(), ip(p.offsets), N, P, D, Do, fp(gx));
      if (need_w)
        kk.moe_grouped_gemm_backward_weight(g.data<float>(), xc.data<float>(), ip(p.offsets), N, D, Do, fp(gw));
      if (need_b) kk.moe_grouped_bias_backward(g.data<float>(), ip(p.offsets), N, Do, fp(gb));
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return yp;
}

}  // namespace moeseg::gpu
