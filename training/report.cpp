// Evaluation per subset, gate statistics, disagreement analysis and the reproduce report
// (see report.h).
#include "training/report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "data/a2d2.h"
#include "data/image_io.h"
#include "data/label_colours.h"
#include "data/loader.h"
#include "kernels/reduce.h"
#include "models/ensemble.h"
#include "models/moe.h"
#include "training/disagreement.h"
#include "training/metrics.h"
#include "training/progress.h"
#include "training/trainer.h"

namespace moeseg {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct Disagreement {
  int64_t valid = 0, perfect = 0, follows_1 = 0, follows_2 = 0, critical = 0;
  int64_t both_right = 0, only1_moe_right = 0, only1_moe_wrong = 0, only2_moe_right = 0, only2_moe_wrong = 0,
          neither_moe_right = 0, neither_moe_wrong = 0;

  void update(const Tensor& m, const Tensor& e1, const Tensor& e2, const Tensor& gt, int64_t classes) {
    const auto M = m.contiguous(), A = e1.contiguous(), B = e2.contiguous(), G = gt.contiguous();
    const int64_t* pm = M.data<int64_t>();
    const int64_t* pa = A.data<int64_t>();
    const int64_t* pb = B.data<int64_t>();
    const int64_t* pg = G.data<int64_t>();
    for (int64_t i = 0; i < M.numel(); ++i) {
      const int64_t g = pg[i], mm = pm[i], a = pa[i], b = pb[i];
      if (g < 0 || g >= classes) continue;
      ++valid;
      switch (expert_agreement(mm, a, b)) {
        case ExpertAgreement::Perfect: ++perfect; break;
        case ExpertAgreement::Follows1: ++follows_1; break;
        case ExpertAgreement::Follows2: ++follows_2; break;
        case ExpertAgreement::Critical: ++critical; break;
      }
      const bool ra = a == g, rb = b == g, rm = mm == g;
      if (ra && rb) ++both_right;
      else if (ra) (rm ? only1_moe_right : only1_moe_wrong)++;
      else if (rb) (rm ? only2_moe_right : only2_moe_wrong)++;
      else (rm ? neither_moe_right : neither_moe_wrong)++;
    }
  }
  json to_json() const {
    auto f = [&](int64_t v) { return valid ? static_cast<double>(v) / static_cast<double>(valid) : 0.0; };
    return {{"valid_pixels", valid},
            {"reference", {{"perfect", f(perfect)}, {"follows_1", f(follows_1)}, {"follows_2", f(follows_2)},
                           {"critical", f(critical)}}},
            {"ground_truth",
             {{"both_right", f(both_right)},
              {"only_1_right", {{"moe_right", f(only1_moe_right)}, {"moe_wrong", f(only1_moe_wrong)}}},
              {"only_2_right", {{"moe_right", f(only2_moe_right)}, {"moe_wrong", f(only2_moe_wrong)}}},
              {"neither_right", {{"moe_right", f(neither_moe_right)}, {"moe_wrong", f(neither_moe_wrong)}}}}}};
  }
};

// Gate weights [B, G, E] accumulated per (group, expert), and the dominant expert per image.
struct GateStats {
  int64_t images = 0, G = 0, E = 0;
  std::vector<double> sum, sum_sq;     // [G * E]
  std::vector<int64_t> dominant;       // [E]: images whose group-mean weight is largest for e
  void update(const Tensor& w) {
    Tensor c = w.contiguous();
    const int64_t B = c.size(0);
    if (!G) {
      G = c.size(1);
      E = c.size(2);
      sum.assign(G * E, 0);
      sum_sq.assign(G * E, 0);
      dominant.assign(E, 0);
    }
    const float* p = c.data<float>();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> mean_e(E, 0);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t e = 0; e < E; ++e) {
          const double v = p[(b * G + g) * E + e];
          sum[g * E + e] += v;
          sum_sq[g * E + e] += v * v;
          mean_e[e] += v / static_cast<double>(G);
        }
      int64_t best = 0;
      for (int64_t e = 1; e < E; ++e)
        if (mean_e[e] > mean_e[best]) best = e;
      ++dominant[best];
      ++images;
    }
  }
  json to_json() const {
    if (!images) return json();
    json mean_w = json::array(), std_w = json::array(), dom = json::array();
    for (int64_t e = 0; e < E; ++e) {
      double s = 0, s2 = 0;
      for (int64_t g = 0; g < G; ++g) {
        s += sum[g * E + e];
        s2 += sum_sq[g * E + e];
      }
      const double n = static_cast<double>(images * G), m = s / n;
      mean_w.push_back(m);
      std_w.push_back(std::sqrt(std::max(0.0, s2 / n - m * m)));
      dom.push_back(static_cast<double>(dominant[e]) / static_cast<double>(images));
    }
    json j = {{"images", images}, {"mean_weight", mean_w}, {"std_weight", std_w}, {"dominant_fraction", dom}};
    if (G > 1) {   // class-wise: mean weight of each expert per class
      json per = json::array();
      for (int64_t g = 0; g < G; ++g) {
        json row = json::array();
        for (int64_t e = 0; e < E; ++e) row.push_back(sum[g * E + e] / static_cast<double>(images));
        per.push_back(row);
      }
      j["per_class_mean_weight"] = per;
    }
    return j;
  }
};

struct SubsetResult {
  ConfusionMatrix cm;
  int64_t images = 0;
  GateStats gate;
  Disagreement dis;
  bool has_experts = false;
  explicit SubsetResult(int64_t c) : cm(c) {}
};

json subset_json(const SubsetResult& r) {
  json j = r.cm.to_json();
  j["images"] = r.images;
  if (r.gate.images) j["gate"] = r.gate.to_json();
  if (r.has_experts) j["disagreement"] = r.dis.to_json();
  return j;
}

}  // namespace

void write_label_png(const std::string& path, const Tensor& labels, int64_t num_classes) {
  data::write_png(path, data::colourise_labels(labels, num_classes));
}

json evaluate_on_subsets(SegmentationModel& model, const ExperimentConfig& c, const EvalOptions& opt,
                         const std::string& model_name) {
  std::vector<std::string> subsets = opt.subsets.empty() ? c.data.test_subsets : opt.subsets;
  if (!opt.list_file.empty()) subsets = {"list"};
  const int max_images = opt.max_images >= 0 ? opt.max_images : c.data.max_test;
  MoE* moe = dynamic_cast<MoE*>(&model);
  Ensemble* ens = dynamic_cast<Ensemble*>(&model);
  model.eval();
  NoGradGuard ng;
  const int64_t C = model.num_classes();
  std::map<std::string, std::shared_ptr<SubsetResult>> results;
  json out = {{"model", model_name}, {"subsets", json::object()}};
  const bool have_hu = std::count(subsets.begin(), subsets.end(), "highway") &&
                       std::count(subsets.begin(), subsets.end(), "urban");
  for (const std::string& subset : subsets) {
    if (subset == "all" && have_hu && c.data.dataset == "a2d2" && opt.list_file.empty()) continue;   // merged below
    std::shared_ptr<const data::Dataset> ds;
    if (!opt.list_file.empty()) {
      data::A2D2Options o;
      o.root = c.data.root;
      o.split_file = opt.list_file;
      o.unknown_colour_to_ignore = c.data.unknown_colour_to_ignore;
      ds = std::make_shared<data::A2D2Dataset>(o);
    } else {
      ds = open_experiment_data(c.data, subset, opt.split, max_images);
    }
    data::LoaderOptions lo;
    lo.batch_size = static_cast<size_t>(c.train.batch);
    lo.num_workers = c.data.workers;
    lo.augment = data::reference_preset(c.data.height, c.data.width, false);
    data::DataLoader loader(ds, lo);
    loader.start_epoch(0);
    auto r = std::make_shared<SubsetResult>(C);
    ProgressBar bar("  eval " + model_name + " on " + subset, static_cast<int64_t>(loader.batches_per_epoch()), opt.quiet);
    data::Batch b;
    int64_t k = 0, examples = 0;
    const Device dev = model.device();
    while (loader.next(b)) {
      // The model runs where it lives; the statistics are gathered on the CPU.
      const Tensor images = b.images.to(dev);
      Tensor logits;
      std::vector<Tensor> expert_logits;
      if (moe) {
        MoEOutput o = moe->forward_moe(images);
        logits = o.logits;
        expert_logits = o.expert_logits;
        r->gate.update(o.gate.to(Device{}));
      } else if (ens) {
        MoEOutput o = ens->forward_all(images);
        logits = o.logits;
        expert_logits = o.expert_logits;
      } else {
        logits = model.forward(images);
      }
      logits = logits.to(Device{});
      for (Tensor& e : expert_logits) e = e.to(Device{});
      Tensor pred = argmax(logits, 1);
      r->cm.update(pred, b.labels);
      if (expert_logits.size() >= 2) {
        r->has_experts = true;
        r->dis.update(pred, argmax(expert_logits[0], 1), argmax(expert_logits[1], 1), b.labels, C);
      }
      if (!opt.examples_dir.empty())
        for (int64_t i = 0; i < b.images.size(0) && examples < opt.examples_per_subset; ++i, ++examples) {
          fs::create_directories(opt.examples_dir);
          const std::string base = (fs::path(opt.examples_dir) / (subset + "_" + std::to_string(examples))).string();
          data::write_png(base + "_image.png", data::tensor_to_image(b.images.select(0, i)));
          write_label_png(base + "_truth.png", b.labels.select(0, i), C);
          write_label_png(base + "_" + model_name + ".png", pred.select(0, i), C);
        }
      r->images += b.images.size(0);
      bar.update(++k, NAN, r->images);
    }
    bar.finish();
    results[subset] = r;
  }
  if (have_hu && c.data.dataset == "a2d2" && std::count(subsets.begin(), subsets.end(), "all") && opt.list_file.empty()) {
    auto all = std::make_shared<SubsetResult>(C);
    for (const char* s : {"highway", "urban"}) {
      const SubsetResult& p = *results.at(s);
      all->cm.merge(p.cm);
      all->images += p.images;
      all->has_experts = p.has_experts;
      if (p.gate.images) {
        if (!all->gate.G) all->gate = p.gate;
        else {
          for (size_t i = 0; i < all->gate.sum.size(); ++i) {
            all->gate.sum[i] += p.gate.sum[i];
            all->gate.sum_sq[i] += p.gate.sum_sq[i];
          }
          for (size_t e = 0; e < all->gate.dominant.size(); ++e) all->gate.dominant[e] += p.gate.dominant[e];
          all->gate.images += p.gate.images;
        }
      }
      const Disagreement& d = p.dis;
      Disagreement& a = all->dis;
      a.valid += d.valid, a.perfect += d.perfect, a.follows_1 += d.follows_1, a.follows_2 += d.follows_2;
      a.critical += d.critical, a.both_right += d.both_right, a.only1_moe_right += d.only1_moe_right;
      a.only1_moe_wrong += d.only1_moe_wrong, a.only2_moe_right += d.only2_moe_right;
      a.only2_moe_wrong += d.only2_moe_wrong, a.neither_moe_right += d.neither_moe_right;
      a.neither_moe_wrong += d.neither_moe_wrong;
    }
    results["all"] = all;
  }
  for (const std::string& s : subsets)
    if (results.count(s)) out["subsets"][s] = subset_json(*results.at(s));
  return out;
}

std::string markdown_table(const std::vector<std::string>& columns, const std::vector<ResultRow>& rows) {
  std::ostringstream o;
  o << "| Model |";
  for (auto& c : columns) o << " " << c << " |";
  o << "\n|---|";
  for (size_t i = 0; i < columns.size(); ++i) o << "---:|";
  o << "\n";
  for (auto& r : rows) {
    o << "| " << r.model << " |";
    for (double v : r.miou) {
      char b[32];
      if (std::isfinite(v)) std::snprintf(b, sizeof b, " %.2f |", 100 * v);
      else std::snprintf(b, sizeof b, " – |");
      o << b;
    }
    o << "\n";
  }
  return o.str();
}

void write_html_report(const std::string& path, const std::string& title, const std::string& intro,
                       const std::vector<std::string>& columns, const std::vector<ResultRow>& rows,
                       const std::vector<std::pair<std::string, std::string>>& svg_files,
                       const std::vector<std::pair<std::string, std::string>>& images) {
  std::ostringstream o;
  o << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" << title
    << "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
       "td,th{border:1px solid #aaa;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
       "figure{display:inline-block;margin:4px}img{image-rendering:pixelated;width:256px}</style></head><body>\n";
  o << "<h1>" << title << "</h1>\n<p>" << intro << "</p>\n<h2>mIoU (%)</h2>\n<table><tr><th>Model</th>";
  for (auto& c : columns) o << "<th>" << c << "</th>";
  o << "</tr>\n";
  for (auto& r : rows) {
    o << "<tr><td>" << r.model << "</td>";
    for (double v : r.miou) {
      char b[32];
      std::snprintf(b, sizeof b, std::isfinite(v) ? "%.2f" : "–", 100 * v);
      o << "<td>" << b << "</td>";
    }
    o << "</tr>\n";
  }
  o << "</table>\n<h2>Training curves</h2>\n";
  for (auto& [caption, file] : svg_files) {
    std::ifstream f(file);
    if (!f.good()) continue;
    std::stringstream ss;
    ss << f.rdbuf();
    o << "<figure>" << ss.str() << "<figcaption>" << caption << "</figcaption></figure>\n";
  }
  o << "<h2>Example predictions</h2>\n";
  for (auto& [caption, rel] : images)
    o << "<figure><img src=\"" << rel << "\"><figcaption>" << caption << "</figcaption></figure>\n";
  o << "</body></html>\n";
  write_file_atomic(path, o.str());
}

}  // namespace moeseg
