// SparseMoE: a sparsely-gated mixture-of-experts layer inside a CNN (issue 12; reference-systems
// §5: Pavlitska et al.'s ConvMoE / BlockMoE / PatchMoE, Shazeer's noisy top-k gating).
//
// Tokens. x [B, C, H, W]. Per image: T = B tokens, token t = x[t] ([C, H, W]). Per patch
// (PatchMoE): the map is cut into P×P patches (H, W multiples of P), T = B·(H/P)·(W/P) tokens
// [C, P, P] in (b, row, col) order; each patch is routed and processed on its own and put back at
// its place. With patch_halo = 0 an expert's convolutions see zero padding at the patch border;
// with a halo h each token is the (P+2h)×(P+2h) window around its patch in the zero-padded map
// (the lineage's PatchMOELayer uses h = 1: it unfolds patches with a one-pixel border), the
// router sees the window too, and only the centre P×P of the expert's output is put back. With h
// = the experts' reach (dilation·(K−1)/2 for one conv) a PatchMoE whose experts are all the same
// conv computes exactly that conv.
//
// Routing (layers/moe_router.h, layers/moe_gate.h): logits h [T, N] and noisy h~ (= h at eval),
// selection scores q = softmax(h~) [T, N]; gate probabilities probs = q, except with the
// StdNormalized noise where probs = softmax(h) (the lineage takes its weights from the clean
// scores and uses the normalised noisy ones only to choose; so do we). idx [T, k] = the k largest
// q over the experts not masked by the hard constraint; with a capacity and overflow Reassign the
// pairs over capacity are re-assigned (moe_gate.h); weights from v[t, s] = probs[t, idx[t, s]]:
// w[t, s] = v[t, s] / Σ_s' v[t, s'] (= Shazeer's softmax over the kept logits), or with
// straight_through (k = 1 only) w = 1 + v − stopgrad(v) (exactly 1 forward, the router's gradient
// through v). y[t] = Σ_s w[t, s] · E_{idx[t, s]}(x_t) over the kept pairs.
// Capacity (training only, when a factor is set): C_e = ⌈k·T/N·factor⌉ pairs per expert; the
// pairs beyond it (later tokens first) are re-assigned (Reassign) and what is left is dropped and
// contributes nothing (no re-normalisation; a token with every pair dropped gives 0).
// Hard constraint (training only, hard_constraint_share τ set): the experts whose share of the
// batch's summed probs exceeds τ are masked for that forward, at least k experts stay (moe_gate.h
// has our reading of the paper). Eval: plain top-k of the clean logits, no capacity, no noise, no
// mask.
//
// Dispatch (kernels/moe_dispatch.h), never all experts then a mask: the plan counts and sorts
// the T·k pairs by expert, moe_permute gathers the tokens into one expert-contiguous buffer
// [P_kept, C·h·w], each expert runs once on its slice (for per-image conv experts the slice is
// the batch of images routed to it; per patch, the batch of its patches), an expert without
// tokens is not run (its parameters get no gradient), and moe_unpermute_combine scatters the
// outputs back weighted by w. Shapes: in [B, C, H, W] -> out [B, C', H, W] (experts keep the
// spatial size: stride 1, padding "same").
//
// Experts. Any modules of one type with identical parameter names and shapes (others are
// refused naming the layer); make_conv_moe: each a Conv2d (odd kernel K, stride 1, padding
// (K-1)/2, bias); make_block_moe: each a ResNet BasicBlock (layers/resnet_blocks.h; a 1x1 conv +
// BN downsample when C != C'). State-dict names: "router.*", "experts.<e>.*".
//
// FLOPs per token of h·w pixels (forward): router 2·C·N (+ C·h·w for the GAP; the 1x1-conv
// router 2·C·N·h·w, the 3x3 and two-conv routers in moe_router.h; the noise head another 2·C·N);
// experts k · (cost of one expert):
// ConvMoE 2·C·C'·K²·h·w, BlockMoE 2·9·(C·C' + C'·C')·h·w (+ 2·C·C'·h·w with a downsample),
// plus 2·k·C'·h·w for the weighted combine. Independent of N apart from the router.
//
// Balancing (layers/moe_balancing.h, formulas there): importance CV², load CV² (the normal-CDF
// estimate while the learned noise is on, on the plain top k of h~ before mask and re-assignment;
// else the counts of the final idx), switch N·Σ f_i·P_i (f of the final idx), entropy
// log N − H(mean probs); probs as above (with StdNormalized the clean softmax). Each has a weight
// in SparseMoEConfig and aux_losses() returns the weighted ones of the last forward.
// Tested by tests/layers/test_sparse_moe.cpp and tests/layers/test_moe_gate_options.cpp.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/moe_dispatch.h"
#include "layers/moe_balancing.h"
#include "layers/moe_gate.h"
#include "layers/moe_router.h"
#include "layers/module.h"

namespace moeseg {

enum class MoeTokens { PerImage, PerPatch };
const char* moe_tokens_name(MoeTokens tokens);   // "per_image", "per_patch"
MoeTokens moe_tokens_from_name(const std::string& name, const std::string& context = "");

// Refused at construction, naming the layer (`name`) and the value: k outside [1, N], capacity
// factor <= 0, noise_std <= 0 or not finite, reassign_rounds < 0, τ outside (1/N, 1],
// straight_through with k != 1. JSON names of the enums: moe_router_kind_name, moe_noise_name
// (moe_router.h), moe_overflow_name (moe_gate.h), moe_tokens_name; each has a _from_name parser.
struct SparseMoEConfig {
  std::string name = "SparseMoE";       // the layer's name in error messages (e.g. "layer4.1.conv2")
  int64_t num_experts = 4;               // N
  int64_t k = 1;                         // experts per token, 1 <= k <= N
  MoeTokens tokens = MoeTokens::PerImage;
  int64_t patch = 4;                     // P for PerPatch
  int64_t patch_halo = 0;                // PerPatch: each token also holds this many pixels of its neighbours
  MoeRouterKind router = MoeRouterKind::GapLinear;
  MoeNoise noise = MoeNoise::None;
  double noise_std = 0.1;                // σ of MoeNoise::StdNormalized (> 0, finite)
  std::optional<double> capacity_factor; // > 0; none = no capacity
  MoeOverflow overflow = MoeOverflow::Drop;   // what happens to the pairs over capacity
  int64_t reassign_rounds = 25;          // >= 0, rounds of MoeOverflow::Reassign (0 = Drop)
  bool straight_through = false;         // w = 1 + p − stopgrad(p); k = 1 only
  std::optional<double> hard_constraint_share;   // τ in (1/N, 1]; none = no hard constraint
  uint64_t noise_seed = 0;               // seeds the layer's noise generator
  double importance_weight = 0.0, load_weight = 0.0, switch_weight = 0.0, entropy_weight = 0.0;
};

// Routing of the last forward, for usage statistics (entropy / CV of expert usage).
struct MoeRoutingStats {
  int64_t tokens = 0, k = 0, capacity = -1, dropped = 0;
  int64_t grid_h = 1, grid_w = 1;   // tokens of one image as a grid, in row order (per patch: H/P x W/P)
  std::vector<int64_t> requested;   // [N] pairs routed to each expert before the capacity (after re-assignment)
  std::vector<int64_t> kept;        // [N] pairs each expert processed
  int64_t reassigned = 0;           // pairs moved to another expert by MoeOverflow::Reassign
  int64_t reassign_rounds = 0;      // rounds that moved at least one pair
  int64_t masked = 0;               // experts masked by the hard constraint
  std::vector<int64_t> masked_experts;   // their indices, ascending
};

class SparseMoE : public Module {
 public:
  // experts: N modules of one type with identical parameter shapes mapping [*, in_channels, h, w]
  // to [*, C', h, w]; registered as children "experts.0" ... (the router as "router").
  SparseMoE(const SparseMoEConfig& cfg, int64_t in_channels, std::vector<std::shared_ptr<Module>> experts,
            Generator& gen = default_generator());

  Tensor forward(const Tensor& x) override;

  // Weighted balancing losses of the last forward ("<name>.importance", ...), the terms with a
  // non-zero weight only: what the trainer adds to the loss (ModelOutput::aux_losses).
  std::map<std::string, Tensor> aux_losses() const;
  const MoeBalancingLosses& balancing_losses() const { return losses_; }   // unweighted
  const MoeRoutingStats& routing_stats() const { return stats_; }
  // The gate of the last forward: idx [T, k] int64 and w [T, k] (differentiable).
  const Tensor& last_indices() const { return last_idx_; }
  const Tensor& last_weights() const { return last_w_; }

  const SparseMoEConfig& config() const { return cfg_; }
  int64_t num_experts() const { return cfg_.num_experts; }
  Module& expert(int64_t e) const;
  MoeRouter& router() const { return *router_; }
  Generator& noise_generator() { return noise_gen_; }

 private:
  struct Gate {   // the routing of one forward
    Tensor logits, noisy, noise_std;    // the router's output
    Tensor probs;                       // [T, N] gate probabilities (weights and balancing)
    Tensor plain_idx, idx;              // [T, k] top k of the scores; after mask and re-assignment
    Tensor w;                           // [T, k]
    std::optional<int64_t> capacity;
    std::vector<bool> masked;           // [N] or empty
    MoeReassignResult moved;
  };
  Gate gate(const MoeRouterOutput& r, int64_t tokens) const;

  SparseMoEConfig cfg_;
  int64_t in_;
  std::shared_ptr<MoeRouter> router_;
  std::vector<std::shared_ptr<Module>> experts_;
  Generator noise_gen_;
  MoeBalancingLosses losses_;
  MoeRoutingStats stats_;
  Tensor last_idx_, last_w_;
};

// ConvMoE: N experts, each Conv2d(in, out, kernel, stride 1, padding (kernel-1)/2, bias).
std::shared_ptr<SparseMoE> make_conv_moe(const SparseMoEConfig& cfg, int64_t in_channels, int64_t out_channels,
                                         int64_t kernel, Generator& gen = default_generator());
// BlockMoE: N experts, each a BasicBlock(in, planes, stride 1) with a downsample when in != planes.
std::shared_ptr<SparseMoE> make_block_moe(const SparseMoEConfig& cfg, int64_t in_channels, int64_t planes,
                                          Generator& gen = default_generator());

}  // namespace moeseg
