// The `moeseg` command line: one binary, subcommands dispatched from a table.
// Every subcommand catches moeseg::Error at the top, prints one line and exits non-zero.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cmd_data.h"
#include "tools/cmd_kernels.h"
#include "tools/cmd_models.h"
#include "tools/cmd_predict.h"
#include "tools/cmd_training.h"
#include "tools/commands.h"

namespace {

struct Command {
  const char* name;
  const char* help;
  int (*run)(int argc, char** argv);
};

const std::vector<Command>& commands() {
  static const std::vector<Command> c = {
      {"bench", "benchmarks: `moeseg bench conv [--quick]`", moeseg::cli::run_bench},
      {"reproduce", "the reference experiment end to end: experts, baseline, ensembles, four MoEs, the table",
       moeseg::cli::run_reproduce},
      {"train", "train a model from a JSON config: `moeseg train CONFIG [--set key=value] [--resume]`",
       moeseg::cli::run_train},
      {"eval", "evaluate a trained model per test subset: `moeseg eval CONFIG [--data ROOT] [--list FILE]`",
       moeseg::cli::run_eval},
      {"predict", "a trained model's predictions as PNGs (labels, overlay, gate, disagreement): `moeseg predict CONFIG [IMAGE...] --out DIR`",
       moeseg::cli::run_predict},
      {"ops", "list every op of the op table", moeseg::cli::run_ops},
      {"model", "model tools: `moeseg model summary|trace --model NAME --classes N` (layers and shapes; one traced MoE pass)",
       moeseg::cli::run_model},
      {"infer", "run a model on an input tensor: `moeseg infer --model NAME --classes N --weights W --input X --out Y`",
       moeseg::cli::run_infer},
      {"attack", "adversarial attack on an input tensor: `moeseg attack --model NAME --classes N --weights W --input X --labels Y --attack fgsm|pgd --eps E --out OUT`",
       moeseg::cli::run_attack},
      {"uncertainty", "per-pixel uncertainty and calibration metrics: `moeseg uncertainty --model NAME --classes N --weights W --input X --labels Y --out OUT`",
       moeseg::cli::run_uncertainty},
      {"kernels", "list every __global__ CUDA kernel with the test that runs it through CUDA-on-CPU",
       moeseg::cli::run_kernels},
      {"data", "dataset tools: `moeseg data synth --out DIR ...` writes the synthetic driving scenes",
       moeseg::cli::run_data},
  };
  return c;
}

void usage() {
  std::printf("usage: moeseg <command> [options]\n\ncommands:\n");
  for (auto& c : commands()) std::printf("  %-12s %s\n", c.name, c.help);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 1 : 0;
  }
  for (auto& c : commands()) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const moeseg::Error& e) {
      std::fprintf(stderr, "moeseg %s: error: %s\n", c.name, e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "moeseg %s: unexpected error: %s\n", c.name, e.what());
      return 3;
    }
  }
  std::fprintf(stderr, "moeseg: unknown command '%s'\n", argv[1]);
  usage();
  return 1;
}
