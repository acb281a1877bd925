// model_bench.cpp — FRRN-A end-to-end benchmark, moeseg vs PyTorch on the CPU (see model_bench.h).
//
// forward  = eval mode, no autograd graph (inference);
// fwd+bwd  = train mode (batch statistics), cross-entropy loss, backward into every parameter.
// Each is the median of --reps timed runs after one warm-up. GFLOP/s counts the convolutions
// only (2 * MACs; backward = 2 x forward), computed from the network's table and input size.
// Memory, ours: the CPU caching allocator's peak of bytes held by live tensors during the phase
// (core/allocator.h), i.e. what the tensors needed. PyTorch's: growth of the process's peak
// resident set (ru_maxrss) over the baseline after model and input exist — it includes
// allocator slack and cached blocks, so it over-estimates compared with ours.
#include "bench/model_bench.h"
#include "bench/timing.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/cli_args.h"
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/cross_entropy.h"
#include "models/frrn.h"

namespace {

using moeseg::bench::Clock;
using moeseg::bench::median_seconds;
using moeseg::bench::seconds_since;

// Forward convolution FLOPs of FRRN (2 * MACs), from the scaled table.
double frrn_forward_flops(const moeseg::FRRN& net, int64_t n, int64_t h, int64_t w) {
  const auto& t = net.scaled_table();
  const double pc = t.pool_channels, zc = t.res_channels;
  auto at = [&](int64_t f) { return static_cast<double>((h + f - 1) / f) * static_cast<double>((w + f - 1) / f); };
  double macs = at(1) * (3 * pc * 25 + 6 * 2 * pc * pc * 9 + pc * zc);
  double ch = pc;
  auto stage = [&](const moeseg::FRRNStage& s) {
    for (int64_t u = 0; u < s.units; ++u) {
      const double in = u == 0 ? ch : s.channels;
      macs += at(s.factor) * ((in + zc) * s.channels * 9 + s.channels * s.channels * 9 + s.channels * zc);
    }
    ch = s.channels;
  };
  for (auto& s : t.encoder) stage(s);
  for (auto& s : t.decoder) stage(s);
  macs += at(1) * ((ch + zc) * pc + pc * net.num_classes());
  return 2.0 * macs * static_cast<double>(n);
}

double mib(size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

int moeseg_bench_model(int argc, char** argv) {
  using namespace moeseg;
  int64_t batch = 2, h = 240, w = 320, classes = 38;
  int reps = 3, threads = omp_get_max_threads();
  double width = 1.0;
  bool no_torch = false;
  ArgParser args("moeseg bench frrn", "[--batch B] [--height H] [--width W] [--classes C] [--reps R] [--threads N] "
                 "[--width-mult M] [--no-torch]",
                 "FRRN-A forward and forward+backward time, GFLOP/s and peak tensor memory, next to PyTorch's\n"
                 "(bench/frrn_torch_bench.py) when torch is importable.");
  args.option("--batch", &batch, "B", "batch size", 1, 4096)
      .option("--height", &h, "H", "input height", 1, 1 << 16)
      .option("--width", &w, "W", "input width", 1, 1 << 16)
      .option("--classes", &classes, "C", "classes", 1, 1 << 16)
      .option("--reps", &reps, "R", "timed repeats (median)", 1, 1000)
      .option("--threads", &threads, "N", "OpenMP threads", 1, 4096)
      .option("--width-mult", &width, "M", "channel width multiplier", 1e-3, 16.0)
      .flag("--no-torch", &no_torch, "skip the PyTorch comparison");
  if (!args.parse(argc, argv)) return 0;
  const bool torch = !no_torch;
  omp_set_num_threads(threads);   // OpenBLAS stays single-threaded (core/threading.h)

  FRRNConfig cfg;
  cfg.num_classes = classes;
  cfg.width = width;
  FRRN net(cfg);
  Generator gen(1);
  Tensor x = Tensor::empty({batch, 3, h, w});
  uniform_(x, 0.0, 1.0, gen);
  std::vector<int64_t> tv(static_cast<size_t>(batch * h * w));
  for (size_t i = 0; i < tv.size(); ++i) tv[i] = static_cast<int64_t>((i * 2654435761u) % classes);
  Tensor target = Tensor::from_vector(tv, {batch, h, w});
  const double flops = frrn_forward_flops(net, batch, h, w);

  std::printf("frrn bench: FRRN-A (width %.3g, %lld classes, %lld parameters), device cpu, dtype float32, "
              "input %lldx3x%lldx%lld, threads %d, median of %d\n",
              width, (long long)classes, (long long)net.num_parameters(), (long long)batch, (long long)h, (long long)w,
              threads, reps);

  auto& alloc = allocator_for(Device{});
  alloc.reset_peak();
  const size_t base = alloc.stats().allocated_bytes;
  const double t_fwd = median_seconds(
      [&] {
        net.eval();
        NoGradGuard ng;
        net.forward(x);
      },
      reps);
  const size_t peak_fwd = alloc.stats().peak_allocated_bytes - base;
  alloc.reset_peak();
  const double t_bwd = median_seconds(
      [&] {
        net.train();
        net.zero_grad();
        cross_entropy(net.forward(x), target).backward();
      },
      reps);
  // Gradients of the last run are still held; they are part of a training step's footprint.
  const size_t peak_bwd = alloc.stats().peak_allocated_bytes - base;

  std::printf("moeseg  forward  %8.3f s  %6.1f GFLOP/s  peak tensors %8.1f MiB\n", t_fwd, flops / t_fwd * 1e-9,
              mib(peak_fwd));
  std::printf("moeseg  fwd+bwd  %8.3f s  %6.1f GFLOP/s  peak tensors %8.1f MiB\n", t_bwd, 3 * flops / t_bwd * 1e-9,
              mib(peak_bwd));

  if (!torch) return 0;
  if (std::system("python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    std::printf("torch: not importable by python3, comparison skipped\n");
    return 0;
  }
  // The script sits next to this file in the source tree; run from the repository root.
  char cmd[512];
  std::snprintf(cmd, sizeof(cmd),
                "python3 bench/frrn_torch_bench.py --threads %d --batch %lld --height %lld --width %lld "
                "--classes %lld --reps %d --width-mult %g 2>&1",
                threads, (long long)batch, (long long)h, (long long)w, (long long)classes, reps, width);
  FILE* p = popen(cmd, "r");
  if (!p) {
    std::fprintf(stderr, "moeseg bench frrn: cannot start python3\n");
    return 1;
  }
  std::map<std::string, std::string> kv;
  std::array<char, 512> line{};
  std::string raw;
  while (fgets(line.data(), line.size(), p)) {
    raw += line.data();
    std::string s(line.data());
    auto sp = s.find(' ');
    if (sp != std::string::npos) kv[s.substr(0, sp)] = s.substr(sp + 1, s.find_last_not_of("\r\n") - sp);
  }
  const int rc = pclose(p);
  if (rc != 0 || !kv.count("torch_forward_s") || !kv.count("torch_fwdbwd_s")) {
    std::printf("torch: bench/frrn_torch_bench.py failed (run from the repository root):\n%s", raw.c_str());
    return 1;
  }
  const double tf = std::atof(kv["torch_forward_s"].c_str()), tb = std::atof(kv["torch_fwdbwd_s"].c_str());
  std::printf("torch %s forward  %8.3f s  %6.1f GFLOP/s  peak RSS growth %6.1f MiB\n", kv["torch_version"].c_str(), tf,
              flops / tf * 1e-9, std::atof(kv["torch_forward_rss_mib"].c_str()));
  std::printf("torch %s fwd+bwd  %8.3f s  %6.1f GFLOP/s  peak RSS growth %6.1f MiB\n", kv["torch_version"].c_str(), tb,
              3 * flops / tb * 1e-9, std::atof(kv["torch_fwdbwd_rss_mib"].c_str()));
  std::printf("ratio moeseg/torch: forward %.2fx, fwd+bwd %.2fx (time; > 1 = moeseg slower)\n", t_fwd / tf, t_bwd / tb);
  return 0;
}
