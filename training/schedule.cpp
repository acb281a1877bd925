// Learning-rate schedules and gradient clipping.
#include "training/schedule.h"

#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace moeseg {

void validate(const ScheduleOptions& o) {
  MOESEG_CHECK(o.kind == "constant" || o.kind == "poly" || o.kind == "cosine" || o.kind == "step",
               "schedule: unknown kind '", o.kind, "' (constant, poly, cosine or step)");
  MOESEG_CHECK(o.base_lr >= 0, "schedule: base_lr must be >= 0, got ", o.base_lr);
  MOESEG_CHECK(o.total_steps > 0, "schedule: total_steps must be positive, got ", o.total_steps);
  MOESEG_CHECK(o.step_size > 0, "schedule: step_size must be positive, got ", o.step_size);
  MOESEG_CHECK(o.warmup_steps >= 0, "schedule: warmup_steps must be >= 0, got ", o.warmup_steps);
}

double learning_rate_at(const ScheduleOptions& o, int64_t step) {
  const double t = static_cast<double>(std::max<int64_t>(step, 0));
  const double T = static_cast<double>(o.total_steps);
  double lr = o.base_lr;
  if (o.kind == "poly") lr = o.base_lr * std::pow(std::max(0.0, 1.0 - t / T), o.power);
  else if (o.kind == "cosine") lr = o.eta_min + (o.base_lr - o.eta_min) * (1 + std::cos(M_PI * std::min(t, T) / T)) / 2;
  else if (o.kind == "step") lr = o.base_lr * std::pow(o.gamma, std::floor(t / static_cast<double>(o.step_size)));
  if (step < o.warmup_steps) lr *= o.warmup_factor + (1 - o.warmup_factor) * t / static_cast<double>(o.warmup_steps);
  return lr;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  double sq = 0;
  Tensor device_sq;   // on a CUDA device: the squares summed there, one copy to the host at the end
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!g.device().is_cpu()) {
      Tensor s = sum(mul(g, g));
      device_sq = device_sq.defined() ? add(device_sq, s) : s;
      continue;
    }
    Tensor gc = g.to(DType::Float64).contiguous();
    const double* d = gc.data<double>();
    for (int64_t i = 0; i < gc.numel(); ++i) sq += d[i] * d[i];
  }
  if (device_sq.defined()) sq += device_sq.item();
  const double norm = std::sqrt(sq);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (const Tensor& p : params)
      if (p.grad().defined()) mul_(p.grad(), coef);
  return norm;
}

}  // namespace moeseg
