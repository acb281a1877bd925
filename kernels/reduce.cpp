// Reductions. Strategy: permute the reduced dims to the end, make that contiguous, and reduce
// each row; rows run in parallel. Float sums accumulate in double so that results do not
// depend on the thread count (each row is summed by one thread, in order).
#include "kernels/reduce.h"

#include <algorithm>
#include <numeric>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_ops.h"
#include "kernels/gpu_kernels.h"
#include "kernels/elementwise.h"

namespace moeseg {

namespace {

struct Plan {
  std::vector<int64_t> reduced;   // sorted unique dims
  Shape out_keep;                 // output shape with reduced dims as 1
  Shape out;                      // output shape as returned
  int64_t rows = 1, cols = 1;
};

Plan make_plan(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  Plan p;
  std::vector<bool> red(std::max<int64_t>(a.dim(), 1), dims.empty());   // a 0-d tensor accepts dim 0 / -1
  for (int64_t d : dims) red[wrap_dim(d, a.dim(), op)] = true;
  for (int64_t i = 0; i < a.dim(); ++i) {
    if (red[i]) { p.reduced.push_back(i); p.cols *= a.size(i); p.out_keep.push_back(1); if (keepdim) p.out.push_back(1); }
    else { p.rows *= a.size(i); p.out_keep.push_back(a.size(i)); p.out.push_back(a.size(i)); }
  }
  return p;
}

// a permuted so reduced dims come last, contiguous, viewed as [rows, cols].
Tensor as_rows(const Tensor& a, const Plan& p) {
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < a.dim(); ++i)
    if (!std::binary_search(p.reduced.begin(), p.reduced.end(), i)) perm.push_back(i);
  perm.insert(perm.end(), p.reduced.begin(), p.reduced.end());
  return a.detach().permute(perm).contiguous().view({p.rows, p.cols});
}

struct SumBackward final : autograd::Node {
  Shape input_sizes, keep_sizes;
  double factor = 1.0;   // 1/count for mean
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor e = g.reshape(keep_sizes).expand(input_sizes).contiguous();
    return {factor == 1.0 ? e : scale(e, factor)};
  }
  std::string name() const override { return factor == 1.0 ? "SumBackward" : "MeanBackward"; }
};

Tensor sum_impl(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, double factor, const char* op) {
  check_defined(a, op, "input");
  if (on_cuda(a)) {
    Plan p = make_plan(a, dims, keepdim, op);
    if (p.rows != 1 || a.dtype() != DType::Float32 || factor != 1.0) {
      note_cpu_fallback(op, "reductions over some dims, means or float64");
      return sum_impl(cpu_copy(a), dims, keepdim, factor, op).to(a.device());
    }
    // A full sum: the deterministic two-level reduction of kernels/cuda/reduce.cu.
    const GpuKernels& k = gpu_kernels();
    Tensor x = a.detach().contiguous();
    Tensor out = Tensor::empty(p.out, a.dtype(), a.device());
    Tensor ws = gpu_workspace(k.sum_workspace_floats(x.numel()), a.device());
    k.sum_all(x.data<float>(), x.numel(), out.data<float>(), ws.data<float>());
    if (autograd::needs_grad({&a})) {
      auto n = std::make_shared<SumBackward>();
      n->input_sizes = a.sizes(); n->keep_sizes = p.out_keep; n->factor = factor;
      autograd::connect(n, {&a}, out);
    }
    return out;
  }
  Plan p = make_plan(a, dims, keepdim, op);
  Tensor rows = as_rows(a, p);
  Tensor out = Tensor::empty(p.out, a.dtype(), a.device());
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = rows.data<T>();
    T* o = out.data<T>();
    const int64_t R = p.rows, C = p.cols;
#pragma omp parallel for if (R * C > (1 << 16) && R > 1) schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      double s = 0;
      const T* xr = x + r * C;
      for (int64_t c = 0; c < C; ++c) s += xr[c];
      o[r] = static_cast<T>(s * factor);
    }
  });
  if (autograd::needs_grad({&a})) {
    auto n = std::make_shared<SumBackward>();
    n->input_sizes = a.sizes(); n->keep_sizes = p.out_keep; n->factor = factor;
    autograd::connect(n, {&a}, out);
  }
  return out;
}

// Index of the max (first one on ties) of each row.
template <typename T>
void row_argmax(const T* x, int64_t R, int64_t C, int64_t* idx) {
#pragma omp parallel for if (R * C > (1 << 16)) schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * C;
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (xr[c] > xr[best] || (xr[c] != xr[c] && xr[best] == xr[best])) best = c;   // NaN wins, as in torch
    idx[r] = best;
  }
}

// Scatters g (shape = values shape) into zeros(input_sizes) at int64 `indices` along `dim`.
struct GatherBackward final : autograd::Node {
  Shape input_sizes;
  int64_t dim = 0;
  autograd::SavedTensor indices;    // same shape as the output, with dim kept
  bool keepdim = true;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor idx = indices.get("max/topk");
    Tensor gk = keepdim ? g : g.unsqueeze(dim);
    Tensor gi = Tensor::zeros(input_sizes, g.dtype(), g.device());
    // Move `dim` last on both sides and scatter row by row.
    int64_t nd = static_cast<int64_t>(input_sizes.size());
    std::vector<int64_t> perm;
    for (int64_t i = 0; i < nd; ++i) if (i != dim) perm.push_back(i);
    perm.push_back(dim);
    Tensor gp = gk.permute(perm).contiguous();
    Tensor ip = idx.permute(perm).contiguous();
    Tensor out_p = Tensor::zeros(gi.permute(perm).sizes(), g.dtype(), g.device());
    const int64_t C = input_sizes[dim], K = gp.size(-1), R = gp.numel() / std::max<int64_t>(K, 1);
    dispatch_float(g.dtype(), "max/topk backward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* gv = gp.data<T>();
      const int64_t* iv = ip.data<int64_t>();
      T* o = out_p.data<T>();
      for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < K; ++k) o[r * C + iv[r * K + k]] += gv[r * K + k];
    });
    std::vector<int64_t> inv(nd);
    for (int64_t i = 0; i < nd; ++i) inv[perm[i]] = i;
    return {out_p.permute(inv).contiguous()};
  }
  void release() override { indices.reset(); }
  std::string name() const override { return "GatherBackward"; }
};

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_impl(a, dims, keepdim, 1.0, "sum");
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_not_empty(a, "mean", "input");
  Plan p = make_plan(a, dims, keepdim, "mean");
  return sum_impl(a, dims, keepdim, 1.0 / static_cast<double>(p.cols), "mean");
}

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
  check_not_empty(a, "argmax", "input");
  int64_t d = wrap_dim(dim, a.dim(), "argmax");
  Plan p = make_plan(a, {d}, keepdim, "argmax");
  if (on_cuda(a) && a.dtype() != DType::Float32) {
    note_cpu_fallback("argmax", "float64 or integer tensors");
    return argmax(cpu_copy(a), dim, keepdim).to(a.device());
  }
  Tensor rows = as_rows(a, p);   // the reduced dim last, contiguous (a strided copy on a device)
  Tensor out = Tensor::empty(p.out, DType::Int64, a.device());
  if (on_cuda(a)) {
    // kernels/cuda/reduce.cu: one row per warp, the first maximum wins as on the CPU.
    Tensor maxima = Tensor::empty({p.rows}, DType::Float32, a.device());
    gpu_kernels().rowwise_max_argmax(rows.data<float>(), p.rows, p.cols, maxima.data<float>(), out.data<int64_t>());
    return out;
  }
  dispatch_all(a.dtype(), "argmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    row_argmax<T>(rows.data<T>(), p.rows, p.cols, out.data<int64_t>());
  });
  return out;
}

Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
  check_not_empty(a, "max", "input");
  if (on_cuda(a)) {
    note_cpu_fallback("max");
    return max(cpu_copy(a), dim, keepdim).to(a.device());
  }
  int64_t d = wrap_dim(dim, a.dim(), "max");
  if (a.dim() == 0) return max(a.reshape({1}), 0, false).reshape({});   // torch: max(scalar, 0) is the scalar
  Tensor idx = argmax(a, d, true);
  Plan p = make_plan(a, {d}, keepdim, "max");
  Tensor rows = as_rows(a, p);
  Tensor out = Tensor::empty(p.out, a.dtype(), a.device());
  dispatch_float(a.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = rows.data<T>();
    const int64_t* iv = idx.data<int64_t>();
    T* o = out.data<T>();
    for (int64_t r = 0; r < p.rows; ++r) o[r] = x[r * p.cols + iv[r]];
  });
  if (autograd::needs_grad({&a})) {
    auto n = std::make_shared<GatherBackward>();
    n->input_sizes = a.sizes(); n->dim = d; n->indices = autograd::SavedTensor(idx); n->keepdim = keepdim;
    autograd::connect(n, {&a}, out);
  }
  return out;
}

namespace {
// Gradient of max over all elements: split evenly between the elements equal to the maximum
// (NaN: between the NaNs), as torch.max() does; max(dim) instead picks the first one.
struct MaxAllBackward final : autograd::Node {
  autograd::SavedTensor input;
  double value = 0;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor x = input.get("max").contiguous();
    Tensor gi = Tensor::zeros(x.sizes(), g.dtype(), g.device());
    const double gv = g.item();
    const bool nan = value != value;
    dispatch_float(x.dtype(), "max backward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* xp = x.data<T>();
      const int64_t n = x.numel();
      auto hit = [&](T v) { return nan ? v != v : static_cast<double>(v) == value; };
      int64_t count = 0;
      for (int64_t i = 0; i < n; ++i) count += hit(xp[i]);
      dispatch_float(gi.dtype(), "max backward", [&](auto gtag) {
        using G = typename decltype(gtag)::type;
        G* o = gi.data<G>();
        for (int64_t i = 0; i < n; ++i) o[i] = hit(xp[i]) ? static_cast<G>(gv / count) : G(0);
      });
    });
    return {gi};
  }
  void release() override { input.reset(); }
  std::string name() const override { return "MaxBackward"; }
};
}  // namespace

Tensor max(const Tensor& a) {
  check_not_empty(a, "max", "input");
  if (on_cuda(a)) {
    note_cpu_fallback("max");
    return max(cpu_copy(a)).to(a.device());
  }
  Tensor out;
  {
    NoGradGuard ng;
    out = max(a.detach().reshape({-1}), 0, false);
  }
  if (autograd::needs_grad({&a})) {
    auto n = std::make_shared<MaxAllBackward>();
    n->input = autograd::SavedTensor(a.detach());
    n->value = out.item();
    autograd::connect(n, {&a}, out);
  }
  return out;
}

std::pair<Tensor, Tensor> topk(const Tensor& a, int64_t k, int64_t dim, bool largest) {
  check_not_empty(a, "topk", "input");
  if (on_cuda(a)) {
    const int64_t dl = wrap_dim(dim, a.dim(), "topk");
    MOESEG_CHECK(k >= 1 && k <= a.size(dl), "topk: k=", k, " out of range for dim ", dl, " of ", a.str());
    if (a.dtype() == DType::Float32 && dl == a.dim() - 1) return gpu::topk_last_dim(a, k, largest);
    note_cpu_fallback("topk", "a dim other than the last, or float64");
    auto [values, indices] = topk(cpu_copy(a), k, dim, largest);
    return {values.to(a.device()), indices.to(a.device())};
  }
  int64_t d = wrap_dim(dim, a.dim(), "topk");
  MOESEG_CHECK(k >= 1 && k <= a.size(d), "topk: k=", k, " out of range for dim ", d, " of ", a.str());
  // Work on a permuted copy with `dim` last.
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < a.dim(); ++i) if (i != d) perm.push_back(i);
  perm.push_back(d);
  Tensor x = a.detach().permute(perm).contiguous();
  Shape ps = x.sizes();
  ps.back() = k;
  Tensor vals = Tensor::empty(ps, a.dtype(), a.device());
  Tensor idx = Tensor::empty(ps, DType::Int64, a.device());
  const int64_t C = a.size(d), R = x.numel() / C;
  dispatch_float(a.dtype(), "topk", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xv = x.data<T>();
    T* vv = vals.data<T>();
    int64_t* iv = idx.data<int64_t>();
#pragma omp parallel for if (R * C > (1 << 16)) schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      std::vector<int64_t> order(C);
      std::iota(order.begin(), order.end(), 0);
      const T* xr = xv + r * C;
      // Stable: ties keep the lower index first, so results are deterministic.
      // NaN ranks above every number (as in torch), which also keeps the ordering strict-weak.
      auto greater = [](T x, T y) { return x != x ? y == y : x > y; };
      auto cmp = [&](int64_t i, int64_t j) { return largest ? greater(xr[i], xr[j]) : greater(xr[j], xr[i]); };
      std::stable_sort(order.begin(), order.end(), cmp);
      for (int64_t j = 0; j < k; ++j) { iv[r * k + j] = order[j]; vv[r * k + j] = xr[order[j]]; }
    }
  });
  std::vector<int64_t> inv(a.dim());
  for (int64_t i = 0; i < a.dim(); ++i) inv[perm[i]] = i;
  Tensor values = vals.permute(inv).contiguous();
  Tensor indices = idx.permute(inv).contiguous();
  if (autograd::needs_grad({&a})) {
    auto n = std::make_shared<GatherBackward>();
    n->input_sizes = a.sizes(); n->dim = d; n->indices = autograd::SavedTensor(indices); n->keepdim = true;
    autograd::connect(n, {&a}, values);
  }
  return {values, indices};
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.sizes() == shape) return g;
  int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  MOESEG_CHECK(lead >= 0, "sum_to: cannot reduce ", g.str(), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < g.dim(); ++i) {
    if (i < lead) { dims.push_back(i); continue; }
    int64_t s = shape[i - lead];
    if (s == 1 && g.size(i) != 1) dims.push_back(i);
    else MOESEG_CHECK(s == g.size(i), "sum_to: cannot reduce ", g.str(), " to ", shape_str(shape));
  }
  if (dims.empty()) return g.reshape(shape);
  return sum(g, dims, true).reshape(shape);
}

}  // namespace moeseg
