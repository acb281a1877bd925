// Sort-based MoE dispatch on the CPU (see kernels/moe_dispatch.h for the maths and layout): the
// routing plan (histogram, capacity, exclusive prefix sum, stable counting sort), the permute
// gather, the weighted un-permute, and the grouped linear with one OpenBLAS GEMM per non-empty
// expert. Every pass writes each output row from one thread (gathers; the experts' GEMMs write
// disjoint slices), so results are bit-identical run to run and with any OpenMP thread count.
// float32 CUDA tensors go to their kernels through kernels/gpu_ops.cpp after the checks here.
#include "kernels/moe_dispatch.h"

#include <cblas.h>

#include <climits>
#include <memory>
#include <sstream>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_ops.h"

namespace moeseg {

namespace {

// Rows below this many elements run on one thread (the OpenMP team costs more than the copy).
constexpr int64_t kParallelElems = 1 << 15;

void check_plan(const MoeRoutingPlan& plan, const char* op) {
  MOESEG_CHECK(plan.experts >= 1 && static_cast<int64_t>(plan.offsets.size()) == plan.experts + 1 &&
                   static_cast<int64_t>(plan.position.size()) == plan.tokens * plan.k &&
                   static_cast<int64_t>(plan.order.size()) == plan.kept(),
               op, ": the routing plan is malformed (", plan.str(), "); make it with moe_routing_plan");
}

void check_float_2d(const Tensor& t, const char* op, const char* arg) {
  check_defined(t, op, arg);
  MOESEG_CHECK(is_floating(t.dtype()), op, ": ", arg, " must be float32 or float64, got ", t.str());
  MOESEG_CHECK(t.dim() == 2, op, ": ", arg, " must be 2-D, got ", t.str());
}

// ---- the passes, on contiguous CPU buffers ---------------------------------------------------
// xp[q] = x[order[q] / k]
template <typename T>
void permute_rows(const T* x, T* xp, const MoeRoutingPlan& plan, int64_t D) {
  const int64_t P = plan.kept(), k = plan.k;
  const int64_t* order = plan.order.data();
#pragma omp parallel for schedule(static) if (P * D > kParallelElems)
  for (int64_t q = 0; q < P; ++q) {
    const T* src = x + (order[q] / k) * D;
    T* dst = xp + q * D;
    for (int64_t j = 0; j < D; ++j) dst[j] = src[j];
  }
}

// y[t] = sum_s scale[t, s] * rows[position[t*k+s]] (scale == nullptr: weight 1; the permute backward)
template <typename T>
void combine_rows(const T* rows, const T* scale, T* y, const MoeRoutingPlan& plan, int64_t D) {
  const int64_t Tn = plan.tokens, k = plan.k;
  const int64_t* pos = plan.position.data();
#pragma omp parallel for schedule(static) if (Tn * k * D > kParallelElems)
  for (int64_t t = 0; t < Tn; ++t) {
    T* dst = y + t * D;
    for (int64_t j = 0; j < D; ++j) dst[j] = T(0);
    for (int64_t s = 0; s < k; ++s) {
      const int64_t q = pos[t * k + s];
      if (q < 0) continue;   // dropped by the capacity: contributes nothing
      const T a = scale ? scale[t * k + s] : T(1);
      const T* src = rows + q * D;
      for (int64_t j = 0; j < D; ++j) dst[j] += a * src[j];
    }
  }
}

inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, const float* A, int lda, const float* B,
                 int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, const double* A, int lda, const double* B,
                 int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

// Experts run in parallel (each on one thread with single-threaded BLAS, DESIGN's threading
// policy); dynamic schedule because slices differ in size.
template <typename T>
void grouped_forward(const T* xp, const T* W, const T* b, T* yp, const std::vector<int64_t>& off, int64_t D,
                     int64_t Do) {
  const int64_t N = static_cast<int64_t>(off.size()) - 1;
#pragma omp parallel for schedule(dynamic) if (off[N] * D * Do > kParallelElems)
  for (int64_t e = 0; e < N; ++e) {
    const int64_t n = off[e + 1] - off[e];
    if (n == 0) continue;   // no tokens: no compute
    T* y = yp + off[e] * Do;
    if (b)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < Do; ++j) y[r * Do + j] = b[e * Do + j];
    if (D == 0) {
      if (!b)
        for (int64_t i = 0; i < n * Do; ++i) y[i] = T(0);
      continue;
    }
    gemm(CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(Do), static_cast<int>(D), xp + off[e] * D,
         static_cast<int>(D), W + e * Do * D, static_cast<int>(D), b ? T(1) : T(0), y, static_cast<int>(Do));
  }
}

template <typename T>
void grouped_backward(const T* dy, const T* xp, const T* W, T* dxp, T* dW, T* db, const std::vector<int64_t>& off,
                      int64_t D, int64_t Do) {
  const int64_t N = static_cast<int64_t>(off.size()) - 1;
#pragma omp parallel for schedule(dynamic) if (off[N] * D * Do > kParallelElems)
  for (int64_t e = 0; e < N; ++e) {
    const int64_t n = off[e + 1] - off[e];
    T* dWe = dW ? dW + e * Do * D : nullptr;
    T* dbe = db ? db + e * Do : nullptr;
    if (n == 0 || D == 0 || Do == 0) {   // no tokens: zero gradient, no compute
      if (dWe)
        for (int64_t i = 0; i < Do * D; ++i) dWe[i] = T(0);
      if (dbe)
        for (int64_t j = 0; j < Do; ++j) dbe[j] = T(0);
      if (dxp && n > 0)
        for (int64_t i = 0; i < n * D; ++i) dxp[off[e] * D + i] = T(0);
      if (n == 0 || Do == 0) continue;
    }
    const T* g = dy + off[e] * Do;
    if (dxp && D > 0)
      gemm(CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(D), static_cast<int>(Do), g,
           static_cast<int>(Do), W + e * Do * D, static_cast<int>(D), T(0), dxp + off[e] * D, static_cast<int>(D));
    if (dWe && D > 0)
      gemm(CblasTrans, CblasNoTrans, static_cast<int>(Do), static_cast<int>(D), static_cast<int>(n), g,
           static_cast<int>(Do), xp + off[e] * D, static_cast<int>(D), T(0), dWe, static_cast<int>(D));
    if (dbe)
      for (int64_t j = 0; j < Do; ++j) {
        double acc = 0;   // float32 bias gradients accumulate in double, in row order
        for (int64_t r = 0; r < n; ++r) acc += static_cast<double>(g[r * Do + j]);
        dbe[j] = static_cast<T>(acc);
      }
  }
}

// ---- autograd nodes --------------------------------------------------------------------------
// The plan is shared by the nodes of one layer call (copied once into a shared_ptr per op).
using PlanPtr = std::shared_ptr<const MoeRoutingPlan>;

struct MoePermuteBackward final : autograd::Node {
  PlanPtr plan;
  int64_t D = 0;
  std::vector<Tensor> backward(const Tensor& grad) override {
    Tensor g = grad.contiguous();
    Tensor dx = Tensor::empty({plan->tokens, D}, g.dtype());
    dispatch_float(g.dtype(), "moe_permute", [&](auto tag) {
      using T = typename decltype(tag)::type;
      combine_rows<T>(g.data<T>(), nullptr, dx.data<T>(), *plan, D);
    });
    return {dx};
  }
  void release() override { plan.reset(); }
  std::string name() const override { return "MoePermuteBackward"; }
};

struct MoeUnpermuteCombineBackward final : autograd::Node {
  PlanPtr plan;
  autograd::SavedTensor yp, w;   // contiguous detached
  bool need_yp = false, need_w = false;
  std::vector<Tensor> backward(const Tensor& grad) override {
    const char* op = "moe_unpermute_combine";
    Tensor g = grad.contiguous(), ypv = yp.get(op), wv = w.get(op);
    const int64_t Do = ypv.size(1), k = plan->k, Tn = plan->tokens;
    Tensor dyp = need_yp ? Tensor::empty(ypv.sizes(), g.dtype()) : Tensor();
    Tensor dw = need_w ? Tensor::empty(wv.sizes(), g.dtype()) : Tensor();
    dispatch_float(g.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* gy = g.data<T>();
      const T* ws = wv.data<T>();
      const T* ys = ypv.data<T>();
      T* gyp = need_yp ? dyp.data<T>() : nullptr;
      T* gw = need_w ? dw.data<T>() : nullptr;
      const int64_t* pos = plan->position.data();
      // Each kept pair owns one row of dyp (a gather from dy): no two pairs write the same row.
#pragma omp parallel for schedule(static) if (Tn * k * Do > kParallelElems)
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t s = 0; s < k; ++s) {
          const int64_t p = t * k + s, q = pos[p];
          if (q < 0) {
            if (gw) gw[p] = T(0);
            continue;
          }
          const T* gt = gy + t * Do;
          if (gyp)
            for (int64_t j = 0; j < Do; ++j) gyp[q * Do + j] = ws[p] * gt[j];
          if (gw) {
            T acc = T(0);
            for (int64_t j = 0; j < Do; ++j) acc += gt[j] * ys[q * Do + j];
            gw[p] = acc;
          }
        }
    });
    return {dyp, dw};
  }
  void release() override { plan.reset(); yp.reset(); w.reset(); }
  std::string name() const override { return "MoeUnpermuteCombineBackward"; }
};

struct MoeGroupedLinearBackward final : autograd::Node {
  std::vector<int64_t> offsets;
  autograd::SavedTensor xp, weight;   // contiguous detached
  bool need_x = false, need_w = false, need_b = false;
  std::vector<Tensor> backward(const Tensor& grad) override {
    const char* op = "moe_grouped_linear";
    Tensor g = grad.contiguous(), xv = xp.get(op), wv = weight.get(op);
    const int64_t N = wv.size(0), Do = wv.size(1), D = wv.size(2);
    Tensor dx = need_x ? Tensor::empty(xv.sizes(), g.dtype()) : Tensor();
    Tensor dW = need_w ? Tensor::empty(wv.sizes(), g.dtype()) : Tensor();
    Tensor db = need_b ? Tensor::empty({N, Do}, g.dtype()) : Tensor();
    dispatch_float(g.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      grouped_backward<T>(g.data<T>(), xv.data<T>(), wv.data<T>(), need_x ? dx.data<T>() : nullptr,
                          need_w ? dW.data<T>() : nullptr, need_b ? db.data<T>() : nullptr, offsets, D, Do);
    });
    return {dx, dW, db};
  }
  void release() override { xp.reset(); weight.reset(); }
  std::string name() const override { return "MoeGroupedLinearBackward"; }
};

}  // namespace

std::string MoeRoutingPlan::str() const {
  std::ostringstream os;
  os << "T=" << tokens << " k=" << k << " N=" << experts << " capacity=";
  if (capacity < 0) os << "none";
  else os << capacity;
  os << " kept=" << kept() << " dropped=" << dropped;
  return os.str();
}

MoeRoutingPlan moe_routing_plan(const Tensor& idx_in, int64_t num_experts, std::optional<int64_t> capacity) {
  const char* op = "moe_routing_plan";
  check_defined(idx_in, op, "idx");
  MOESEG_CHECK(idx_in.dtype() == DType::Int64, op, ": expert indices must be int64, got ", idx_in.str());
  MOESEG_CHECK(idx_in.dim() == 2, op, ": expert indices must be [T, k], got ", idx_in.str());
  MOESEG_CHECK(num_experts >= 1, op, ": number of experts must be >= 1, got ", num_experts);
  const int64_t Tn = idx_in.size(0), k = idx_in.size(1);
  MOESEG_CHECK(k >= 1, op, ": k must be >= 1, got indices ", idx_in.str());
  MOESEG_CHECK(k <= num_experts, op, ": k = ", k, " > N = ", num_experts, " experts (indices ", idx_in.str(), ")");
  MOESEG_CHECK(!capacity || *capacity > 0, op, ": capacity must be > 0, got ", capacity.value_or(0));
  if (on_cuda(idx_in)) {
    MOESEG_CHECK(num_experts < INT_MAX, op, ": ", num_experts, " experts is too many for the CUDA kernels");
    return gpu::moe_routing_plan(idx_in, num_experts, capacity ? *capacity : -1);
  }
  // The plan is host data (the per-expert GEMM loop needs the counts on the host anyway).
  std::vector<int64_t> idx = idx_in.to_vector<int64_t>();
  MoeRoutingPlan plan;
  plan.tokens = Tn, plan.k = k, plan.experts = num_experts, plan.capacity = capacity ? *capacity : -1;
  const int64_t pairs = Tn * k;
  plan.requested.assign(num_experts, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t e = idx[p];
    MOESEG_CHECK(e >= 0 && e < num_experts, op, ": expert index ", e, " at token ", p / k, " slot ", p % k,
                 " is out of range [0, ", num_experts, ")");
    plan.requested[e]++;
  }
  plan.counts = plan.requested;
  if (capacity)
    for (auto& c : plan.counts) c = std::min(c, *capacity);
  plan.offsets.assign(num_experts + 1, 0);
  for (int64_t e = 0; e < num_experts; ++e) plan.offsets[e + 1] = plan.offsets[e] + plan.counts[e];
  plan.order.assign(plan.kept(), 0);
  plan.position.assign(pairs, -1);
  // Counting sort in pair order: within an expert pairs land in token order (then slot order),
  // so the first `capacity` of them are the earliest tokens.
  std::vector<int64_t> next(plan.offsets.begin(), plan.offsets.end() - 1), seen(num_experts, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t e = idx[p];
    if (seen[e]++ >= plan.counts[e]) {
      plan.dropped++;
      continue;
    }
    const int64_t q = next[e]++;
    plan.order[q] = p;
    plan.position[p] = q;
  }
  return plan;
}

Tensor moe_permute(const Tensor& x, const MoeRoutingPlan& plan) {
  const char* op = "moe_permute";
  check_float_2d(x, op, "x");
  check_plan(plan, op);
  MOESEG_CHECK(x.size(0) == plan.tokens, op, ": x ", x.str(), " has ", x.size(0), " tokens, the plan ", plan.tokens,
               " (", plan.str(), ")");
  if (on_cuda(x)) {
    if (x.dtype() == DType::Float32) return gpu::moe_permute(x, plan);
    note_cpu_fallback(op, "float64");
    return moe_permute(cpu_copy(x), plan).to(x.device());
  }
  const int64_t D = x.size(1);
  Tensor xc = x.detach().contiguous();
  Tensor xp = Tensor::empty({plan.kept(), D}, x.dtype());
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    permute_rows<T>(xc.data<T>(), xp.data<T>(), plan, D);
  });
  if (autograd::needs_grad({&x})) {
    auto n = std::make_shared<MoePermuteBackward>();
    n->plan = std::make_shared<const MoeRoutingPlan>(plan);
    n->D = D;
    autograd::connect(n, {&x}, xp);
  }
  return xp;
}

Tensor moe_unpermute_combine(const Tensor& yp, const MoeRoutingPlan& plan, const Tensor& w) {
  const char* op = "moe_unpermute_combine";
  check_float_2d(yp, op, "yp");
  check_float_2d(w, op, "w");
  check_same_dtype(yp, w, op);
  check_same_device(yp, w, op);
  check_plan(plan, op);
  MOESEG_CHECK(yp.size(0) == plan.kept(), op, ": yp ", yp.str(), " must have one row per kept pair (",
               plan.kept(), "; ", plan.str(), ")");
  MOESEG_CHECK(w.size(0) == plan.tokens && w.size(1) == plan.k, op, ": weights ", w.str(), " must be [",
               plan.tokens, ", ", plan.k, "] (", plan.str(), ")");
  if (on_cuda(yp)) {
    if (yp.dtype() == DType::Float32) return gpu::moe_unpermute_combine(yp, plan, w);
    note_cpu_fallback(op, "float64");
    return moe_unpermute_combine(cpu_copy(yp), plan, cpu_copy(w)).to(yp.device());
  }
  const int64_t Do = yp.size(1);
  Tensor yc = yp.detach().contiguous(), wc = w.detach().contiguous();
  Tensor y = Tensor::empty({plan.tokens, Do}, yp.dtype());
  dispatch_float(yp.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    combine_rows<T>(yc.data<T>(), wc.data<T>(), y.data<T>(), plan, Do);
  });
  if (autograd::needs_grad({&yp, &w})) {
    auto n = std::make_shared<MoeUnpermuteCombineBackward>();
    n->plan = std::make_shared<const MoeRoutingPlan>(plan);
    n->yp = autograd::SavedTensor(yc);
    n->w = autograd::SavedTensor(wc);
    n->need_yp = yp.requires_grad();
    n->need_w = w.requires_grad();
    autograd::connect(n, {&yp, &w}, y);
  }
  return y;
}

Tensor moe_grouped_linear(const Tensor& xp, const MoeRoutingPlan& plan, const Tensor& weight, const Tensor& bias) {
  const char* op = "moe_grouped_linear";
  check_float_2d(xp, op, "xp");
  check_defined(weight, op, "weight");
  check_same_dtype(xp, weight, op);
  check_same_device(xp, weight, op);
  check_plan(plan, op);
  MOESEG_CHECK(weight.dim() == 3 && weight.size(0) == plan.experts && weight.size(2) == xp.size(1), op,
               ": weight ", weight.str(), " must be [N = ", plan.experts, ", D_out, D = ", xp.size(1), "] for xp ",
               xp.str());
  MOESEG_CHECK(xp.size(0) == plan.kept(), op, ": xp ", xp.str(), " must have one row per kept pair (", plan.kept(),
               "; ", plan.str(), ")");
  const int64_t N = plan.experts, Do = weight.size(1), D = xp.size(1);
  if (bias.defined()) {
    check_same_dtype(xp, bias, op);
    check_same_device(xp, bias, op);
    MOESEG_CHECK(bias.dim() == 2 && bias.size(0) == N && bias.size(1) == Do, op, ": bias ", bias.str(), " must be [",
                 N, ", ", Do, "]");
  }
  MOESEG_CHECK(xp.size(0) < INT_MAX && D < INT_MAX && Do < INT_MAX, op, ": too large for BLAS int: xp ", xp.str(),
               ", weight ", weight.str());
  if (on_cuda(xp)) {
    MOESEG_CHECK(N < INT_MAX, op, ": ", N, " experts is too many for the CUDA kernels");
    if (xp.dtype() == DType::Float32) return gpu::moe_grouped_linear(xp, plan, weight, bias);
    note_cpu_fallback(op, "float64");
    return moe_grouped_linear(cpu_copy(xp), plan, cpu_copy(weight), cpu_copy(bias)).to(xp.device());
  }
  Tensor xc = xp.detach().contiguous(), wc = weight.detach().contiguous();
  Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor yp = Tensor::empty({plan.kept(), Do}, xp.dtype());
  dispatch_float(xp.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    grouped_forward<T>(xc.data<T>(), wc.data<T>(), bc.defined() ? bc.data<T>() : nullptr, yp.data<T>(), plan.offsets,
                       D, Do);
  });
  if (autograd::needs_grad({&xp, &weight, &bias})) {
    auto n = std::make_shared<MoeGroupedLinearBackward>();
    n->offsets = plan.offsets;
    n->xp = autograd::SavedTensor(xc);
    n->weight = autograd::SavedTensor(wc);
    n->need_x = xp.requires_grad();
    n->need_w = weight.requires_grad();
    n->need_b = bias.defined() && bias.requires_grad();
    autograd::connect(n, {&xp, &weight, &bias}, yp);
  }
  return yp;
}

}  // namespace moeseg
