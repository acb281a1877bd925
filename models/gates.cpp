// MoE gates: simple and class-wise, fixed-size or resolution-independent (see gates.h).
#include "models/gates.h"

#include "core/named_enum.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/pooling.h"
#include "kernels/shape_ops.h"
#include "kernels/softmax.h"

namespace moeseg {

SimpleGate::SimpleGate(const GateConfig& cfg, Generator& gen) : Gate("SimpleGate"), cfg_(cfg) {
  MOESEG_CHECK(cfg.num_experts >= 1 && cfg.in_channels >= 1 && cfg.fc_features >= 1, "gate: bad config (in_channels ",
               cfg.in_channels, ", experts ", cfg.num_experts, ", fc ", cfg.fc_features, ")");
  MOESEG_CHECK((cfg.pool_h > 0) == (cfg.pool_w > 0), "gate: pool grid needs both pool_h and pool_w, got ", cfg.pool_h,
               "x", cfg.pool_w);
  in_features_ = cfg.pool_h > 0 ? cfg.pool_h * cfg.pool_w : cfg.in_h * cfg.in_w;
  MOESEG_CHECK(in_features_ >= 1, "gate: flatten size ", cfg.in_h, "x", cfg.in_w, " is empty");
  conv1 = register_module("conv1", std::make_shared<Conv2d>(cfg.in_channels, 1, 3, 1, 1, 1, 1, true, gen));
  fc1 = register_module("fc1", std::make_shared<Linear>(in_features_, cfg.fc_features, true, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(cfg.fc_features, cfg.num_experts, true, gen));
}

Tensor Gate::weights(const Tensor& x) { return softmax(logits(x), 2); }

Tensor SimpleGate::expert_logits(const Tensor& x) {
  check_dim(x, 4, "gate", "input");
  MOESEG_CHECK(x.size(1) == cfg_.in_channels, "gate: input ", x.str(), " has ", x.size(1),
               " channels, the gate was built for ", cfg_.in_channels, " (the experts' concatenated taps)");
  Tensor h = relu(conv1->forward(x));
  if (cfg_.pool_h > 0) h = adaptive_avg_pool2d(h, cfg_.pool_h, cfg_.pool_w);
  const int64_t features = h.size(2) * h.size(3);
  MOESEG_CHECK(features == in_features_, "gate: flattened gate map has ", features, " features (", h.size(2), "x",
               h.size(3), ") but fc1 expects ", in_features_, " (", cfg_.in_h, "x", cfg_.in_w,
               "): this fixed-size gate is tied to one input size; use the input size it was built for or a "
               "resolution-independent gate (pool grid)");
  h = h.reshape({h.size(0), features});
  h = relu(fc1->forward(h));
  return fc2->forward(h);
}

Tensor SimpleGate::logits(const Tensor& x) { return expert_logits(x).unsqueeze(1); }

ClasswiseGate::ClasswiseGate(const GateConfig& cfg, Generator& gen) : Gate("ClasswiseGate") {
  MOESEG_CHECK(cfg.num_classes >= 1, "class-wise gate: needs at least one class, got ", cfg.num_classes);
  auto list = register_module("gates", std::make_shared<Module>("ModuleList"));
  for (int64_t c = 0; c < cfg.num_classes; ++c)
    gates.push_back(list->register_module(std::to_string(c), std::make_shared<SimpleGate>(cfg, gen)));
}

Tensor ClasswiseGate::logits(const Tensor& x) {
  std::vector<Tensor> per_class;
  per_class.reserve(gates.size());
  for (auto& g : gates) per_class.push_back(g->expert_logits(x).unsqueeze(1));    // [B, 1, E]
  return concat(per_class, 1);                                                    // [B, C, E]
}

namespace {
const NamedValue<GateType> kGateTypeNames[] = {{GateType::Simple, "simple"}, {GateType::Classwise, "classwise"}};
}  // namespace

GateType parse_gate_type(const std::string& name, const std::string& where) {
  return parse_named(kGateTypeNames, name, where);
}
std::string to_string(GateType t) { return name_of(kGateTypeNames, t); }

std::shared_ptr<Gate> make_gate(const GateConfig& cfg) {
  Generator gen(cfg.seed);
  switch (cfg.type) {
    case GateType::Simple: return std::make_shared<SimpleGate>(cfg, gen);
    case GateType::Classwise: return std::make_shared<ClasswiseGate>(cfg, gen);
  }
  MOESEG_FAIL("gate: unknown type ", to_string(cfg.type));   // unreachable: to_string throws first
}

}  // namespace moeseg
