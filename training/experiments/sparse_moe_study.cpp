// The sparse-MoE study (training/experiments/sparse_moe_study.h).
#include "training/experiments/sparse_moe_study.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "core/json_checks.h"
#include "core/safetensors.h"
#include "core/wall_clock.h"
#include "data/a2d2_classes.h"
#include "models/registry.h"
#include "training/checkpoint.h"
#include "training/experiment_setup.h"
#include "training/experiments/study_steps.h"
#include "training/report.h"
#include "training/sparse_moe_evaluation.h"

namespace moeseg {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kSpecialisationClasses = 6;   // the most frequent majority classes shown

struct Variant {
  std::string kind;   // a key of template.kinds, or "" for the dense model
  int64_t experts = 0, k = 0;
  bool balance = false;
  std::string title() const {
    if (kind.empty()) return "Dense";
    return kind + " N=" + std::to_string(experts) + " k=" + std::to_string(k) + (balance ? " +bal" : "");
  }
  std::string name() const {
    if (kind.empty()) return "dense";
    std::string n = kind;
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return n + "_n" + std::to_string(experts) + "_k" + std::to_string(k) + (balance ? "_bal" : "");
  }
};

std::vector<Variant> parse_variants(const json& P, const json& kinds, const std::string& where) {
  MOESEG_CHECK(P.contains("variants") && P.at("variants").is_array() && !P.at("variants").empty(), where,
               ": key 'variants' must be a non-empty list of {kind, experts, k, balance}");
  std::vector<Variant> out = {Variant{}};
  const json& list = P.at("variants");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string w = where + ".variants[" + std::to_string(i) + "]";
    check_keys(list[i], {"kind", "experts", "k", "balance"}, w);
    Variant v;
    v.kind = get_required<std::string>(list[i], "kind", w);
    MOESEG_CHECK(kinds.contains(v.kind), w, ": kind '", v.kind, "' is not in the template's kinds (",
                 [&] {
                   std::string s;
                   for (auto& [k, x] : kinds.items()) s += (s.empty() ? "" : ", ") + k;
                   return s;
                 }(),
                 ")");
    v.experts = get_required_int_in(list[i], "experts", 1, 64, w);
    v.k = get_required_int_in(list[i], "k", 1, 64, w);
    MOESEG_CHECK(v.k <= v.experts, w, ": k = ", v.k, " exceeds experts = ", v.experts);
    v.balance = get_or<bool>(list[i], "balance", false, w);
    for (const Variant& u : out)
      MOESEG_CHECK(u.name() != v.name(), w, ": variant ", v.title(), " is listed twice");
    out.push_back(v);
  }
  return out;
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "-";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string class_name(int64_t c, int64_t classes, bool camvid) {
  static const char* kCamvid[] = {"Sky", "Building", "Pole", "Road", "Pavement", "Tree",
                                  "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"};
  if (camvid && c >= 0 && c < 11) return kCamvid[c];
  if (classes == data::kA2D2NumClasses) return data::a2d2_classes()[static_cast<size_t>(c)].name;
  return "class " + std::to_string(c);
}

// Per expert: the share (%) of each domain's and of each frequent class's top-1 tokens it gets.
TextTable specialisation_table(const MoeSpecialisation& s, int64_t classes, bool camvid) {
  TextTable t;
  t.header = {"Expert"};
  for (auto& d : s.domains) t.header.push_back(d);
  std::vector<int64_t> class_tokens(s.by_class.size());
  for (size_t c = 0; c < s.by_class.size(); ++c)
    class_tokens[c] = std::accumulate(s.by_class[c].begin(), s.by_class[c].end(), int64_t{0});
  std::vector<size_t> order(class_tokens.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return class_tokens[a] > class_tokens[b]; });
  std::vector<size_t> shown;
  for (size_t c : order)
    if (class_tokens[c] > 0 && static_cast<int>(shown.size()) < kSpecialisationClasses) shown.push_back(c);
  for (size_t c : shown) t.header.push_back(class_name(static_cast<int64_t>(c), classes, camvid));
  auto share = [](const std::vector<int64_t>& row, int64_t e) {
    const int64_t total = std::accumulate(row.begin(), row.end(), int64_t{0});
    return total > 0 ? fixed(100.0 * static_cast<double>(row[static_cast<size_t>(e)]) / static_cast<double>(total), 1)
                     : std::string("-");
  };
  for (int64_t e = 0; e < s.experts; ++e) {
    std::vector<std::string> r = {"expert " + std::to_string(e)};
    for (auto& d : s.by_domain) r.push_back(share(d, e));
    for (size_t c : shown) r.push_back(share(s.by_class[c], e));
    t.rows.push_back(r);
  }
  std::vector<std::string> tokens = {"(tokens)"};
  for (auto& d : s.by_domain) tokens.push_back(std::to_string(std::accumulate(d.begin(), d.end(), int64_t{0})));
  for (size_t c : shown) tokens.push_back(std::to_string(class_tokens[c]));
  t.rows.push_back(tokens);
  return t;
}

}  // namespace

int run_sparse_moe_study(const StudyOptions& opt) {
  MOESEG_CHECK(opt.dataset == "synthetic" || opt.dataset == "camvid", "reproduce: --dataset must be synthetic or camvid");
  MOESEG_CHECK(opt.seeds == 1, "reproduce --study sparse-moe: --seeds ", opt.seeds, " is not supported (one seed)");
  MOESEG_CHECK(opt.from.empty(), "reproduce --study sparse-moe trains its own models: --from is not used");
  json S = read_json_file(opt.study_config, "reproduce: the study config");
  const bool camvid = opt.dataset == "camvid";
  const std::string preset = opt.preset.empty() ? (camvid ? "camvid-cpu" : "cpu") : opt.preset;
  preset_of(S, preset);
  json& P = S["presets"][preset];
  const std::string where = opt.study_config + ": presets." + preset;
  MOESEG_CHECK((P.value("dataset", "synthetic") == "camvid") == camvid, "reproduce: preset '", preset, "' is for the ",
               P.value("dataset", "synthetic"), " data, not ", opt.dataset);
  if (opt.epochs > 0) P["epochs"] = opt.epochs;
  MOESEG_CHECK(S.contains("template") && S["template"].is_object(), opt.study_config, ": missing key 'template'");
  const json& T = S.at("template");
  for (const char* key : {"model", "kinds", "moe", "balancing", "data", "train"})
    MOESEG_CHECK(T.contains(key), opt.study_config, ": template has no key '", key, "'");
  const std::vector<Variant> variants = parse_variants(P, T.at("kinds"), where);

  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(opt.out);
  const std::string out = fs::weakly_canonical(opt.out).string();
  if (opt.fresh) fs::remove_all(fs::path(out) / "runs");
  json timings = json::object();
  std::string data_root = opt.data_root;
  if (camvid) data_root = fs::weakly_canonical(data_root.empty() ? find_camvid_root() : data_root).string();
  else data_root = prepare_synthetic_data(P, data_root.empty() ? out + "/data" : data_root, where, timings);

  const std::vector<std::string> subsets =
      camvid ? std::vector<std::string>{"dusk", "day"} : std::vector<std::string>{"highway", "urban", "ambiguous"};
  const std::string union_name = "all";   // the first two subsets together
  const int64_t classes = camvid ? 11 : data::kA2D2NumClasses;
  const int epochs = static_cast<int>(get_required_int_in(P, "epochs", 1, 100000, where));
  const int batch = static_cast<int>(get_required_int_in(P, "batch", 1, 4096, where));
  const double lr = get_required<double>(P, "lr", where);
  const int timing_images = static_cast<int>(get_int_in(P, "timing_images", 12, 0, 100000, where));
  const int pictures_per_subset = static_cast<int>(get_int_in(P, "pictures_per_subset", 2, 0, 1000, where));

  // ---- the experiment configs ----
  const std::string cfg_dir = out + "/configs";
  fs::create_directories(cfg_dir);
  std::vector<ExperimentConfig> configs;
  for (const Variant& v : variants) {
    json model = T.at("model");
    model["num_classes"] = classes;
    model["width"] = get_required<double>(P, "model_width", where);
    if (!v.kind.empty()) {
      json ins = T.at("kinds").at(v.kind);
      for (auto& [k, x] : T.at("moe").items()) ins[k] = x;
      ins["num_experts"] = v.experts;
      ins["k"] = v.k;
      if (v.balance)
        for (auto& [k, x] : T.at("balancing").items()) ins[k] = x;
      model["sparse_moe"] = ins;
    }
    json j = {{"name", v.name()}, {"model", model}, {"data", T.at("data")}, {"train", T.at("train")},
              {"out", out + "/runs/" + v.name()}};
    json& d = j["data"];
    d["dataset"] = camvid ? "camvid" : "a2d2";
    d["root"] = data_root;
    d["subset"] = subsets[0] + "," + subsets[1];
    d["height"] = P.at("height");
    d["width"] = P.at("width");
    json ts = subsets;
    ts.push_back(union_name);
    d["test_subsets"] = ts;
    if (camvid) d["camvid_dusk_holdout"] = P.value("camvid_dusk_holdout", 20);
    json& t = j["train"];
    t["epochs"] = epochs;
    t["batch"] = batch;
    t["optimizer"]["lr"] = lr;
    t["val_every"] = P.value("val_every", 1);
    t["patience"] = P.value("patience", 0);
    const std::string path = cfg_dir + "/" + v.name() + ".json";
    write_file_atomic(path, j.dump(2) + "\n");
    configs.push_back(parse_experiment_config(j, path, cfg_dir));
  }

  // ---- training ----
  TrainOptions topt;
  topt.quiet = opt.quiet;
  for (size_t i = 0; i < variants.size(); ++i) {
    const auto t = std::chrono::steady_clock::now();
    train_study_model(configs[i], topt, variants[i].title());
    timings[configs[i].name] = seconds_since(t);
  }

  // ---- evaluation ----
  const auto t_eval = std::chrono::steady_clock::now();
  SparseMoeEvalOptions eo;
  eo.subsets = subsets;
  eo.union_name = union_name;
  eo.timing_images = timing_images;
  eo.pictures_dir = out + "/pictures";
  eo.pictures_per_subset = pictures_per_subset;
  std::vector<SparseMoeEvaluation> evals;
  for (size_t i = 0; i < variants.size(); ++i) {
    auto model = build_experiment_model(configs[i]);
    load_checkpoint(*model, configs[i].out + "/best/model.safetensors");
    evals.push_back(evaluate_sparse_moe_model(*model, configs[i], eo, configs[i].name));
    if (!opt.quiet) std::printf("[reproduce] evaluated %s\n", variants[i].title().c_str());
  }
  timings["evaluation"] = seconds_since(t_eval);
  const double total = seconds_since(t0);
  timings["total"] = total;

  // ---- tables ----
  TextTable main_table;
  main_table.header = {"Model", "mIoU", "usage entropy", "usage CV", "params (M)", "GFLOPs", "ms/img"};
  TextTable subset_table;
  subset_table.header = {"Model"};
  for (auto& c : evals[0].columns) subset_table.header.push_back(c == union_name ? subsets[0] + " + " + subsets[1] : c);
  json results = {{"study", "sparse-moe"}, {"preset", preset}, {"dataset", opt.dataset}, {"data", data_root},
                  {"models", json::array()}};
  std::vector<HtmlSection> sections;
  std::string spec_text;
  for (size_t i = 0; i < variants.size(); ++i) {
    const SparseMoeEvaluation& e = evals[i];
    const double all = e.miou.back();
    main_table.rows.push_back({variants[i].title(), fixed(100 * all, 1), fixed(e.usage_entropy(), 3),
                               fixed(e.usage_cv(), 3), fixed(static_cast<double>(e.parameters) / 1e6, 3),
                               fixed(e.gflops_per_image, 3), fixed(e.ms_per_image, 1)});
    std::vector<std::string> r = {variants[i].title()};
    for (double m : e.miou) r.push_back(fixed(100 * m, 1));
    subset_table.rows.push_back(r);
    json mj = e.to_json();
    mj["title"] = variants[i].title();
    mj["name"] = configs[i].name;
    mj["config_path"] = cfg_dir + "/" + configs[i].name + ".json";
    results["models"].push_back(mj);
    if (e.specialisation.layer.empty()) continue;
    const TextTable st = specialisation_table(e.specialisation, classes, camvid);
    spec_text += "\n" + variants[i].title() + ", layer " + e.specialisation.layer +
                 " (share of each column's top-1 tokens, %):\n\n" + markdown_table(st);
    HtmlSection sec;
    sec.heading = variants[i].title();
    sec.text = "Specialisation of layer " + e.specialisation.layer +
               ": the share (%) of each domain's and each frequent class's top-1 tokens that each expert gets; "
               "the pictures tint each token's patch by its top-1 expert (expert 0 red, 1 green, 2 blue, 3 yellow, "
               "4 purple, 5 cyan, 6 orange, 7 magenta).";
    sec.tables.push_back(st);
    for (auto& [caption, file] : e.pictures) sec.images.push_back({caption, "pictures/" + file});
    sections.push_back(sec);
  }
  const std::string md = markdown_table(main_table);
  const std::string md_subsets = markdown_table(subset_table);
  results["markdown"] = md;
  results["markdown_subsets"] = md_subsets;
  results["timings_s"] = timings;
  write_file_atomic(out + "/results.json", results.dump(2) + "\n");

  char intro[768];
  std::snprintf(intro, sizeof intro,
                "DeepLabv3+ ResNet-18 (width %.3g, output stride 16) dense and with sparse MoE layers in layer4, at "
                "%dx%d on %s (preset %s, %d epochs each). mIoU on %s + %s; usage entropy (normalised, 1 = uniform) "
                "and CV of the experts' token counts over the test set, averaged over the MoE layers; GFLOPs per "
                "image as run; ms per image at batch 1 (median). Total wall time %.0f s.",
                get_required<double>(P, "model_width", where), P.at("height").get<int>(), P.at("width").get<int>(),
                camvid ? "CamVid" : "the synthetic scenes", preset.c_str(), epochs, subsets[0].c_str(),
                subsets[1].c_str(), total);
  HtmlSection head;
  head.heading = "Models";
  head.tables = {main_table, subset_table};
  sections.insert(sections.begin(), head);
  write_html_page(out + "/report.html", "moeseg reproduce: sparse MoE layers", intro, sections);
  std::printf("\nsparse MoE layers in DeepLabv3+ layer4, test split (mIoU %% on %s + %s):\n\n%s\nmIoU (%%) per test "
              "subset:\n\n%s%s\nwall time %.1fs; wrote %s/results.json and %s/report.html\n",
              subsets[0].c_str(), subsets[1].c_str(), md.c_str(), md_subsets.c_str(), spec_text.c_str(), total,
              out.c_str(), out.c_str());
  return 0;
}

}  // namespace moeseg
