// Broadcasting binary arithmetic (add, sub, mul, div), scalar add/scale and the in-place
// accumulators used by autograd and optimisers. CPU: contiguous same-shape inputs take a flat
// OpenMP loop; anything else (broadcast, strided) goes through StridedLoop rows.
#include "kernels/elementwise.h"

#include "core/core_ops.h"

#include "core/autograd.h"
#include "core/strided_loop.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_kernels.h"
#include "kernels/reduce.h"

namespace moeseg {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MOESEG_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " cannot be broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

enum class BinOp { Add, Sub, Mul, Div };

template <typename T, BinOp OP>
inline T apply(T x, T y) {
  if constexpr (OP == BinOp::Add) return x + y;
  else if constexpr (OP == BinOp::Sub) return x - y;
  else if constexpr (OP == BinOp::Mul) return x * y;
  else return x / y;
}

constexpr int64_t kParallelGrain = 1 << 15;

template <typename T, BinOp OP>
void binary_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  T* o = out.data<T>();
  const int64_t n = out.numel();
  if (a.sizes() == out.sizes() && b.sizes() == out.sizes() && a.is_contiguous() && b.is_contiguous()) {
    const T* x = a.data<T>();
    const T* y = b.data<T>();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = apply<T, OP>(x[i], y[i]);
    return;
  }
  Tensor ea = a.expand(out.sizes()), eb = b.expand(out.sizes());
  const T* xb = static_cast<const T*>(ea.impl().storage->data);
  const T* yb = static_cast<const T*>(eb.impl().storage->data);
  StridedLoop<3> loop(out.sizes(), {out.strides(), ea.strides(), eb.strides()});
  loop.for_each_row({0, ea.offset(), eb.offset()},
                    [&](const std::array<int64_t, 3>& off, int64_t len, const std::array<int64_t, 3>& st) {
                      T* op = o + off[0];
                      const T* xp = xb + off[1];
                      const T* yp = yb + off[2];
                      for (int64_t i = 0; i < len; ++i) op[i * st[0]] = apply<T, OP>(xp[i * st[1]], yp[i * st[2]]);
                    });
}

template <BinOp OP>
Tensor binary_forward(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op, "a");
  check_defined(b, op, "b");
  check_same_device(a, b, op);
  check_same_dtype(a, b, op);
  if (on_cuda(a)) {
    const bool flat = a.sizes() == b.sizes() && a.is_contiguous() && b.is_contiguous() && a.dtype() == DType::Float32;
    if (flat && (OP == BinOp::Add || OP == BinOp::Mul)) {
      Tensor out = Tensor::empty(a.sizes(), a.dtype(), a.device());
      const GpuKernels& k = gpu_kernels();
      (OP == BinOp::Add ? k.add_forward : k.mul_forward)(a.data<float>(), b.data<float>(), out.data<float>(),
                                                         out.numel());
      return out;
    }
    note_cpu_fallback(op, flat ? nullptr : "broadcast, strided or float64 operands");
    return binary_forward<OP>(a.detach().to(Device{}), b.detach().to(Device{}), op).to(a.device());
  }
  Tensor out = Tensor::empty(broadcast_shapes(a.sizes(), b.sizes(), op), a.dtype(), a.device());
  // Operands are read through detached views so the expand above records no graph.
  Tensor da = a.detach(), db = b.detach();
  dispatch_all(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    binary_kernel<T, OP>(out, da, db);
  });
  return out;
}

struct AddSubBackward final : autograd::Node {
  Shape a_sizes, b_sizes;
  double b_sign = 1.0;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gb = sum_to(g, b_sizes);
    return {sum_to(g, a_sizes), b_sign == 1.0 ? gb : scale(gb, b_sign)};
  }
  std::string name() const override { return b_sign == 1.0 ? "AddBackward" : "SubBackward"; }
};

struct MulBackward final : autograd::Node {
  autograd::SavedTensor a, b;
  bool need_a = true, need_b = true;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor av = a.get("mul"), bv = b.get("mul");
    return {need_a ? sum_to(mul(g, bv), av.sizes()) : Tensor(), need_b ? sum_to(mul(g, av), bv.sizes()) : Tensor()};
  }
  void release() override { a.reset(); b.reset(); }
  std::string name() const override { return "MulBackward"; }
};

struct DivBackward final : autograd::Node {
  autograd::SavedTensor a, b;
  bool need_a = true, need_b = true;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor av = a.get("div"), bv = b.get("div");
    Tensor ga = need_a ? sum_to(div(g, bv), av.sizes()) : Tensor();
    Tensor gb = need_b ? sum_to(neg(div(mul(g, av), mul(bv, bv))), bv.sizes()) : Tensor();
    return {ga, gb};
  }
  void release() override { a.reset(); b.reset(); }
  std::string name() const override { return "DivBackward"; }
};

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<BinOp::Add>(a, b, "add");
  if (autograd::needs_grad({&a, &b})) {
    auto n = std::make_shared<AddSubBackward>();
    n->a_sizes = a.sizes(); n->b_sizes = b.sizes();
    autograd::connect(n, {&a, &b}, out);
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<BinOp::Sub>(a, b, "sub");
  if (autograd::needs_grad({&a, &b})) {
    auto n = std::make_shared<AddSubBackward>();
    n->a_sizes = a.sizes(); n->b_sizes = b.sizes(); n->b_sign = -1.0;
    autograd::connect(n, {&a, &b}, out);
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<BinOp::Mul>(a, b, "mul");
  if (autograd::needs_grad({&a, &b})) {
    auto n = std::make_shared<MulBackward>();
    n->a = autograd::SavedTensor(a.detach()); n->b = autograd::SavedTensor(b.detach());
    n->need_a = a.requires_grad(); n->need_b = b.requires_grad();
    autograd::connect(n, {&a, &b}, out);
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<BinOp::Div>(a, b, "div");
  if (autograd::needs_grad({&a, &b})) {
    auto n = std::make_shared<DivBackward>();
    n->a = autograd::SavedTensor(a.detach()); n->b = autograd::SavedTensor(b.detach());
    n->need_a = a.requires_grad(); n->need_b = b.requires_grad();
    autograd::connect(n, {&a, &b}, out);
  }
  return out;
}

void add_(const Tensor& dst, const Tensor& src, double alpha) {
  check_defined(dst, "add_", "dst");
  check_defined(src, "add_", "src");
  check_same_dtype(dst, src, "add_");
  check_same_device(dst, src, "add_");
  if (on_cuda(dst)) {
    if (alpha == 1.0 && dst.dtype() == DType::Float32 && src.sizes() == dst.sizes() && dst.is_contiguous() &&
        src.is_contiguous()) {
      // In place: each element reads its own dst value before writing it.
      gpu_kernels().add_forward(dst.data<float>(), src.data<float>(), dst.data<float>(), dst.numel());
    } else {
      note_cpu_fallback("add_", "alpha != 1, broadcast, strided or float64 operands");
      Tensor h = host_mirror(dst);
      add_(h, src.detach().to(Device{}), alpha);
      upload_mirror(h, dst);
    }
    dst.bump_version();
    return;
  }
  Tensor s = src.sizes() == dst.sizes() ? src.detach() : src.detach().expand(dst.sizes());
  dispatch_float(dst.dtype(), "add_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = static_cast<T*>(dst.impl().storage->data);
    const T* sp = static_cast<const T*>(s.impl().storage->data);
    const T al = static_cast<T>(alpha);
    StridedLoop<2> loop(dst.sizes(), {dst.strides(), s.strides()});
    loop.for_each_row({dst.offset(), s.offset()},
                      [&](const std::array<int64_t, 2>& off, int64_t len, const std::array<int64_t, 2>& st) {
                        T* dp = d + off[0];
                        const T* xp = sp + off[1];
                        if (st[0] == 1 && st[1] == 1) {
#pragma omp parallel for simd if (len > kParallelGrain) schedule(static)
                          for (int64_t i = 0; i < len; ++i) dp[i] += al * xp[i];
                        } else {
                          for (int64_t i = 0; i < len; ++i) dp[i * st[0]] += al * xp[i * st[1]];
                        }
                      });
  });
  dst.bump_version();
}

void mul_(const Tensor& dst, double s) {
  if (on_cuda(dst)) {
    note_cpu_fallback("mul_");
    Tensor h = host_mirror(dst);
    mul_(h, s);
    upload_mirror(h, dst);
    dst.bump_version();
    return;
  }
  dispatch_float(dst.dtype(), "mul_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* base = static_cast<T*>(dst.impl().storage->data);
    const T sv = static_cast<T>(s);
    for_each_offset(dst.sizes(), dst.strides(), dst.offset(), [&](int64_t o) { base[o] *= sv; });
  });
  dst.bump_version();
}

// The ops core/ needs itself (core/core_ops.h), installed before main. This file defines add,
// which every program that runs ops links, so the installer is always linked in.
namespace {
const bool core_ops_installed = [] {
  CoreOps ops;
  ops.add = [](const Tensor& a, const Tensor& b) { return add(a, b); };
  ops.add_ = [](const Tensor& dst, const Tensor& src) { add_(dst, src); };
  ops.sum_to = [](const Tensor& g, const Shape& shape) { return sum_to(g, shape); };
  set_core_ops(ops);
  return true;
}();
}  // namespace

}  // namespace moeseg
