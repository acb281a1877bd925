// moe_dispatch: sort-based token dispatch for sparse MoE layers (issue 12; reference-systems §5).
// A router picks k of N experts per token; instead of running all N experts and masking, tokens
// are counted and sorted by expert, gathered into one contiguous slice per expert, each expert
// runs once on its slice (one GEMM), and the results are scattered back weighted by the router.
//
// The maths (T tokens, k slots per token, N experts, pair p = t*k + s):
//   plan      requested[e] = #{p : idx[p] = e}                          (histogram)
//             kept pairs: with a capacity C, of the pairs of expert e the first C in token order
//             (then slot order) are kept, the rest are dropped; without one all are kept.
//             counts[e] = kept pairs of e; offsets = exclusive prefix sum of counts, [N + 1]
//             order[q] = the pair at sorted position q (counting sort: stable, ties in token order)
//             position[p] = q with order[q] = p, or -1 when p was dropped
//   permute   xp[q, :] = x[order[q] / k, :]                               xp [P, D], P = offsets[N]
//             backward: dx[t, :] = sum_{s: position[t*k+s] >= 0} dxp[position[t*k+s], :]
//   grouped   yp[q, :] = W[e] xp[q, :] + b[e]   for offsets[e] <= q < offsets[e+1]
//   linear    backward: dxp[slice e] = dyp[slice e] W[e];  dW[e] = dyp[slice e]^T xp[slice e];
//             db[e] = sum over rows of dyp[slice e]; experts with no rows get dW[e] = db[e] = 0
//   unpermute y[t, :] = sum_{s kept} w[t, s] * yp[position[t*k+s], :]      y [T, D_out]
//   combine   backward: dyp[position[p], :] = w[p] * dy[t, :];  dw[p] = <dy[t, :], yp[position[p], :]>
//             (dw[p] = 0 for a dropped pair)
//
// Data layout: x [T, D], idx [T, k] int64 in [0, N), w [T, k] (the dtype of x), W [N, D_out, D]
// (each expert a Linear / 1x1 conv with PyTorch's [out, in] weight), b [N, D_out]. All row-major.
// A 1x1-conv expert over a feature map is the same op on tokens = pixels ([B*H*W, C] rows).
//
// Cost (P = kept pairs <= T*k): plan O(T*k + N) integer work; permute and unpermute move
// P*D (resp. P*D_out) elements each way (memory bound: ~2*P*D*sizeof(T) bytes, 2*P*D_out FLOPs
// for the combine); grouped linear 2*P*D*D_out FLOPs forward (the same as one dense layer on the
// k*T routed rows, independent of N), 2x that in backward; bytes P*(D + D_out) + N_used*D*D_out.
// No padding to capacity, no compute for experts without tokens.
//
// Determinism (DESIGN.md): the plan is a counting sort; every output row of every pass (forward
// and backward) is written by one thread in a fixed order (gathers, never scatter-adds), the
// per-expert GEMMs write disjoint slices. float32 / float64 on the CPU; CUDA tensors fall back to
// the CPU for now and say so.
// Tests: tests/ops/test_moe_dispatch.cpp (plans by hand, gradients, PyTorch fixtures made by
// tools/fixtures/cases_moe.py, bad input).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

struct MoeRoutingPlan {
  int64_t tokens = 0;        // T
  int64_t k = 0;             // slots per token
  int64_t experts = 0;       // N
  int64_t capacity = -1;     // per-expert capacity; -1: none
  std::vector<int64_t> requested;   // [N] pairs routed to each expert before the capacity
  std::vector<int64_t> counts;      // [N] pairs kept per expert
  std::vector<int64_t> offsets;     // [N + 1] exclusive prefix sum of counts
  std::vector<int64_t> order;       // [P] pair index t*k+s at each sorted position
  std::vector<int64_t> position;    // [T*k] sorted position of each pair, -1 when dropped
  int64_t dropped = 0;              // pairs dropped by the capacity

  int64_t kept() const { return offsets.empty() ? 0 : offsets.back(); }
  std::string str() const;          // "T=.. k=.. N=.. kept=.. dropped=.."
};

// The plan for top-k expert indices idx [T, k] (int64, values in [0, num_experts)), k <= N.
// capacity: per-expert limit (> 0); pairs beyond it are dropped, first tokens in token order win.
MoeRoutingPlan moe_routing_plan(const Tensor& idx, int64_t num_experts, std::optional<int64_t> capacity = std::nullopt);

// xp [P, D]: the rows of x [T, D] in expert-contiguous order. Differentiable in x.
Tensor moe_permute(const Tensor& x, const MoeRoutingPlan& plan);

// y [T, D_out] = sum over kept slots of w[t, s] * yp[position(t, s)]. yp [P, D_out], w [T, k].
// Differentiable in yp and w.
Tensor moe_unpermute_combine(const Tensor& yp, const MoeRoutingPlan& plan, const Tensor& w);

// Each expert e applied once to its slice xp[offsets[e] : offsets[e+1]]: yp = xp W[e]^T + b[e].
// xp [P, D], weight [N, D_out, D], bias [N, D_out] or undefined. Differentiable in all three.
Tensor moe_grouped_linear(const Tensor& xp, const MoeRoutingPlan& plan, const Tensor& weight,
                          const Tensor& bias = Tensor());

}  // namespace moeseg
