// `moeseg train CONFIG [--set key.path=value]... [--out DIR] [--resume] [--quiet]`: trains what
// the experiment config describes (expert, baseline or MoE gate; see training/trainer.h) into
// its run folder: last/ and best/ checkpoints, train_log.jsonl, loss.svg, miou.svg.
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cmd_training.h"
#include "training/trainer.h"

namespace moeseg::cli {

namespace {
void usage_train() {
  std::printf(
      "usage: moeseg train CONFIG [options]\n\n"
      "  --set KEY=VALUE   override a config value, e.g. --set train.epochs=3 (VALUE is JSON, else a string)\n"
      "  --out DIR         run folder (default: the config's \"out\", else runs/<name>)\n"
      "  --resume          continue from DIR/last (bit-exact on the CPU)\n"
      "  --device D        cpu, cuda or cuda:N (same as --set train.device=D; cuda without a GPU runs on the CPU)\n"
      "  --quiet           no progress output\n");
}
}  // namespace

int run_train(int argc, char** argv) {
  ensure_passive_omp_wait("train");
  std::string config;
  std::vector<std::string> sets;
  TrainOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage_train();
      return 0;
    } else if (a == "--resume") {
      opt.resume = true;
    } else if (a == "--quiet") {
      opt.quiet = true;
    } else if (a == "--device") {
      MOESEG_CHECK(i + 1 < argc, "train: --device needs a value");
      sets.push_back(std::string("train.device=") + argv[++i]);
    } else if (a == "--set" || a == "--out") {
      MOESEG_CHECK(i + 1 < argc, "train: ", a, " needs a value");
      sets.push_back(a == "--set" ? argv[++i] : std::string("out=") + argv[++i]);
    } else if (!a.empty() && a[0] == '-') {
      MOESEG_FAIL("train: unknown option ", a, " (see --help)");
    } else {
      MOESEG_CHECK(config.empty(), "train: more than one config given (", config, ", ", a, ")");
      config = a;
    }
  }
  if (config.empty()) {
    usage_train();
    return 1;
  }
  ExperimentConfig c = load_experiment_config(config, sets);
  TrainSummary s = train_experiment(c, opt);
  std::printf("%s: %lld epochs, %lld steps, best val mIoU %.2f%% (epoch %lld)%s, %.1f img/s, %.1fs -> %s\n",
              c.name.c_str(), static_cast<long long>(s.epochs_done), static_cast<long long>(s.steps), 100 * s.best_miou,
              static_cast<long long>(s.best_epoch), s.early_stopped ? ", early stop" : "", s.images_per_second,
              s.seconds, s.run_dir.c_str());
  return 0;
}

}  // namespace moeseg::cli
