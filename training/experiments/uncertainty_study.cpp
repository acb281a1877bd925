// The uncertainty study (training/experiments/uncertainty_study.h).
#include "training/experiments/uncertainty_study.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_checks.h"
#include "core/safetensors.h"
#include "core/wall_clock.h"
#include "data/corruptions.h"
#include "training/experiments/finished_run.h"
#include "training/report.h"
#include "training/uncertainty_evaluation.h"

namespace moeseg {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

UncertaintyCondition parse_condition(const json& C, const std::string& w) {
  check_keys(C, {"name", "subsets", "corruptions", "severity", "seed"}, w);
  UncertaintyCondition c;
  c.name = get_required<std::string>(C, "name", w);
  c.subsets = get_required_strings(C, "subsets", w);
  if (C.contains("corruptions")) {
    std::vector<std::string> names;
    if (C["corruptions"].is_string() && C["corruptions"].get<std::string>() == "all") {
      for (data::Corruption k : data::all_corruptions()) c.corruptions.push_back(k);
    } else {
      for (const std::string& n : get_required_strings(C, "corruptions", w))
        c.corruptions.push_back(data::parse_corruption(n, w + ".corruptions"));
    }
    c.severity = static_cast<int>(get_required_int_in(C, "severity", data::kMinCorruptionSeverity,
                                                      data::kMaxCorruptionSeverity, w));
  }
  c.seed = get_or<uint64_t>(C, "seed", 0, w);
  return c;
}

UncertaintyRowSpec parse_row(const json& R, FinishedRun& run, const std::string& w) {
  check_keys(R, {"model", "members", "gate_reduction", "mc_dropout", "measures", "comment"}, w);
  UncertaintyRowSpec r;
  r.model = get_required<std::string>(R, "model", w);
  const std::string title = run.model(r.model, w).title;
  r.measures = get_required_strings(R, "measures", w);
  r.reduction = parse_gate_reduction(get_or<std::string>(R, "gate_reduction", "predicted", w), w + ".gate_reduction");
  if (R.contains("mc_dropout")) {
    MOESEG_CHECK(!R.contains("members"), w, ": a row has either 'members' or 'mc_dropout', not both");
    const json& M = R["mc_dropout"];
    const std::string mw = w + ".mc_dropout";
    check_keys(M, {"rate", "samples", "seed"}, mw);
    r.mc_dropout = true;
    r.mc_rate = get_required<double>(M, "rate", mw);
    MOESEG_CHECK(r.mc_rate >= 0 && r.mc_rate < 1, mw, ": key 'rate' is ", r.mc_rate, ", outside [0, 1)");
    r.mc_samples = static_cast<int>(get_required_int_in(M, "samples", 1, 1000, mw));
    r.mc_seed = get_or<uint64_t>(M, "seed", 0, mw);
    char b[96];
    std::snprintf(b, sizeof b, " · MC-dropout p=%g, %d samples", r.mc_rate, r.mc_samples);
    r.members = title + b;
  } else {
    r.set = parse_member_set(get_required<std::string>(R, "members", w), w + ".members");
    r.members = title + " · " + member_set_name(r.set);
    if (r.set != MemberSet::Stacked && R.contains("gate_reduction"))
      r.members += std::string(" (") + gate_reduction_name(r.reduction) + ")";
  }
  return r;
}

}  // namespace

int run_uncertainty_study(const StudyOptions& opt) {
  const std::string where = "reproduce --study uncertainty";
  MOESEG_CHECK(opt.seeds == 1, where, ": --seeds does not apply (the study uses seed 0's models of --from)");
  const auto t0 = std::chrono::steady_clock::now();
  FinishedRun run = load_finished_run(opt.from, where);
  const json S = read_json_file(opt.study_config, where + ": the study config");
  std::string preset;
  const json& P = choose_study_preset(S, opt.study_config, opt.preset, run.preset, where, &preset);
  const std::string pw = opt.study_config + ": presets." + preset;
  check_keys(P, {"comment", "max_test", "batch", "pavpu_threshold", "conditions", "rows"}, pw);
  UncertaintyEvalOptions eo;
  eo.max_images = static_cast<int>(get_required_int_in(P, "max_test", 0, 1 << 24, pw));
  eo.batch = static_cast<int>(get_required_int_in(P, "batch", 1, 4096, pw));
  eo.pavpu_threshold = get_or<double>(P, "pavpu_threshold", 0.49, pw);
  eo.quiet = opt.quiet;
  MOESEG_CHECK(P.contains("conditions") && P["conditions"].is_array() && !P["conditions"].empty(), pw,
               ": key 'conditions' must be a non-empty list");
  MOESEG_CHECK(P.contains("rows") && P["rows"].is_array() && !P["rows"].empty(), pw,
               ": key 'rows' must be a non-empty list");
  std::vector<UncertaintyCondition> conditions;
  for (size_t i = 0; i < P["conditions"].size(); ++i)
    conditions.push_back(parse_condition(P["conditions"][i], pw + ".conditions[" + std::to_string(i) + "]"));
  std::vector<UncertaintyRowSpec> rows;
  std::map<std::string, SegmentationModel*> models;
  for (size_t i = 0; i < P["rows"].size(); ++i) {
    rows.push_back(parse_row(P["rows"][i], run, pw + ".rows[" + std::to_string(i) + "]"));
    models[rows.back().model] = run.model(rows.back().model, where).model.get();
  }
  const DataConfig& data = run.model(rows.front().model, where).config.data;
  std::printf("[uncertainty] models of %s (preset %s%s), study preset %s\n", run.dir.c_str(), run.preset.c_str(),
              run.seeds > 1 ? (", " + std::to_string(run.seeds) + " seeds: seed 0's models are used").c_str() : "",
              preset.c_str());

  const std::string out = [&] {
    fs::create_directories(opt.out);
    return fs::weakly_canonical(opt.out).string();
  }();
  json timings = json::object(), jconds = json::array();
  std::vector<HtmlSection> sections;
  std::string printed;
  for (const UncertaintyCondition& c : conditions) {
    const auto t = std::chrono::steady_clock::now();
    UncertaintyEvalOptions o = eo;
    if (c.corruptions.empty()) o.pictures_dir = out + "/pictures/" + c.name;
    const std::vector<UncertaintyCell> cells = evaluate_uncertainty(models, data, rows, c, o);
    const TextTable table = uncertainty_table(cells);
    const json jcells = uncertainty_cells_json(cells);
    HtmlSection pics{"Pictures: " + c.name, "", {}, {}, {}};
    for (const UncertaintyCell& k : cells)
      for (auto& [caption, file] : k.pictures) pics.images.emplace_back(caption, "pictures/" + c.name + "/" + file);
    const std::string md = markdown_table(table);
    json corr = json::array();
    for (data::Corruption k : c.corruptions) corr.push_back(data::to_string(k));
    jconds.push_back({{"name", c.name}, {"subsets", c.subsets}, {"corruptions", corr}, {"severity", c.severity},
                      {"cells", jcells}, {"markdown", md}});
    timings[c.name] = seconds_since(t);
    if (!opt.quiet) std::printf("[uncertainty] condition %s: %.1fs\n", c.name.c_str(), seconds_since(t));
    printed += "condition: " + c.name + "\n\n" + md + "\n";
    std::string what = "Test subsets";
    for (const std::string& s : c.subsets) what += " " + s;
    if (!c.corruptions.empty())
      what += ", every image under each of the " + std::to_string(c.corruptions.size()) + " corruptions at severity " +
              std::to_string(c.severity) + "; the scores are the means over the corruptions";
    sections.push_back({"condition: " + c.name, what + ".", {table}, {}, {}});
    if (!pics.images.empty()) {
      pics.images.insert(pics.images.begin(), {{"input (image 0)", "pictures/" + c.name + "/input_0.png"},
                                               {"labels (image 0)", "pictures/" + c.name + "/labels_0.png"}});
      sections.push_back(pics);
    }
  }
  const double total = seconds_since(t0);
  timings["total"] = total;
  const json results = {{"study", "uncertainty"}, {"from", run.dir},   {"run_seeds", run.seeds},
                        {"seed_used", 0},         {"preset", preset},  {"settings", P},
                        {"columns", uncertainty_table({}).header},      {"conditions", jconds}, {"timings_s", timings}};
  write_file_atomic(out + "/results.json", results.dump(2) + "\n");
  char intro[900];
  std::snprintf(intro, sizeof intro,
                "Uncertainty measures of the models of %s (seed 0), first %d test images of each subset. ECE, MCE "
                "(15 bins), Brier and NLL between the correctness of the predicted class and the measure's confidence "
                "1 - u (u the measure normalised to [0, 1]), per image and averaged over images, as the reference "
                "codes them; AUROC of misclassification detection by u, pooled over pixels; PAvPU as the reference "
                "codes it, at the threshold %.2f. Total wall time %.0f s.",
                run.dir.c_str(), eo.max_images, eo.pavpu_threshold, total);
  write_html_page(out + "/report.html", "moeseg reproduce: uncertainty", intro, sections);
  std::printf("\nUncertainty of the models of %s%s (ECE, MCE, Brier, NLL: reference forms, means over images; AUROC: "
              "misclassification detection; PAvPU: reference form at t = %.2f):\n\n%swall time %.1fs; wrote "
              "%s/results.json and %s/report.html\n",
              run.dir.c_str(), run.seeds > 1 ? ", seed 0" : "", eo.pavpu_threshold, printed.c_str(), total, out.c_str(),
              out.c_str());
  return 0;
}

}  // namespace moeseg
