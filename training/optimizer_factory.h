// The optimiser a config's train.optimizer section names (sgd, adam, adamw), over the given
// named parameters. Used by the trainer; the optimisers themselves are in training/optimizer.h.
#pragma once
#include <memory>

#include "training/experiment_config.h"
#include "training/optimizer.h"

namespace moeseg {

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& o, NamedParameters params);

}  // namespace moeseg
