// Learning-rate schedules as pure functions of the step (so a resumed run gets the same rate
// without saved scheduler state): poly, cosine, step, constant, each optionally after a linear
// warm-up, and gradient-norm clipping.
//   poly:   lr = base * (1 - t/T)^power                     (DeepLab / DynamicRouting style)
//   cosine: lr = eta_min + (base - eta_min) * (1 + cos(pi * t / T)) / 2   (CosineAnnealingLR)
//   step:   lr = base * gamma^floor(t / step_size)          (StepLR)
//   warm-up over W steps: lr *= warmup_factor + (1 - warmup_factor) * t / W for t < W
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace moeseg {

struct ScheduleOptions {
  std::string kind = "constant";   // constant | poly | cosine | step
  double base_lr = 0.01;
  int64_t total_steps = 1;         // T for poly and cosine
  double power = 0.9;              // poly
  double eta_min = 0.0;            // cosine
  int64_t step_size = 1;           // step
  double gamma = 0.1;              // step
  int64_t warmup_steps = 0;
  double warmup_factor = 0.001;    // lr multiplier at step 0 of the warm-up
};

// Throws naming the bad key (unknown kind, non-positive total_steps, ...).
void validate(const ScheduleOptions& o);
double learning_rate_at(const ScheduleOptions& o, int64_t step);

// Scales every gradient so that their global L2 norm is at most max_norm (PyTorch's
// clip_grad_norm_: coefficient max_norm / (norm + 1e-6), applied when below 1). Returns the norm
// before clipping. Parameters without a gradient are skipped.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace moeseg
