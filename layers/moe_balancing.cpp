// Balancing losses of a sparse MoE layer; the formulas are in moe_balancing.h.
#include "layers/moe_balancing.h"

#include <cmath>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace moeseg {

namespace {

// One-hot [T, k, N] (as `dtype`, on idx's device) of idx [T, k]; a constant, built on the host.
Tensor one_hot(const Tensor& idx, int64_t n, DType dtype) {
  MOESEG_CHECK(idx.dim() == 2 && idx.dtype() == DType::Int64, "moe balancing: idx must be int64 [T, k], got ",
               idx.str());
  auto v = idx.to_vector<int64_t>();
  std::vector<double> oh(v.size() * static_cast<size_t>(n), 0.0);
  for (size_t p = 0; p < v.size(); ++p) {
    MOESEG_CHECK(v[p] >= 0 && v[p] < n, "moe balancing: expert index ", v[p], " outside [0, ", n, ")");
    oh[p * static_cast<size_t>(n) + static_cast<size_t>(v[p])] = 1.0;
  }
  return Tensor::from_vector<double>(oh, {idx.size(0), idx.size(1), n}).to(dtype).to(idx.device());
}

}  // namespace

Tensor cv_squared(const Tensor& v) {
  MOESEG_CHECK(v.dim() == 1 && v.numel() >= 1, "cv_squared: expects a non-empty vector, got ", v.str());
  const int64_t n = v.numel();
  if (n == 1) return Tensor::zeros({}, v.dtype(), v.device());
  Tensor m = mean(v);
  Tensor var = scale(sum(square(sub(v, m))), 1.0 / static_cast<double>(n - 1));
  return div(var, add_scalar(square(m), 1e-10));
}

Tensor moe_importance(const Tensor& w, const Tensor& idx, int64_t num_experts) {
  return sum(mul(w.unsqueeze(2), one_hot(idx, num_experts, w.dtype())), {0, 1});
}

Tensor moe_hard_load(const Tensor& idx, int64_t num_experts, DType dtype) {
  return sum(one_hot(idx, num_experts, dtype), {0, 1});
}

Tensor moe_smooth_load(const Tensor& clean, const Tensor& noisy, const Tensor& noise_std, const Tensor& idx,
                       int64_t k) {
  const int64_t t = clean.size(0), n = clean.size(1);
  if (k >= n) return Tensor::full({n}, static_cast<double>(t), clean.dtype(), clean.device());
  Tensor top = topk(noisy, k + 1, 1).first;                   // [T, k+1], sorted, differentiable
  Tensor thr_in = top.narrow(1, k, 1);                        // the (k+1)-th largest: threshold while in
  Tensor thr_out = top.narrow(1, k - 1, 1);                   // the k-th largest: threshold while out
  Tensor in = sum(one_hot(idx, n, clean.dtype()), {1});       // [T, N] 1 where chosen
  Tensor out = add_scalar(neg(in), 1.0);
  Tensor thr = add(mul(in, thr_in), mul(out, thr_out));
  return sum(normal_cdf(div(sub(clean, thr), noise_std)), {0});
}

Tensor moe_switch_loss(const Tensor& probs, const Tensor& idx) {
  const int64_t n = probs.size(1);
  Tensor f = scale(moe_hard_load(idx, n, probs.dtype()), 1.0 / static_cast<double>(idx.numel()));
  return scale(sum(mul(f, mean(probs, {0}))), static_cast<double>(n));
}

Tensor moe_entropy_loss(const Tensor& probs) {
  const int64_t n = probs.size(1);
  Tensor pbar = mean(probs, {0});
  return add_scalar(sum(mul(pbar, log(pbar))), std::log(static_cast<double>(n)));
}

}  // namespace moeseg
