// The studies of `moeseg reproduce --study NAME`: each is library code driven by a JSON study
// config in configs/studies/ (presets and the experiment template), so the main job, later
// studies and users who edit a config share one definition. The CLI only parses and calls.
// A study writes every model's experiment config to <out>/configs/, trains what is not trained
// yet (a finished run is skipped, an interrupted one resumed), evaluates, prints its table and
// writes <out>/results.json and <out>/report.html. With seeds > 1 every model is trained once per
// seed and each cell is mean ± std over the seeds (per-seed values in results.json).
#pragma once
#include <string>
#include <vector>

namespace moeseg {

struct StudyOptions {
  std::string study = "model_level_moe";
  std::string study_config;   // the JSON study config (the CLI passes configs/studies/<study>.json)
  std::string out = "runs/reproduce";
  std::string preset;         // "" = the study config's default for the dataset
  std::string dataset = "synthetic";
  std::string data_root;      // "" = generated (synthetic) or found (CamVid: ../shared/data/camvid)
  std::string from;           // a finished `moeseg reproduce` run whose models a study reuses (robustness)
  int epochs = -1, gate_epochs = -1;   // > 0: override the preset's
  int seeds = 1;
  bool fresh = false, quiet = false;
};

// The studies run_study knows, with a line each.
std::vector<std::pair<std::string, std::string>> known_studies();
// Runs one; returns the process exit code (0). Throws moeseg::Error naming what is wrong.
int run_study(const StudyOptions& opt);

}  // namespace moeseg
