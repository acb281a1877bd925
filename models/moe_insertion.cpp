// Inserting sparse MoE layers by module name (models/moe_insertion.h).
#include "models/moe_insertion.h"

#include <cmath>

#include "core/autograd.h"
#include "core/json_checks.h"
#include "core/named_enum.h"
#include "layers/conv2d_layer.h"
#include "layers/resnet_blocks.h"

namespace moeseg {

namespace {

using json = nlohmann::json;

constexpr NamedValue<MoeInsertTarget> kTargetNames[] = {{MoeInsertTarget::Conv, "conv"},
                                                        {MoeInsertTarget::Block, "block"}};

// The module at a dotted path below root ("" = root).
Module& module_at(Module& root, const std::string& path) {
  Module* m = &root;
  size_t start = 0;
  while (start < path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    m = m->child(part).get();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *m;
}

bool inside_sparse_moe(const std::string& name, const std::vector<std::string>& moe_names) {
  for (const std::string& m : moe_names)
    if (name.size() > m.size() && name.compare(0, m.size(), m) == 0 && name[m.size()] == '.') return true;
  return false;
}

// torchvision's ResNet initialisation of a conv: N(0, 2 / (out * k * k)) weights, zero bias.
void init_fresh_conv(Conv2d& c, Generator& gen) {
  NoGradGuard ng;
  const Conv2dConfig& g = c.config();
  normal_(c.weight, 0.0, std::sqrt(2.0 / static_cast<double>(g.out_channels * g.kernel * g.kernel)), gen);
  if (c.bias.defined()) c.bias.zero_();
}

std::vector<std::shared_ptr<Module>> conv_experts(const std::string& name, const Conv2d& conv, const MoeInsertion& ins,
                                                  Generator& gen) {
  const Conv2dConfig& g = conv.config();
  MOESEG_CHECK(g.stride == 1 && g.kernel % 2 == 1 && g.padding == g.dilation * (g.kernel - 1) / 2, name,
               ": a ConvMoE / PatchMoE needs a conv that keeps the spatial size (stride 1, odd kernel, padding "
               "dilation*(kernel-1)/2); this one has kernel ",
               g.kernel, ", stride ", g.stride, ", padding ", g.padding, ", dilation ", g.dilation);
  std::vector<std::shared_ptr<Module>> experts;
  for (int64_t e = 0; e < ins.layer.num_experts; ++e) {
    auto c = std::make_shared<Conv2d>(g, gen);
    if (ins.copy_weights) c->load_state_dict(conv.state_dict());
    else init_fresh_conv(*c, gen);
    experts.push_back(c);
  }
  return experts;
}

template <typename Block>
std::vector<std::shared_ptr<Module>> block_experts(const std::string& name, const Block& b, const MoeInsertion& ins,
                                                   Generator& gen) {
  MOESEG_CHECK(b.stride() == 1, name, ": a BlockMoE needs a block that keeps the spatial size (stride 1); this ",
               b.type_name(), " has stride ", b.stride(), " (insert into a dilated stage, e.g. layer4 at output "
               "stride 16)");
  std::vector<std::shared_ptr<Module>> experts;
  for (int64_t e = 0; e < ins.layer.num_experts; ++e) {
    auto ds = b.has_downsample() ? make_resnet_downsample(b.in_channels(), b.out_channels(), 1, gen) : nullptr;
    auto x = std::make_shared<Block>(b.in_channels(), b.planes(), 1, b.dilation(), ds, gen);
    if (ins.copy_weights) x->load_state_dict(b.state_dict());
    experts.push_back(x);
  }
  return experts;
}

}  // namespace

std::vector<std::pair<std::string, SparseMoE*>> sparse_moe_layers(Module& root) {
  std::vector<std::pair<std::string, SparseMoE*>> out;
  for (auto& [name, m] : root.named_modules())
    if (auto* s = dynamic_cast<SparseMoE*>(m.get())) out.emplace_back(name, s);
  return out;
}

std::vector<std::string> insert_sparse_moe(Module& root, const MoeInsertion& ins) {
  MOESEG_CHECK(!ins.pattern.empty(), "sparse_moe: the pattern 'replace' is empty");
  std::vector<std::string> existing;
  for (auto& [name, m] : sparse_moe_layers(root)) existing.push_back(name);
  struct Target {
    std::string name;
    std::shared_ptr<Module> module;
  };
  std::vector<Target> targets;
  std::string candidates;
  int64_t n_candidates = 0;
  for (auto& [name, m] : root.named_modules()) {
    if (name.empty() || inside_sparse_moe(name, existing)) continue;
    const bool is_conv = dynamic_cast<Conv2d*>(m.get()) != nullptr;
    const bool is_block = dynamic_cast<ResNetBlock*>(m.get()) != nullptr;
    if (!(ins.target == MoeInsertTarget::Conv ? is_conv : is_block)) continue;
    if (++n_candidates <= 12) candidates += (candidates.empty() ? "" : ", ") + name;
    if (name.find(ins.pattern) != std::string::npos) targets.push_back({name, m});
  }
  const char* kind = ins.target == MoeInsertTarget::Conv ? "Conv2d" : "ResNet block";
  if (n_candidates > 12) candidates += ", ... (" + std::to_string(n_candidates) + " in all)";
  MOESEG_CHECK(!targets.empty(), "sparse_moe: the pattern '", ins.pattern, "' matches no ", kind, " of this ",
               root.type_name(), " (", kind, "s: ", candidates.empty() ? "none" : candidates, ")");
  std::vector<std::string> names;
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    Generator gen(ins.seed * 1000003ULL + 7919ULL * (i + 1));
    SparseMoEConfig cfg = ins.layer;
    cfg.name = t.name;
    cfg.noise_seed = ins.seed * 1000003ULL + 104729ULL * (i + 1);
    std::vector<std::shared_ptr<Module>> experts;
    int64_t in_channels = 0;
    int64_t reach = 0;   // how far an output pixel sees: the halo a per-patch token needs
    if (auto* c = dynamic_cast<Conv2d*>(t.module.get())) {
      experts = conv_experts(t.name, *c, ins, gen);
      in_channels = c->config().in_channels;
      reach = c->config().dilation * (c->config().kernel - 1) / 2;
    } else if (auto* b = dynamic_cast<BasicBlock*>(t.module.get())) {
      experts = block_experts(t.name, *b, ins, gen);
      in_channels = b->in_channels();
      reach = 2 * b->dilation();
    } else {
      auto* bn = dynamic_cast<Bottleneck*>(t.module.get());
      experts = block_experts(t.name, *bn, ins, gen);
      in_channels = bn->in_channels();
      reach = bn->dilation();
    }
    if (cfg.tokens == MoeTokens::PerPatch) cfg.patch_halo = ins.patch_halo >= 0 ? ins.patch_halo : reach;
    auto layer = std::make_shared<SparseMoE>(cfg, in_channels, std::move(experts), gen);
    const size_t dot = t.name.rfind('.');
    Module& parent = dot == std::string::npos ? root : module_at(root, t.name.substr(0, dot));
    parent.replace_child(dot == std::string::npos ? t.name : t.name.substr(dot + 1), layer);
    if (t.module->is_training() != layer->is_training()) layer->train(t.module->is_training());
    names.push_back(t.name);
  }
  return names;
}

MoeInsertion parse_moe_insertion(const json& j, const std::string& where) {
  MOESEG_CHECK(j.is_object(), where, ": a sparse_moe insertion must be an object, got ", json_text(j));
  check_keys(j, {"replace", "target", "tokens", "patch", "patch_halo", "num_experts", "k", "router", "noise",
                 "noise_std", "capacity_factor", "overflow", "reassign_rounds", "straight_through",
                 "hard_constraint_share", "importance_weight", "load_weight", "switch_weight", "entropy_weight",
                 "expert_init", "seed", "comment"},
             where);
  MoeInsertion ins;
  ins.pattern = get_required<std::string>(j, "replace", where);
  MOESEG_CHECK(!ins.pattern.empty(), where, ": key 'replace' is empty (a module-name pattern, e.g. \"layer4\")");
  ins.target = parse_named(kTargetNames, get_or<std::string>(j, "target", "conv", where), where + ": key 'target'");
  SparseMoEConfig& c = ins.layer;
  c.tokens = moe_tokens_from_name(get_or<std::string>(j, "tokens", "per_image", where), where + ": key 'tokens'");
  c.patch = get_int_in(j, "patch", c.patch, 1, 4096, where);
  ins.patch_halo = get_int_in(j, "patch_halo", -1, -1, 4096, where);
  c.num_experts = get_int_in(j, "num_experts", c.num_experts, 1, 4096, where);
  c.k = get_int_in(j, "k", c.k, 1, 4096, where);
  MOESEG_CHECK(c.k <= c.num_experts, where, ": key 'k' is ", c.k, ", more than num_experts = ", c.num_experts);
  c.router = moe_router_kind_from_name(get_or<std::string>(j, "router", "gap_linear", where), where + ": key 'router'");
  c.noise = moe_noise_from_name(get_or<std::string>(j, "noise", "none", where), where + ": key 'noise'");
  c.noise_std = get_or<double>(j, "noise_std", c.noise_std, where);
  MOESEG_CHECK(std::isfinite(c.noise_std) && c.noise_std > 0, where, ": key 'noise_std' must be > 0, got ", c.noise_std);
  if (j.contains("capacity_factor")) {
    const double f = get_required<double>(j, "capacity_factor", where);
    MOESEG_CHECK(std::isfinite(f) && f > 0, where, ": key 'capacity_factor' must be > 0, got ", f);
    c.capacity_factor = f;
  }
  c.overflow = moe_overflow_from_name(get_or<std::string>(j, "overflow", "drop", where), where + ": key 'overflow'");
  c.reassign_rounds = get_int_in(j, "reassign_rounds", c.reassign_rounds, 0, 1 << 20, where);
  c.straight_through = get_or<bool>(j, "straight_through", false, where);
  MOESEG_CHECK(!c.straight_through || c.k == 1, where, ": key 'straight_through' needs k = 1, got k = ", c.k);
  if (j.contains("hard_constraint_share")) {
    const double tau = get_required<double>(j, "hard_constraint_share", where);
    MOESEG_CHECK(std::isfinite(tau) && tau > 1.0 / static_cast<double>(c.num_experts) && tau <= 1.0, where,
                 ": key 'hard_constraint_share' must be in (1/N, 1] = (", 1.0 / static_cast<double>(c.num_experts),
                 ", 1], got ", tau);
    c.hard_constraint_share = tau;
  }
  for (auto [key, dst] : {std::pair<const char*, double*>{"importance_weight", &c.importance_weight},
                          {"load_weight", &c.load_weight},
                          {"switch_weight", &c.switch_weight},
                          {"entropy_weight", &c.entropy_weight}}) {
    *dst = get_or<double>(j, key, 0.0, where);
    MOESEG_CHECK(std::isfinite(*dst) && *dst >= 0, where, ": key '", key, "' must be a finite weight >= 0, got ", *dst);
  }
  const std::string init = get_or<std::string>(j, "expert_init", "fresh", where);
  MOESEG_CHECK(init == "fresh" || init == "copy", where, ": key 'expert_init' is '", init, "' (known: fresh, copy)");
  ins.copy_weights = init == "copy";
  ins.seed = get_or<uint64_t>(j, "seed", 0, where);
  return ins;
}

}  // namespace moeseg
