// conv_bench.cpp — benchmark of the CPU conv2d kernels (forward, backward-data,
// backward-weight) at the FRRN-A 3x3 shapes (240x320 input, batch 2), float32.
//
// The ceiling is a big square OpenBLAS sgemm (M=N=K=2048) with the same thread count, measured
// first in the same process. Each pass reports the median of several timed repeats after one
// warm-up; FLOPs = 2*n*c_out*h_out*w_out*(c_in/groups)*kh*kw per pass. Correctness of the
// kernels is tested in tests/kernels/test_conv2d_cpu.cpp, not here.
// Run: `moeseg bench conv [--quick] [--threads N] [--tile-bytes B] [--min-width PIXELS]`.
#include "bench/conv_bench.h"
#include "bench/timing.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cli_args.h"
#include "kernels/conv2d_cpu.h"

namespace {

using moeseg::bench::Clock;
using moeseg::bench::median_seconds;
using moeseg::bench::seconds_since;

std::vector<float> random_floats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& e : v) e = u(rng);
  return v;
}

struct Shape {
  int64_t c_in, c_out, h, w;
};

}  // namespace

int moeseg_bench_conv(int argc, char** argv) {
  using namespace moeseg::cpu;
  bool quick = false;
  int64_t tile_bytes = 0, min_width = 0;
  int threads = omp_get_max_threads();
  moeseg::ArgParser args("moeseg bench conv", "[--quick] [--threads N] [--tile-bytes B] [--min-width PIXELS]",
                         "3x3 convolutions at the FRRN-A shapes, forward / backward-data / backward-weight GFLOP/s next\n"
                         "to the OpenBLAS sgemm rate measured in the same run.");
  args.flag("--quick", &quick, "fewer repeats")
      .option("--threads", &threads, "N", "OpenMP and OpenBLAS threads", 1, 4096)
      .option("--tile-bytes", &tile_bytes, "B", "conv working-set tile size in bytes (0: the default)", 1, int64_t{1} << 40)
      .option("--min-width", &min_width, "PIXELS", "narrowest row the tiling keeps", 1, int64_t{1} << 20);
  if (!args.parse(argc, argv)) return 0;
  conv2d_set_tile_bytes(static_cast<size_t>(tile_bytes), min_width);
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  const int repeats = quick ? 3 : 7;

  // Ceiling: threaded OpenBLAS sgemm on square 2048 matrices.
  double sgemm_gflops;
  {
    const int n = 2048;
    auto a = random_floats((size_t)n * n, 1), b = random_floats((size_t)n * n, 2);
    std::vector<float> c((size_t)n * n);
    const double t = median_seconds(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n,
                      b.data(), n, 0.0f, c.data(), n);
        },
        quick ? 3 : 5);
    sgemm_gflops = 2.0 * n * n * n / t * 1e-9;
    // The ceiling comes first (outside checks read it from line 1), with the run's settings.
    std::printf("sgemm: %.1f GFLOP/s (OpenBLAS, M=N=K=2048, device cpu, dtype float32, %d threads, "
                "im2col tile %zu KiB min %lld px, %s)\n",
                sgemm_gflops, threads, conv2d_tile_bytes() / 1024, min_width > 0 ? min_width : 256LL,
                quick ? "quick" : "full");
  }

  // FRRN-A at 240x320, batch 2: the RU at full resolution, then each FRRU's first conv
  // (pooled stream + 32-channel residual stream concatenated) and its second conv.
  const Shape shapes[] = {
      {48, 48, 240, 320},  {128, 96, 120, 160}, {96, 96, 120, 160},
      {224, 192, 60, 80},  {192, 192, 60, 80},  {416, 384, 30, 40},
      {384, 384, 30, 40},  {416, 384, 15, 20},  {384, 384, 15, 20},
  };
  double worst_pct = 1e30;
  std::string worst_line;
  const auto t_start = Clock::now();
  for (const Shape& s : shapes) {
    const Conv2dGeometry g{2, s.c_in, s.h, s.w, s.c_out, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    const int64_t ho = g.h_out(), wo = g.w_out();
    auto x = random_floats(g.n * g.c_in * g.h_in * g.w_in, 3);
    auto w = random_floats(g.c_out * g.c_in * 9, 4);
    for (auto& e : w) e *= 0.05f;
    auto dy = random_floats(g.n * g.c_out * ho * wo, 5);
    std::vector<float> y(dy.size()), dx(x.size()), dw(w.size());
    const double flops = 2.0 * g.n * g.c_out * ho * wo * (g.c_in / g.groups) * g.kh * g.kw;

    struct Pass {
      const char* name;
      double sec;
    } passes[3] = {
        {"forward", median_seconds([&] { conv2d_forward(g, x.data(), w.data(), (const float*)nullptr, false, y.data()); }, repeats)},
        {"backward-data", median_seconds([&] { conv2d_backward_data(g, dy.data(), w.data(), dx.data()); }, repeats)},
        {"backward-weight", median_seconds([&] { conv2d_backward_weight(g, x.data(), dy.data(), dw.data(), (float*)nullptr); }, repeats)},
    };
    for (const Pass& p : passes) {
      const double gf = flops / p.sec * 1e-9, pct = 100.0 * gf / sgemm_gflops;
      char line[256];
      std::snprintf(line, sizeof line,
                    "conv3x3 n=%lld c_in=%lld c_out=%lld h=%lld w=%lld %-16s %8.2f ms %7.1f GFLOP/s %4.0f%% of sgemm",
                    (long long)g.n, (long long)g.c_in, (long long)g.c_out, (long long)g.h_in,
                    (long long)g.w_in, p.name, p.sec * 1e3, gf, pct);
      std::printf("%s\n", line);
      if (pct < worst_pct) {
        worst_pct = pct;
        worst_line = line;
      }
    }
    std::fflush(stdout);
  }
  // Summary on stderr so that every stdout line after the first is one shape and pass.
  std::fprintf(stderr, "lowest: %s; conv total %.1f s\n", worst_line.c_str(), seconds_since(t_start));
  return 0;
}
