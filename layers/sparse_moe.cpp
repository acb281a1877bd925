// SparseMoE: tokens, routing (top-k, hard constraint, capacity with drop or re-assignment,
// renormalised or straight-through weights), the sort-based dispatch and the balancing losses of
// one forward; the maths are in sparse_moe.h and layers/moe_gate.h.
#include "layers/sparse_moe.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "kernels/softmax.h"
#include "layers/conv2d_layer.h"
#include "layers/resnet_blocks.h"

namespace moeseg {

namespace {

std::string shapes_of(const Module& m) {
  std::ostringstream s;
  for (auto& [name, t] : m.named_parameters()) s << " " << name << t.str();
  for (auto& [name, t] : m.named_buffers()) s << " " << name << t.str();
  return s.str();
}

// Throws naming the layer and the first pair (router score) that is not finite.
void check_finite_scores(const Tensor& logits, const std::string& layer) {
  auto v = logits.detach().to(DType::Float64).to_vector<double>();
  const int64_t n = logits.size(1);
  for (size_t i = 0; i < v.size(); ++i)
    MOESEG_CHECK(std::isfinite(v[i]), layer, ": router score of token ", static_cast<int64_t>(i) / n, ", expert ",
                 static_cast<int64_t>(i) % n, " is ", v[i], " (NaN or infinite input or router weights?)");
}

// The experts the hard constraint masked, [N] flags -> ascending indices.
std::vector<int64_t> masked_indices(const std::vector<bool>& masked) {
  std::vector<int64_t> out;
  for (size_t e = 0; e < masked.size(); ++e)
    if (masked[e]) out.push_back(static_cast<int64_t>(e));
  return out;
}

void check_gate_options(const SparseMoEConfig& c) {
  const std::string& L = c.name;
  MOESEG_CHECK(std::isfinite(c.noise_std) && c.noise_std > 0.0, L, ": noise_std must be > 0 and finite, got ",
               c.noise_std);
  MOESEG_CHECK(c.reassign_rounds >= 0, L, ": reassign_rounds must be >= 0, got ", c.reassign_rounds);
  MOESEG_CHECK(!c.straight_through || c.k == 1, L, ": the straight-through estimator needs k = 1, got k = ", c.k);
  if (c.hard_constraint_share) {
    const double tau = *c.hard_constraint_share, lo = 1.0 / static_cast<double>(c.num_experts);
    MOESEG_CHECK(std::isfinite(tau) && tau > lo && tau <= 1.0, L, ": hard_constraint_share must be in (1/N, 1] = (",
                 lo, ", 1] for N = ", c.num_experts, ", got ", tau);
  }
}

}  // namespace

const char* moe_tokens_name(MoeTokens tokens) {
  return tokens == MoeTokens::PerImage ? "per_image" : "per_patch";
}

MoeTokens moe_tokens_from_name(const std::string& name, const std::string& context) {
  for (MoeTokens t : {MoeTokens::PerImage, MoeTokens::PerPatch})
    if (name == moe_tokens_name(t)) return t;
  MOESEG_FAIL(context.empty() ? std::string("moe tokens") : context, ": unknown tokens '", name,
              "' (known: per_image, per_patch)");
}

SparseMoE::SparseMoE(const SparseMoEConfig& cfg, int64_t in_channels, std::vector<std::shared_ptr<Module>> experts,
                     Generator& gen)
    : Module("SparseMoE"), cfg_(cfg), in_(in_channels), noise_gen_(cfg.noise_seed) {
  const std::string& L = cfg_.name;
  MOESEG_CHECK(cfg_.num_experts >= 1, L, ": num_experts must be >= 1, got ", cfg_.num_experts);
  MOESEG_CHECK(cfg_.k >= 1 && cfg_.k <= cfg_.num_experts, L, ": top-k must satisfy 1 <= k <= N, got k = ", cfg_.k,
               ", N = ", cfg_.num_experts);
  MOESEG_CHECK(!cfg_.capacity_factor || (std::isfinite(*cfg_.capacity_factor) && *cfg_.capacity_factor > 0.0), L,
               ": capacity factor must be > 0, got ", cfg_.capacity_factor.value_or(0.0));
  MOESEG_CHECK(cfg_.patch_halo >= 0 && cfg_.patch_halo <= 4096, L, ": patch halo must be in [0, 4096], got ",
               cfg_.patch_halo);
  MOESEG_CHECK(cfg_.tokens != MoeTokens::PerPatch || cfg_.patch >= 1, L, ": patch size must be >= 1, got ",
               cfg_.patch);
  check_gate_options(cfg_);
  MOESEG_CHECK(in_channels >= 1, L, ": in_channels must be >= 1, got ", in_channels);
  MOESEG_CHECK(static_cast<int64_t>(experts.size()) == cfg_.num_experts, L, ": ", experts.size(),
               " experts given, num_experts = ", cfg_.num_experts);
  for (size_t e = 0; e < experts.size(); ++e) {
    MOESEG_CHECK(experts[e] != nullptr, L, ": expert ", e, " is null");
    MOESEG_CHECK(experts[e]->type_name() == experts[0]->type_name() && shapes_of(*experts[e]) == shapes_of(*experts[0]),
                 L, ": experts must have one type and identical parameter shapes; expert 0 is ",
                 experts[0]->type_name(), shapes_of(*experts[0]), ", expert ", e, " is ", experts[e]->type_name(),
                 shapes_of(*experts[e]));
  }
  router_ = register_module("router",
                            std::make_shared<MoeRouter>(cfg_.router, in_channels, cfg_.num_experts, cfg_.noise, gen,
                                                        cfg_.noise_std));
  auto list = register_module("experts", std::make_shared<Module>("ModuleList"));
  experts_ = std::move(experts);
  for (size_t e = 0; e < experts_.size(); ++e) list->register_module(std::to_string(e), experts_[e]);
}

Module& SparseMoE::expert(int64_t e) const {
  MOESEG_CHECK(e >= 0 && e < cfg_.num_experts, cfg_.name, ": no expert ", e, " (N = ", cfg_.num_experts, ")");
  return *experts_[static_cast<size_t>(e)];
}

// Selection scores and gate probabilities, hard mask, top-k, capacity and re-assignment, weights
// (sparse_moe.h, moe_gate.h).
SparseMoE::Gate SparseMoE::gate(const MoeRouterOutput& r, int64_t t) const {
  const std::string& L = cfg_.name;
  const int64_t n = cfg_.num_experts, k = cfg_.k;
  check_finite_scores(r.logits, L);
  if (router_->noise_active()) check_finite_scores(r.noisy, L);
  Gate g;
  g.logits = r.logits, g.noisy = r.noisy, g.noise_std = r.noise_std;
  Tensor scores = softmax(r.noisy, 1);
  const bool clean_weights = cfg_.noise == MoeNoise::StdNormalized && router_->noise_active();
  g.probs = clean_weights ? softmax(r.logits, 1) : scores;
  if (is_training() && cfg_.hard_constraint_share) {
    auto importance = sum(g.probs.detach(), {0}).to(Device{}).to(DType::Float64).to_vector<double>();
    g.masked = moe_hard_constraint_mask(importance, k, *cfg_.hard_constraint_share);
  }
  g.plain_idx = moe_select_topk(scores, k);
  const bool any_masked = std::find(g.masked.begin(), g.masked.end(), true) != g.masked.end();
  g.idx = any_masked ? moe_select_topk(scores, k, g.masked) : g.plain_idx;
  if (is_training() && cfg_.capacity_factor)
    g.capacity = static_cast<int64_t>(
        std::ceil(static_cast<double>(k * t) / static_cast<double>(n) * *cfg_.capacity_factor));
  if (g.capacity && cfg_.overflow == MoeOverflow::Reassign && cfg_.reassign_rounds > 0)
    g.idx = moe_reassign_overflow(g.idx, scores, *g.capacity, cfg_.reassign_rounds, g.masked, &g.moved);
  g.w = moe_gate_weights(moe_gather_scores(g.probs, g.idx), cfg_.straight_through);
  return g;
}

Tensor SparseMoE::forward(const Tensor& x) {
  const std::string& L = cfg_.name;
  MOESEG_CHECK(x.defined() && x.dim() == 4 && x.size(1) == in_, L, ": input must be [B, ", in_, ", H, W], got ",
               x.defined() ? x.str() : std::string("undefined"));
  const int64_t b = x.size(0), c = x.size(1), hh = x.size(2), ww = x.size(3), n = cfg_.num_experts, k = cfg_.k;

  // ---- tokens [T, C, h, w] ----
  Tensor tokens;
  const int64_t halo = cfg_.tokens == MoeTokens::PerPatch ? cfg_.patch_halo : 0;
  int64_t nh = 1, nw = 1, th = hh, tw = ww;
  if (cfg_.tokens == MoeTokens::PerImage) {
    tokens = x;
  } else {
    const int64_t p = cfg_.patch;
    MOESEG_CHECK(hh % p == 0 && ww % p == 0, L, ": feature map ", hh, "x", ww, " is not a multiple of the patch size ",
                 p);
    nh = hh / p, nw = ww / p, th = p + 2 * halo, tw = p + 2 * halo;
    if (halo == 0) {
      tokens = x.reshape({b, c, nh, p, nw, p}).permute({0, 2, 4, 1, 3, 5}).reshape({b * nh * nw, c, p, p});
    } else {   // overlapping windows of the zero-padded map, in (b, row, col) order
      const Tensor zr = Tensor::zeros({b, c, halo, ww}, x.dtype(), x.device());
      Tensor xpad = concat({zr, x, zr}, 2);
      const Tensor zc = Tensor::zeros({b, c, hh + 2 * halo, halo}, x.dtype(), x.device());
      xpad = concat({zc, xpad, zc}, 3);
      std::vector<Tensor> windows;
      for (int64_t r = 0; r < nh; ++r)
        for (int64_t q = 0; q < nw; ++q) windows.push_back(xpad.narrow(2, r * p, th).narrow(3, q * p, tw).unsqueeze(1));
      tokens = concat(windows, 1).reshape({b * nh * nw, c, th, tw});
    }
  }
  const int64_t t = tokens.size(0);

  // ---- routing ----
  Gate g = gate(router_->route(tokens, &noise_gen_), t);
  const Tensor &idx = g.idx, &w = g.w, &probs = g.probs;
  MoeRoutingPlan plan = moe_routing_plan(idx, n, g.capacity);

  // ---- dispatch: each expert once on its contiguous slice ----
  Tensor xp = moe_permute(tokens.reshape({t, c * th * tw}), plan).view({plan.kept(), c, th, tw});
  std::vector<Tensor> outs;
  Shape out_shape;
  for (int64_t e = 0; e < n; ++e) {
    const int64_t cnt = plan.counts[static_cast<size_t>(e)];
    if (cnt == 0) continue;
    Tensor ye = experts_[static_cast<size_t>(e)]->forward(xp.narrow(0, plan.offsets[static_cast<size_t>(e)], cnt));
    MOESEG_CHECK(ye.dim() == 4 && ye.size(0) == cnt && ye.size(2) == th && ye.size(3) == tw, L, ": expert ", e,
                 " maps ", xp.narrow(0, 0, cnt).str(), " to ", ye.str(),
                 "; experts must keep the batch and the spatial size (stride 1, padding same)");
    if (out_shape.empty()) out_shape = ye.sizes();
    MOESEG_CHECK(ye.size(1) == out_shape[1], L, ": expert ", e, " gives ", ye.size(1),
                 " channels, an earlier expert ", out_shape[1], " (mismatched experts)");
    outs.push_back(ye);
  }
  MOESEG_CHECK(!outs.empty(), L, ": no token reached an expert (", plan.str(), ")");
  const int64_t co = out_shape[1];
  Tensor yp = (outs.size() == 1 ? outs[0] : concat(outs, 0)).reshape({plan.kept(), co * th * tw});
  Tensor y = moe_unpermute_combine(yp, plan, w);   // [T, C'·h·w]
  Tensor out;
  if (cfg_.tokens == MoeTokens::PerImage) {
    out = y.view({b, co, hh, ww});
  } else {
    const int64_t p = cfg_.patch;
    Tensor centre = halo == 0 ? y.view({t, co, p, p}) : y.view({t, co, th, tw}).narrow(2, halo, p).narrow(3, halo, p);
    out = centre.reshape({b, nh, nw, co, p, p}).permute({0, 3, 1, 4, 2, 5}).reshape({b, co, hh, ww});
  }

  // ---- balancing losses and statistics ----
  losses_.importance = cv_squared(moe_importance(w, idx, n));
  losses_.load = cv_squared(g.noise_std.defined()
                                ? moe_smooth_load(g.logits, g.noisy, g.noise_std, g.plain_idx, k)
                                : moe_hard_load(idx, n, probs.dtype()));
  losses_.switch_loss = moe_switch_loss(probs, idx);
  losses_.entropy = moe_entropy_loss(probs);
  stats_.tokens = t;
  stats_.grid_h = nh;
  stats_.grid_w = nw;
  stats_.k = k;
  stats_.capacity = plan.capacity;
  stats_.dropped = plan.dropped;
  stats_.requested = plan.requested;
  stats_.kept = plan.counts;
  stats_.reassigned = g.moved.reassigned;
  stats_.reassign_rounds = g.moved.rounds;
  stats_.masked_experts = masked_indices(g.masked);
  stats_.masked = static_cast<int64_t>(stats_.masked_experts.size());
  last_idx_ = idx;
  last_w_ = w;
  return out;
}

std::map<std::string, Tensor> SparseMoE::aux_losses() const {
  std::map<std::string, Tensor> out;
  if (!losses_.importance.defined()) return out;
  auto put = [&](const char* what, double weight, const Tensor& v) {
    if (weight != 0.0) out[cfg_.name + "." + what] = scale(v, weight);
  };
  put("importance", cfg_.importance_weight, losses_.importance);
  put("load", cfg_.load_weight, losses_.load);
  put("switch", cfg_.switch_weight, losses_.switch_loss);
  put("entropy", cfg_.entropy_weight, losses_.entropy);
  return out;
}

std::shared_ptr<SparseMoE> make_conv_moe(const SparseMoEConfig& cfg, int64_t in_channels, int64_t out_channels,
                                         int64_t kernel, Generator& gen) {
  MOESEG_CHECK(kernel >= 1 && kernel % 2 == 1, cfg.name, ": ConvMoE needs an odd kernel for padding same, got ",
               kernel);
  std::vector<std::shared_ptr<Module>> experts;
  for (int64_t e = 0; e < cfg.num_experts; ++e)
    experts.push_back(
        std::make_shared<Conv2d>(in_channels, out_channels, kernel, 1, (kernel - 1) / 2, 1, 1, true, gen));
  return std::make_shared<SparseMoE>(cfg, in_channels, std::move(experts), gen);
}

std::shared_ptr<SparseMoE> make_block_moe(const SparseMoEConfig& cfg, int64_t in_channels, int64_t planes,
                                          Generator& gen) {
  std::vector<std::shared_ptr<Module>> experts;
  for (int64_t e = 0; e < cfg.num_experts; ++e) {
    auto ds = in_channels != planes ? make_resnet_downsample(in_channels, planes, 1, gen) : nullptr;
    experts.push_back(std::make_shared<BasicBlock>(in_channels, planes, 1, 1, ds, gen));
  }
  return std::make_shared<SparseMoE>(cfg, in_channels, std::move(experts), gen);
}

}  // namespace moeseg
