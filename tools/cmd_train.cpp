// `moeseg train CONFIG [--set key.path=value]... [--out DIR] [--resume | --overwrite] [--quiet]`: trains what
// the experiment config describes (expert, baseline or MoE gate; see training/trainer.h) into
// its run folder: last/ and best/ checkpoints, train_log.jsonl, loss.svg, miou.svg.
#include <cstdio>
#include <string>
#include <vector>

#include "core/cli_args.h"
#include "core/error.h"
#include "tools/cmd_training.h"
#include "training/trainer.h"

namespace moeseg::cli {

int run_train(int argc, char** argv) {
  ensure_passive_omp_wait("train");
  std::vector<std::string> configs, sets;
  TrainOptions opt;
  ArgParser args("moeseg train", "CONFIG [options]",
                 "Trains what the experiment config describes into its run folder.");
  args.positionals(&configs, "CONFIG", 1, 1)
      .repeated("--set", &sets, "KEY=VALUE", "override a config value, e.g. --set train.epochs=3 (VALUE is JSON, else a string)")
      .action("--out", "DIR", "run folder (default: the config's \"out\", else runs/<name>)",
              [&](const std::string& v) { sets.push_back("out=" + v); })
      .flag("--resume", &opt.resume, "continue the run in DIR/last (bit-exact on the CPU)")
      .flag("--overwrite", &opt.overwrite, "start afresh in a run folder that already holds a run")
      .action("--device", "D", "cpu, cuda or cuda:N (same as --set train.device=D; cuda without a GPU runs on the CPU)",
              [&](const std::string& v) { sets.push_back("train.device=" + v); })
      .flag("--quiet", &opt.quiet, "no progress output");
  if (!args.parse(argc, argv)) return 0;
  MOESEG_CHECK(!(opt.resume && opt.overwrite), "moeseg train: --resume and --overwrite exclude each other");
  const std::string config = configs[0];
  ExperimentConfig c = load_experiment_config(config, sets);
  TrainSummary s = train_experiment(c, opt);
  std::printf("%s: %lld epochs, %lld steps, best val mIoU %.2f%% (epoch %lld)%s, %.1f img/s, %.1fs -> %s\n",
              c.name.c_str(), static_cast<long long>(s.epochs_done), static_cast<long long>(s.steps), 100 * s.best_miou,
              static_cast<long long>(s.best_epoch), s.early_stopped ? ", early stop" : "", s.images_per_second,
              s.seconds, s.run_dir.c_str());
  return 0;
}

}  // namespace moeseg::cli
