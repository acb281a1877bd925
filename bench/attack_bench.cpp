// `moeseg bench attack` (bench/attack_bench.h). Each time is the median of --reps timed runs after
// one warm-up; the PGD step time is a --steps-step run of training/attacks.h's pgd() divided by
// the steps (its random start included); "weights frozen" is the same with the parameters'
// requires_grad off (training/robustness.h FrozenParameters), as the robustness evaluation runs it.
// The model-level MoE trains its gate with frozen experts, so its training step has no backward
// through the experts while any attack needs one (∇x passes through them): against that step a
// PGD step must cost about 2x. The third row compares with the step that does the same backward,
// the MoE trained end to end (experts unfrozen, as the reference's joint configs train it).
#include "bench/attack_bench.h"
#include "bench/timing.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/cli_args.h"
#include "core/rng.h"
#include "kernels/cross_entropy.h"
#include "models/registry.h"
#include "training/attacks.h"
#include "training/optimizer.h"
#include "training/robustness.h"

namespace {

using moeseg::bench::Clock;
using moeseg::bench::median_seconds;
using moeseg::bench::seconds_since;

}  // namespace

int moeseg_bench_attack(int argc, char** argv) {
  using namespace moeseg;
  int64_t batch = 8, h = 64, w = 96, classes = 38;
  int reps = 3, steps = 10, threads = omp_get_max_threads();
  double width = 0.125;
  ArgParser args("moeseg bench attack", "[--batch B] [--height H] [--width W] [--width-mult M] [--reps R] [--steps K] [--threads N]",
                 "One reference PGD step vs one training step of the same model (FRRN-A expert, simple-gate MoE).");
  args.option("--batch", &batch, "B", "batch size", 1, 4096)
      .option("--height", &h, "H", "input height (a multiple of 16)", 16, 1 << 16)
      .option("--width", &w, "W", "input width (a multiple of 16)", 16, 1 << 16)
      .option("--width-mult", &width, "M", "FRRN-A channel width multiplier", 1e-3, 16.0)
      .option("--reps", &reps, "R", "timed repeats (median)", 1, 1000)
      .option("--steps", &steps, "K", "PGD steps per timed run", 1, 1000)
      .option("--threads", &threads, "N", "OpenMP threads", 1, 4096);
  if (!args.parse(argc, argv)) return 0;
  omp_set_num_threads(threads);
  Generator gen(1);
  Tensor x = Tensor::empty({batch, 3, h, w});
  uniform_(x, 0.0, 1.0, gen);
  std::vector<int64_t> tv(static_cast<size_t>(batch * h * w));
  for (size_t i = 0; i < tv.size(); ++i) tv[i] = static_cast<int64_t>((i * 2654435761u) % classes);
  const Tensor y = Tensor::from_vector(tv, {batch, h, w});
  const nlohmann::json expert = {{"model", "frrn_a"}, {"num_classes", classes}, {"width", width}, {"seed", 1}};
  nlohmann::json expert2 = expert;
  expert2["seed"] = 2;
  const nlohmann::json models[] = {
      expert,
      {{"type", "moe"}, {"num_classes", classes}, {"gate", "simple"}, {"input_size", {h, w}},
       {"experts", {expert, expert2}}},
      {{"type", "moe"}, {"num_classes", classes}, {"gate", "simple"}, {"input_size", {h, w}},
       {"experts", {expert, expert2}}}};
  const char* names[] = {"FRRN-A expert", "MoE simple (2 FRRN-A), gate training step",
                         "MoE simple (2 FRRN-A), end-to-end training step"};
  std::printf("attack bench: device cpu, dtype float32, input %lldx3x%lldx%lld, FRRN-A width %.3g, %lld classes, "
              "threads %d, median of %d; PGD = reference variant, %d steps per run\n",
              (long long)batch, (long long)h, (long long)w, width, (long long)classes, threads, reps, steps);
  std::printf("| Model | training step (ms) | PGD step (ms) | PGD step, weights frozen (ms) | ratio | ratio, frozen | "
              "limit |\n|---|---:|---:|---:|---:|---:|---:|\n");
  for (int m = 0; m < 3; ++m) {
    auto model = make_model_from_config(models[m]);
    if (m == 2) model->unfreeze();   // every weight trainable
    NamedParameters params;
    for (auto& [n, p] : model->named_parameters())
      if (p.requires_grad()) params.emplace_back(n, p);
    AdamOptions ao;
    ao.lr = 1e-4;
    Adam adam(params, ao);
    const double t_train = median_seconds(
        [&] {
          model->train();
          adam.zero_grad();
          Tensor loss = cross_entropy(model->forward(x), y);
          loss.backward();
          adam.step();
        },
        reps);
    PgdOptions po;
    po.eps = 0.1;
    po.steps = steps;
    po.clamp_01 = true;
    const double t_pgd = median_seconds([&] { pgd(*model, x, y, po); }, reps) / steps;
    double t_frozen = 0;
    {
      FrozenParameters frozen(*model);   // as training/robustness.cpp runs attacks
      t_frozen = median_seconds([&] { pgd(*model, x, y, po); }, reps) / steps;
    }
    std::printf("| %s | %.1f | %.1f | %.1f | %.2fx | %.2fx | 1.20x |\n", names[m], 1e3 * t_train, 1e3 * t_pgd,
                1e3 * t_frozen, t_pgd / t_train, t_frozen / t_train);
  }
  return 0;
}
