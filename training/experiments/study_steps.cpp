// Steps every study shares (training/experiments/study_steps.h).
#include "training/experiments/study_steps.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/json_checks.h"
#include "core/wall_clock.h"
#include "data/synthetic_scenes.h"
#include "training/checkpoint.h"

namespace moeseg {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The generator's options from a synthetic preset ("height", "width" and its "synthetic" section),
// typed and range-checked; `where` names the study config and the preset.
data::SynthOptions synthetic_options(const json& P, const std::string& root, const std::string& where) {
  MOESEG_CHECK(P.contains("synthetic"), where, ": missing key 'synthetic' (the generator's image counts)");
  const json& s = P.at("synthetic");
  const std::string ws = where + ".synthetic";
  check_keys(s, {"train", "val", "test", "seed", "comment"}, ws);
  constexpr int64_t kMaxImages = 1 << 24;   // per domain and split: far above any run, far below int
  data::SynthOptions so;
  so.out = root;
  so.seed = get_or<uint64_t>(s, "seed", 1, ws);
  so.height = static_cast<int>(get_required_int_in(P, "height", 16, 65535, where));
  so.width = static_cast<int>(get_required_int_in(P, "width", 16, 65535, where));
  so.train = static_cast<int>(get_required_int_in(s, "train", 0, kMaxImages, ws));
  so.val = static_cast<int>(get_required_int_in(s, "val", 0, kMaxImages, ws));
  so.test = static_cast<int>(get_required_int_in(s, "test", 0, kMaxImages, ws));
  return so;
}

// Resume a run interrupted with this very config; start afresh over anything else.
bool resumable(const ExperimentConfig& c) {
  return checkpoint_exists(c.out + "/last") && read_checkpoint_meta(c.out + "/last").config_hash == config_hash(c);
}

}  // namespace

const json& preset_of(const json& study, const std::string& name) {
  MOESEG_CHECK(study.contains("presets") && study["presets"].is_object(), "reproduce: the study config has no presets");
  if (!study["presets"].contains(name)) {
    std::string known;
    for (auto& [k, v] : study["presets"].items()) known += (known.empty() ? "" : ", ") + k;
    MOESEG_FAIL("reproduce: unknown preset '", name, "' (known: ", known, ")");
  }
  return study["presets"][name];
}

std::string find_camvid_root() {
  // "../shared/data/camvid relative to the repo": try from the working directory upwards.
  for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
    for (const char* rel : {"../shared/data/camvid", "shared/data/camvid"})
      if (fs::exists(p / rel / "train.txt")) return fs::weakly_canonical(p / rel).string();
    if (p == p.parent_path()) break;
  }
  MOESEG_FAIL("reproduce: CamVid not found (looked for ../shared/data/camvid/train.txt); pass --data ROOT");
}

std::string prepare_synthetic_data(const json& P, const std::string& root, const std::string& where, json& timings) {
  const data::SynthOptions so = synthetic_options(P, root, where);   // checked even when the data exists
  const fs::path marker = fs::path(root) / "splits" / "highway_train_gt.txt";
  const bool stale = fs::exists(marker) && data::synthetic_tree_version(root) != data::kSynthGeneratorVersion;
  if (stale)
    std::printf("[reproduce] %s was made by an older synthetic generator (version %d, now %d): regenerating\n",
                root.c_str(), data::synthetic_tree_version(root), data::kSynthGeneratorVersion);
  if (!fs::exists(marker) || stale) {
    const auto t = std::chrono::steady_clock::now();
    data::SynthReport r = data::generate_synthetic_a2d2(so);
    timings["data"] = seconds_since(t);
    std::printf("[reproduce] generated %d synthetic images (%dx%d) into %s in %.1fs\n", r.images, so.height, so.width,
                root.c_str(), r.seconds);
  } else {
    std::printf("[reproduce] using the synthetic data in %s\n", root.c_str());
  }
  return fs::weakly_canonical(root).string();
}

bool study_model_finished(const ExperimentConfig& c) {
  if (!checkpoint_exists(c.out + "/last") || !checkpoint_exists(c.out + "/best")) return false;
  CheckpointMeta m = read_checkpoint_meta(c.out + "/last");
  return m.epoch >= c.train.epochs && m.config_hash == config_hash(c);
}

void train_study_model(const ExperimentConfig& c, const TrainOptions& topt, const std::string& title) {
  if (study_model_finished(c)) {
    std::printf("[reproduce] %s: already trained (%s), skipped\n", title.c_str(), c.out.c_str());
    return;
  }
  TrainOptions o = topt;
  o.resume = resumable(c);
  o.overwrite = !o.resume;
  std::printf("[reproduce] %s %s (%s)\n", o.resume ? "resuming" : "training", title.c_str(), c.name.c_str());
  std::fflush(stdout);
  TrainSummary sum = train_experiment(c, o);
  std::printf("[reproduce] %s: best val mIoU %.2f%% at epoch %lld, %.1f img/s, %.1fs\n", title.c_str(),
              100 * sum.best_miou, static_cast<long long>(sum.best_epoch), sum.images_per_second, sum.seconds);
}

}  // namespace moeseg
