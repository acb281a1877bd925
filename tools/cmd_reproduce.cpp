// `moeseg reproduce [--study NAME] [--out DIR] [--preset NAME] [--dataset synthetic|camvid]
//  [--data ROOT] [--from RUN] [--epochs N] [--gate-epochs N] [--seeds N] [--fresh] [--quiet]`: a study of a
// reference system end to end (training/experiments/study.h), defined by its JSON study config
// (configs/studies/<study>.json, or --study-config FILE). The main job is the default study,
// model_level_moe, on the synthetic scenes.
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/cli_args.h"
#include "tools/cmd_training.h"
#include "training/experiments/study.h"

namespace moeseg::cli {

namespace {

std::string default_study_config(const std::string& study) {
  const std::string rel = "configs/studies/" + study + ".json";
#ifdef MOESEG_SOURCE_DIR
  if (std::filesystem::exists(std::string(MOESEG_SOURCE_DIR) + "/" + rel)) return std::string(MOESEG_SOURCE_DIR) + "/" + rel;
#endif
  return rel;   // relative to the working directory (an installed binary run from a checkout)
}

}  // namespace

int run_reproduce(int argc, char** argv) {
  ensure_passive_omp_wait("reproduce");
  StudyOptions o;
  std::string studies;
  for (auto& [name, line] : known_studies()) studies += "  " + name + ": " + line + "\n";
  ArgParser args("moeseg reproduce", "[--study NAME] [options]", "studies:\n" + studies);
  args.option("--study", &o.study, "NAME", "the study to run (default model_level_moe)")
      .option("--study-config", &o.study_config, "FILE", "the study's JSON config (default configs/studies/NAME.json)")
      .option("--out", &o.out, "DIR", "output folder (default runs/reproduce)")
      .option("--preset", &o.preset, "NAME", "a preset of the study config (default cpu; camvid-cpu for --dataset camvid)")
      .option("--dataset", &o.dataset, "D", "synthetic (default) or camvid")
      .option("--data", &o.data_root, "ROOT", "dataset root (default: generated synthetic scenes, ../shared/data/camvid)")
      .option("--from", &o.from, "RUN",
              "a finished `moeseg reproduce` run whose models a study reuses (robustness, uncertainty)")
      .option("--epochs", &o.epochs, "N", "expert and baseline epochs (overrides the preset)", 1)
      .option("--gate-epochs", &o.gate_epochs, "N", "gate epochs (overrides the preset)", 1)
      .option("--seeds", &o.seeds, "N", "train every model with N seeds; cells are mean ± std (default 1)", 1, 100)
      .flag("--fresh", &o.fresh, "retrain everything (else finished runs are skipped, interrupted ones resumed)")
      .flag("--quiet", &o.quiet, "no progress output");
  if (!args.parse(argc, argv)) return 0;
  if (o.study_config.empty()) o.study_config = default_study_config(o.study);
  return run_study(o);
}

}  // namespace moeseg::cli
