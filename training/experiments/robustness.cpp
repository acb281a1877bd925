// The robustness study (training/experiments/robustness.h).
#include "training/experiments/robustness.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_checks.h"
#include "core/safetensors.h"
#include "core/wall_clock.h"
#include "training/experiments/finished_run.h"
#include "training/report.h"
#include "training/robustness.h"

namespace moeseg {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A model of the run and its universal δ.
struct Member : RunModel {
  Tensor delta;
};

std::string cell(double v) {
  char b[32];
  if (std::isfinite(v)) std::snprintf(b, sizeof b, "%.2f", 100 * v);
  else std::snprintf(b, sizeof b, "n/a");
  return b;
}

}  // namespace

int run_robustness_study(const StudyOptions& opt) {
  const char* where = "reproduce --study robustness";
  MOESEG_CHECK(opt.seeds == 1, where, ": --seeds does not apply (the study attacks seed 0's models of --from)");
  const auto t0 = std::chrono::steady_clock::now();
  FinishedRun run_models = load_finished_run(opt.from, where);
  const std::string& run = run_models.dir;
  const json S = read_json_file(opt.study_config, std::string(where) + ": the study config");
  std::string preset;
  const json& P = choose_study_preset(S, opt.study_config, opt.preset, run_models.preset, where, &preset);
  const std::string pw = opt.study_config + ": presets." + preset;
  check_keys(P, {"comment", "subsets", "max_test", "batch", "fgsm", "pgd", "universal", "transfer"}, pw);
  RobustnessOptions ro;
  ro.subsets = get_required_strings(P, "subsets", pw);
  ro.max_images = static_cast<int>(get_required_int_in(P, "max_test", 0, 1 << 24, pw));
  ro.batch = static_cast<int>(get_required_int_in(P, "batch", 1, 4096, pw));
  ro.quiet = opt.quiet;
  const std::string table_subset = "all";
  MOESEG_CHECK(std::count(ro.subsets.begin(), ro.subsets.end(), table_subset), pw,
               ".subsets must contain \"all\" (the table's highway + urban)");

  AttackSpec clean{"clean", AttackKind::Clean, {}, {}, {}};
  AttackSpec fg{"fgsm", AttackKind::Fgsm, {}, {}, {}};
  {
    const json& F = P.at("fgsm");
    check_keys(F, {"eps", "clamp_01"}, pw + ".fgsm");
    fg.fgsm.eps = get_required<double>(F, "eps", pw + ".fgsm");
    fg.fgsm.clamp_01 = get_or<bool>(F, "clamp_01", false, pw + ".fgsm");
  }
  AttackSpec pg{"pgd", AttackKind::Pgd, {}, {}, {}};
  {
    const json& G = P.at("pgd");
    const std::string w = pw + ".pgd";
    check_keys(G, {"eps", "steps", "variant", "lr", "alpha", "clamp_01", "seed"}, w);
    pg.pgd.eps = get_required<double>(G, "eps", w);
    pg.pgd.steps = static_cast<int>(get_required_int_in(G, "steps", 1, 100000, w));
    pg.pgd.variant = parse_pgd_variant(get_or<std::string>(G, "variant", "reference", w), w + ".variant");
    pg.pgd.lr = get_or<double>(G, "lr", 0.01, w);
    pg.pgd.alpha = get_or<double>(G, "alpha", 0.0, w);
    pg.pgd.clamp_01 = get_or<bool>(G, "clamp_01", true, w);
    pg.pgd.seed = get_or<uint64_t>(G, "seed", 0, w);
  }
  UniversalSpec us;
  {
    const json& U = P.at("universal");
    const std::string w = pw + ".universal";
    check_keys(U, {"eps", "epochs", "steps_per_batch", "lr", "batch", "max_images", "max_batches", "seed"}, w);
    us.attack.eps = get_required<double>(U, "eps", w);
    us.attack.epochs = static_cast<int>(get_required_int_in(U, "epochs", 1, 100000, w));
    us.attack.steps_per_batch = static_cast<int>(get_required_int_in(U, "steps_per_batch", 1, 100000, w));
    us.attack.lr = get_or<double>(U, "lr", 0.01, w);
    us.attack.seed = get_or<uint64_t>(U, "seed", 0, w);
    us.attack.max_batches = static_cast<int>(get_or<int64_t>(U, "max_batches", -1, w));
    us.batch = static_cast<int>(get_required_int_in(U, "batch", 1, 4096, w));
    us.max_images = static_cast<int>(get_required_int_in(U, "max_images", 0, 1 << 24, w));
  }
  const std::vector<std::string> transfer = get_required_strings(P, "transfer", pw);
  const std::string pgd_col = "PGD-" + std::to_string(pg.pgd.steps);

  // ---- the run's models (seed 0: <run>/configs/<name>.json) ------------------------------------
  const int run_seeds = run_models.seeds;
  std::printf("[robustness] models of %s (preset %s%s), study preset %s\n", run.c_str(), run_models.preset.c_str(),
              run_seeds > 1 ? (", " + std::to_string(run_seeds) + " seeds: seed 0's models are used").c_str() : "",
              preset.c_str());
  std::vector<Member> members;
  for (RunModel& m : run_models.models) members.push_back(Member{m, {}});
  for (const std::string& t : transfer)
    MOESEG_CHECK(std::any_of(members.begin(), members.end(), [&](const Member& m) { return m.name == t; }), pw,
                 ".transfer names '", t, "', which is not a model of ", run);

  // ---- universal δ of every model on its own training split -------------------------------------
  json timings = json::object();
  const std::string out = [&] {
    fs::create_directories(opt.out);
    return fs::weakly_canonical(opt.out).string();
  }();
  fs::create_directories(out + "/deltas");
  const auto t_delta = std::chrono::steady_clock::now();
  for (Member& m : members) {
    const auto t = std::chrono::steady_clock::now();
    m.delta = make_universal_delta(*m.model, m.config, us);
    save_universal_delta(out + "/deltas/" + m.name + ".safetensors", m.delta, us.attack.eps);
    save_delta_png(out + "/deltas/" + m.name + ".png", m.delta, us.attack.eps);
    timings["delta_" + m.name] = seconds_since(t);
    if (!opt.quiet) std::printf("[robustness] universal delta of %s: %.1fs\n", m.title.c_str(), seconds_since(t));
  }
  timings["universal_deltas"] = seconds_since(t_delta);

  // ---- every model: clean, FGSM, PGD, own δ; transfer models also the other sources' δs ----------
  const auto t_eval = std::chrono::steady_clock::now();
  json models = json::array();
  std::vector<ResultRow> table;
  for (Member& m : members) {
    const auto t = std::chrono::steady_clock::now();
    std::vector<AttackSpec> specs = {clean, fg, pg, AttackSpec{"universal", AttackKind::Universal, {}, {}, m.delta}};
    const bool in_transfer = std::count(transfer.begin(), transfer.end(), m.name) > 0;
    if (in_transfer)
      for (const Member& src : members)
        if (src.name != m.name && std::count(transfer.begin(), transfer.end(), src.name))
          specs.push_back(AttackSpec{"delta:" + src.name, AttackKind::Universal, {}, {}, src.delta});
    json ev = evaluate_attacks(*m.model, m.config, specs, ro, m.name);
    ResultRow row{m.title, {}, {}};
    json miou = json::object();
    for (const char* a : {"clean", "fgsm", "pgd", "universal"}) {
      const double v = attacked_miou(ev, a, table_subset);
      row.miou.push_back(v);
      miou[a] = std::isfinite(v) ? json(v) : json();
    }
    table.push_back(row);
    timings["eval_" + m.name] = seconds_since(t);
    if (!opt.quiet)
      std::printf("[robustness] %s: clean %s, FGSM %s, %s %s, universal %s (%.1fs)\n", m.title.c_str(),
                  cell(row.miou[0]).c_str(), cell(row.miou[1]).c_str(), pgd_col.c_str(), cell(row.miou[2]).c_str(),
                  cell(row.miou[3]).c_str(), seconds_since(t));
    models.push_back({{"title", m.title}, {"name", m.name}, {"weights", m.weights}, {"miou", miou},
                      {"delta", out + "/deltas/" + m.name + ".safetensors"}, {"evaluation", ev}});
  }
  timings["evaluation"] = seconds_since(t_eval);

  // ---- transfer matrix: rows = the δ's source model, columns = the model evaluated -------------
  std::vector<const Member*> tm;
  std::vector<const json*> tev;
  for (const std::string& t : transfer)
    for (size_t i = 0; i < members.size(); ++i)
      if (members[i].name == t) {
        tm.push_back(&members[i]);
        tev.push_back(&models[i]["evaluation"]);
      }
  json matrix = json::array();
  TextTable transfer_table;
  transfer_table.header.push_back("δ made on ↓ / evaluated on →");
  for (const Member* b : tm) transfer_table.header.push_back(b->title);
  for (const Member* a : tm) {
    json mrow = json::array();
    std::vector<std::string> cells{a->title};
    for (size_t j = 0; j < tm.size(); ++j) {
      std::string key = "universal";
      if (tm[j] != a) key = std::string("delta:").append(a->name);
      const double v = attacked_miou(*tev[j], key, table_subset);
      mrow.push_back(std::isfinite(v) ? json(v) : json());
      cells.push_back(cell(v));
    }
    transfer_table.rows.push_back(std::move(cells));
    matrix.push_back(mrow);
  }
  const std::string tmd = markdown_table(transfer_table);
  json tnames = json::array(), ttitles = json::array();
  for (const Member* b : tm) {
    tnames.push_back(b->name);
    ttitles.push_back(b->title);
  }

  const std::vector<std::string> columns = {"clean", "FGSM", pgd_col, "universal"};
  const std::string md = markdown_table(columns, table);
  const double total = seconds_since(t0);
  timings["total"] = total;
  json settings = P;
  json results = {{"study", "robustness"},
                  {"from", run},
                  {"run_seeds", run_seeds},
                  {"seed_used", 0},
                  {"preset", preset},
                  {"subset", table_subset},
                  {"columns", {"clean", "fgsm", "pgd", "universal"}},
                  {"column_titles", columns},
                  {"settings", settings},
                  {"models", models},
                  {"transfer", {{"subset", table_subset}, {"rows_delta_from", tnames}, {"columns_evaluated_on", tnames},
                                {"titles", ttitles}, {"miou", matrix}}},
                  {"markdown", md},
                  {"transfer_markdown", tmd},
                  {"timings_s", timings}};
  write_file_atomic(out + "/results.json", results.dump(2) + "\n");
  char intro[640];
  std::snprintf(intro, sizeof intro,
                "The models of %s (seed 0) on highway + urban (first %d test images of each; 0 = all): clean, FGSM "
                "(eps %g), %s (reference variant, eps %g), own universal delta (eps %g, %d epoch(s) on up to %d "
                "training images per domain). mIoU %%. Total wall time %.0f s.",
                run.c_str(), ro.max_images, fg.fgsm.eps, pgd_col.c_str(), pg.pgd.eps, us.attack.eps, us.attack.epochs,
                us.max_images, total);
  HtmlSection transfer_section{"Transfer of universal deltas (mIoU %, highway + urban)", "", {transfer_table}, {}, {}};
  HtmlSection delta_section{"Universal deltas",
                            "Each model's delta, mapped from [-eps, eps] to [0, 255] per channel (grey = 0).", {}, {}, {}};
  for (const Member& m : members) delta_section.images.emplace_back(m.title, "deltas/" + m.name + ".png");
  write_html_report(out + "/report.html", "moeseg reproduce: robustness", intro, columns, table, {}, {},
                    {transfer_section, delta_section});
  std::printf("\nmIoU (%%) on highway + urban under attack (models of %s%s; FGSM eps %g, %s eps %g, universal eps "
              "%g):\n\n%s\nTransfer of universal deltas, mIoU (%%) on highway + urban:\n\n%s\nwall time %.1fs; wrote "
              "%s/results.json and %s/report.html\n",
              run.c_str(), run_seeds > 1 ? ", seed 0" : "", fg.fgsm.eps, pgd_col.c_str(), pg.pgd.eps, us.attack.eps,
              md.c_str(), tmd.c_str(), total, out.c_str(), out.c_str());
  return 0;
}

}  // namespace moeseg
