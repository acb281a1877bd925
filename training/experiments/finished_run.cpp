// Loading a finished reproduce run's models (training/experiments/finished_run.h).
#include "training/experiments/finished_run.h"

#include <filesystem>

#include "core/device_probe.h"
#include "core/error.h"
#include "core/json_checks.h"
#include "training/experiment_setup.h"

namespace moeseg {

namespace fs = std::filesystem;
using json = nlohmann::json;

RunModel& FinishedRun::model(const std::string& name, const std::string& where) {
  for (RunModel& m : models)
    if (m.name == name) return m;
  std::string known;
  for (const RunModel& m : models) known += (known.empty() ? "" : ", ") + m.name;
  MOESEG_FAIL(where, ": '", name, "' is not a model of ", dir, " (its models: ", known, ")");
}

FinishedRun load_finished_run(const std::string& from, const std::string& where) {
  MOESEG_CHECK(!from.empty(), where,
               ": --from RUN is required: the folder of a finished `moeseg reproduce` run (e.g. runs/reproduce) whose "
               "nine models the study reuses; make one with `moeseg reproduce --out RUN` first");
  FinishedRun r;
  r.dir = fs::weakly_canonical(from).string();
  r.results = read_json_file(r.dir + "/results.json",
                             where + ": the results of the run given by --from (is it finished?)");
  const json& R = r.results;
  MOESEG_CHECK(R.value("study", "") == "model_level_moe" && R.contains("models") && R["models"].is_array() &&
                   !R["models"].empty(),
               where, ": ", r.dir, "/results.json is not the result of a model_level_moe run");
  r.preset = R.value("preset", "");
  r.seeds = R.value("seeds", 1);
  for (const json& m : R["models"]) {
    RunModel e;
    e.name = m.at("name").get<std::string>();
    e.title = m.at("title").get<std::string>();
    const std::string cfg = r.dir + "/configs/" + e.name + ".json";
    MOESEG_CHECK(fs::exists(cfg), where, ": ", cfg, " is missing (the run's config of ", e.title, ")");
    e.config = load_experiment_config(cfg);
    e.model = load_trained_experiment_model(e.config, "", &e.weights);
    e.model->to(resolve_device(e.config.train.device));
    r.models.push_back(std::move(e));
  }
  return r;
}

const json& choose_study_preset(const json& study, const std::string& study_path, const std::string& requested,
                                const std::string& run_preset, const std::string& where, std::string* chosen) {
  MOESEG_CHECK(study.contains("presets") && study["presets"].is_object(), where, ": ", study_path, " has no presets");
  std::string preset = requested;
  if (preset.empty()) preset = study["presets"].contains(run_preset) ? run_preset : "cpu";
  if (!study["presets"].contains(preset)) {
    std::string known;
    for (auto& [k, v] : study["presets"].items()) known += (known.empty() ? "" : ", ") + k;
    MOESEG_FAIL(where, ": unknown preset '", preset, "' (known: ", known, ")");
  }
  if (chosen) *chosen = preset;
  return study["presets"][preset];
}

}  // namespace moeseg
