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
// per-expert GEMMs write disjoint slices. float32 / float64 on the CPU.
//
// CUDA: float32 CUDA tensors run the kernels of kernels/cuda/moe_dispatch.cu through the kernel
// table (kernels/gpu_ops.cpp), forward and backward; float64 CUDA tensors take the announced CPU
// fallback (kernels/device_fallback.h), as conv2d and linear do. The plan stays the host-side
// description (the layer slices experts by its host counts and offsets); what the kernels read
// (order, position, offsets) lives as int64 device tensors in the plan's device cache, made once
// per plan and device by explicit host->device copies and shared by every op and backward pass
// that uses the plan. The grouped linear is one launch of the plain grouped GEMM kernels over all
// experts (a row finds its expert in offsets); on a real GPU a cuBLAS path, one gemm per non-empty
// expert as kernels/linear.cpp does for Linear, may be added later.
// moe_routing_plan on a CUDA idx builds the plan on the device with the .cu histogram / scan /
// scatter kernels and copies the result back to the host in one explicit device->host copy
// (requested, counts, offsets, position, order, and the count of out-of-range indices); the device
// copies of order, position and offsets stay in the plan's cache, so the ops that follow upload
// nothing. Chosen (by reasoning, not measured) over copying idx to the host and sorting there:
// about the same bytes cross (2 T*k + 3N + 2 int64, all down, against T*k down and P + T*k + N + 1
// up), but in one transfer instead of two with a host sort between them, and the O(T*k) sort stays
// where the indices already are. The host copy of order and position is still made so that the
// plan is one complete description, usable by the CPU ops too. An index out of range is then found
// on a host copy of idx, for the same message as the CPU's.
// Tests: tests/ops/test_moe_dispatch.cpp (plans by hand, gradients, PyTorch fixtures made by
// tools/fixtures/cases_moe.py, bad input); tests/device/test_moe_dispatch_device.cpp (the CUDA
// path on the emulated device against the CPU, forward and backward, and the upload cache).
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

// Device copies of a plan's order [P], position [T*k] and offsets [N + 1] (int64, on `device`),
// filled by the first CUDA op on the plan (or by moe_routing_plan on a CUDA idx) and read by the
// later ones. A copied plan starts with an empty cache (the copy may be edited, the cache would
// then be stale); a moved one keeps it.
struct MoePlanDeviceCache {
  std::mutex mu;
  Device device;
  Tensor order, position, offsets;   // undefined until filled
  int64_t uploads = 0;               // host->device uploads made into this cache (tests)

  MoePlanDeviceCache() = default;
  MoePlanDeviceCache(const MoePlanDeviceCache&) {}
  MoePlanDeviceCache& operator=(const MoePlanDeviceCache& o) {
    if (this != &o) {
      std::lock_guard<std::mutex> lock(mu);
      device = Device{}, order = position = offsets = Tensor(), uploads = 0;
    }
    return *this;
  }
  MoePlanDeviceCache(MoePlanDeviceCache&& o) noexcept { take(o); }
  MoePlanDeviceCache& operator=(MoePlanDeviceCache&& o) noexcept {
    if (this != &o) take(o);
    return *this;
  }

 private:
  void take(MoePlanDeviceCache& o) {
    std::scoped_lock lock(mu, o.mu);
    device = o.device, order = std::move(o.order), position = std::move(o.position);
    offsets = std::move(o.offsets), uploads = o.uploads;
    o.order = o.position = o.offsets = Tensor(), o.uploads = 0;
  }
};

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
  mutable MoePlanDeviceCache device_cache;   // the kernels' view of the plan on a CUDA device

  int64_t kept() const { return offsets.empty() ? 0 : offsets.back(); }
  std::string str() const;          // "T=.. k=.. N=.. kept=.. dropped=.."
};

// The plan for top-k expert indices idx [T, k] (int64, values in [0, num_experts)), k <= N.
// capacity: per-expert limit (> 0); pairs beyond it are dropped, first tokens in token order win.
// A CUDA idx: built on the device and copied back (see the top of this file).
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
