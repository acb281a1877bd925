// make_optimizer (training/optimizer_factory.h).
#include "training/optimizer_factory.h"

namespace moeseg {

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& o, NamedParameters params) {
  if (o.type == "sgd") {
    SGDOptions s;
    s.lr = o.lr;
    s.momentum = o.momentum;
    s.weight_decay = o.weight_decay;
    s.nesterov = o.nesterov;
    return std::make_unique<SGD>(std::move(params), s);
  }
  AdamOptions a;
  a.lr = o.lr;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.weight_decay = o.weight_decay;
  if (o.type == "adamw") return std::make_unique<AdamW>(std::move(params), a);
  return std::make_unique<Adam>(std::move(params), a);
}

}  // namespace moeseg
