// The gate of a sparse MoE layer between the router and the dispatch (layers/sparse_moe.h;
// reference-systems §5.2 "Top-k + capacity", "Output weights"; §5.1 "hard constraints"):
// top-k selection with masked experts, the hard-constraint mask, the greedy re-assignment of the
// pairs over an expert's capacity, and the output weights (renormalised or straight-through).
// The integer work runs on the host on [T, k] indices; CUDA tensors are copied to the host and
// the result back explicitly (host code never reads device memory).
// Tested by tests/layers/test_moe_gate_options.cpp.
//
// T tokens, N experts, k slots per token, pair p = t·k + s. scores [T, N] are the selection
// scores (softmax of the noisy logits in training), probs [T, N] the gate probabilities the
// weights are taken from (the same tensor except with StdNormalized noise, where they are the
// clean softmax).
//
//   selection     idx[t, :] = the k largest scores[t, i] over the experts i that are not masked,
//                 ties to the lower index (kernels/reduce.h topk).
//   hard mask     our reading of the IJCNN paper's hard constraints ("weights of certain experts
//                 allowed to become zero"; the paper body is not available): with a share τ in
//                 (1/N, 1], importance Imp_i = Σ_t probs[t, i], share_i = Imp_i / Σ_j Imp_j; every
//                 expert with share_i > τ is masked (its scores count as zero: it is not selected
//                 and receives no re-assigned pair) for this forward, so its tokens go to their next
//                 best experts. One pass, not iterated. When fewer than k experts would remain, the
//                 masked experts with the smallest share are unmasked first (ties: lower index)
//                 until k remain. Training only; the layer applies no constraint at eval.
//   overflow      with a capacity C (training): the pairs of each expert in pair order, the first C
//                 kept (the rule of moe_routing_plan, kernels/moe_dispatch.h), the others overflow.
//     Drop        the overflow pairs are dropped by the plan.
//     Reassign    up to `rounds` rounds. At the start of a round each expert has room C − kept;
//                 every overflow pair proposes the best-scored expert of its token (scores as
//                 above, ties to the lower index) that has room at the start of the round, is not
//                 masked and is not already one of the token's k experts. The proposals are
//                 accepted in pair order while the expert still has room (and, for k > 1, is still
//                 not among the token's experts); an accepted pair is kept from then on, a refused
//                 one stays overflow and proposes again in the next round. Rounds stop early when
//                 nothing overflows or nothing can be proposed. Overflow left after the rounds
//                 stays at its expert and is dropped by the plan as with Drop (an expert that ever
//                 overflowed has its C pairs before it and never takes a pair, so the plan keeps
//                 exactly the accepted pairs). rounds = 0 is Drop.
//                 (The lineage runs ≤ 25 such rounds, keeps the best-scored tokens of an expert
//                 rather than the first ones, and places all that is left in its last round
//                 regardless of the capacity; we keep the plan's token-order rule and drop.)
//   weights       v[t, s] = probs[t, idx[t, s]] after re-assignment (a re-assigned slot takes the
//                 probability of its new expert);
//                 renormalised: w[t, s] = v[t, s] / Σ_s' v[t, s']        (as plain top-k)
//                 straight-through (k = 1): w = 1 + v − stopgrad(v): exactly 1 forward, ∂w/∂v = 1,
//                 so the router learns through v (the lineage's STEFunction, k = 1 only).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

enum class MoeOverflow { Drop, Reassign };
const char* moe_overflow_name(MoeOverflow overflow);   // "drop", "reassign"
MoeOverflow moe_overflow_from_name(const std::string& name, const std::string& context = "");

// [N] flags: the experts the hard constraint masks, from importance [N] (host values), k, τ.
std::vector<bool> moe_hard_constraint_mask(const std::vector<double>& importance, int64_t k, double tau);

// idx [T, k] int64: the top k of scores [T, N] over the experts not masked ([N] flags, or empty).
Tensor moe_select_topk(const Tensor& scores, int64_t k, const std::vector<bool>& masked = {});

struct MoeReassignResult {
  int64_t reassigned = 0;   // pairs moved to another expert
  int64_t rounds = 0;       // rounds that accepted at least one proposal
};

// The re-assignment on host values: idx [T·k] (row-major [T, k], changed in place), scores [T·N].
MoeReassignResult moe_reassign_overflow(std::vector<int64_t>& idx, const std::vector<double>& scores, int64_t k,
                                        int64_t num_experts, int64_t capacity, int64_t rounds,
                                        const std::vector<bool>& masked = {});
// The same on tensors (any device): returns the new idx [T, k] on idx's device.
Tensor moe_reassign_overflow(const Tensor& idx, const Tensor& scores, int64_t capacity, int64_t rounds,
                             const std::vector<bool>& masked = {}, MoeReassignResult* result = nullptr);

// v [T, k] = probs[t, idx[t, s]], differentiable in probs (a product with a constant one-hot).
Tensor moe_gather_scores(const Tensor& probs, const Tensor& idx);
// w [T, k] from v: renormalised over the k slots, or straight-through 1 + v − stopgrad(v).
Tensor moe_gate_weights(const Tensor& v, bool straight_through);

}  // namespace moeseg
