// `moeseg bench <what>`: runs a benchmark from bench/.
#include <cstdio>
#include <cstring>

#include "bench/attack_bench.h"
#include "bench/conv_bench.h"
#include "bench/model_bench.h"
#include "bench/moe_layer_bench.h"
#include "bench/synthetic_bench.h"
#include "tools/commands.h"

namespace moeseg::cli {

int run_bench(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help")) {
    std::printf("usage: moeseg bench conv [--quick] [--threads N]\n"
                "       moeseg bench frrn [options]   (FRRN-A forward and forward+backward vs PyTorch)\n"
                "       moeseg bench synthetic [--images N] [--threads N]   (synthetic scene generator)\n"
                "       moeseg bench attack [options]   (a PGD step vs a training step of the same model)\n"
                "       moeseg bench moe-layer [options]   (sparse MoE layers vs dense and all-experts-masked)\n"
                "  conv: 3x3 convolutions at the FRRN-A shapes, forward / backward-data / backward-weight\n"
                "        GFLOP/s next to the OpenBLAS sgemm rate measured in the same run\n"
                "  synthetic: the synthetic scene generator at 240x320, images/s and MB/s written next to a\n"
                "        plain file write of the same bytes, and the renderer alone\n");
    return argc < 2 ? 1 : 0;
  }
  if (!std::strcmp(argv[1], "conv")) return moeseg_bench_conv(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "frrn")) return moeseg_bench_model(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "synthetic")) return moeseg_bench_synthetic(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "attack")) return moeseg_bench_attack(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "moe-layer")) return moeseg_bench_moe_layer(argc - 1, argv + 1);
  std::fprintf(stderr, "moeseg bench: unknown benchmark '%s' (known: attack, conv, frrn, moe-layer, synthetic)\n", argv[1]);
  return 1;
}

}  // namespace moeseg::cli
