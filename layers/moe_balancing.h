// Balancing losses of a sparse MoE layer (layers/sparse_moe.h; reference-systems §5.2, §5.3).
// Composed of differentiable ops (elementwise, reduce, topk, normal_cdf); no op of their own.
//
// T tokens, N experts, k chosen per token. probs [T, N] = softmax of the (noisy, in training)
// router logits; idx [T, k] the chosen experts; w [T, k] the renormalised top-k weights, so the
// gate matrix G [T, N] has G[t, idx[t, s]] = w[t, s] and zeros elsewhere.
//
//   CV²(v)       = var(v) / (mean(v)² + 1e-10), var the unbiased (N - 1) variance as in the
//                  PyTorch port of Shazeer's layer; 0 when N = 1.
//   importance   Imp_i = Σ_t G[t, i];                      loss CV²(Imp)               (Shazeer)
//   load         without noise: Load_i = #{(t, s): idx[t, s] = i} (counts, no gradient);
//                with the learned noise (training): Load_i = Σ_t Φ((c[t,i] − θ[t,i]) / σ[t,i])
//                where c = clean logits, σ = noise std, θ[t,i] = the (k+1)-th largest noisy logit
//                of token t when i is among its top k, else the k-th largest (the probability that
//                i stays in the top k when only its own noise is redrawn); Φ the normal CDF. With
//                k = N every expert is always chosen: Load_i = T.     loss CV²(Load)   (Shazeer)
//   switch       f_i = #{(t, s): idx[t, s] = i} / (T·k) (before the capacity; no gradient),
//                P_i = (1/T) Σ_t probs[t, i];              loss N · Σ_i f_i · P_i
//                (1 when balanced; the lineage code subtracts that constant 1)     (Switch)
//   entropy      p̄ = (1/T) Σ_t probs[t, :];                loss log N − H(p̄) = log N + Σ_i p̄_i log p̄_i
//                (≥ 0, 0 when the mean routing distribution is uniform)
// Tested by tests/layers/test_sparse_moe.cpp (values against numbers computed by hand in numpy).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace moeseg {

Tensor cv_squared(const Tensor& v);                                         // v [N] -> scalar
// Imp [N] from w [T, k] (float) and idx [T, k] (int64).
Tensor moe_importance(const Tensor& w, const Tensor& idx, int64_t num_experts);
// Counts [N] (dtype of `like`), no gradient.
Tensor moe_hard_load(const Tensor& idx, int64_t num_experts, DType dtype);
// Shazeer's smooth load [N]; clean, noisy, noise_std [T, N]; idx [T, k] the top k of `noisy`.
Tensor moe_smooth_load(const Tensor& clean, const Tensor& noisy, const Tensor& noise_std, const Tensor& idx, int64_t k);
Tensor moe_switch_loss(const Tensor& probs, const Tensor& idx);             // scalar
Tensor moe_entropy_loss(const Tensor& probs);                               // scalar

// The four losses of one forward, unweighted, each a scalar tensor.
struct MoeBalancingLosses {
  Tensor importance, load, switch_loss, entropy;
};

}  // namespace moeseg
