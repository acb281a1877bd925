// Evaluation of a model on the test subsets of an experiment config: the confusion-matrix
// metrics per subset, the gate statistics of a mixture (mean / std weight per expert, dominant
// expert per image; per class for a class-wise gate) and the expert-disagreement analysis of a
// model with two members (spec §1.12). A union subset ("all") whose parts are evaluated as well
// is reported from their merged counts (data::union_subset_parts). Any model kind works: the
// gate and members come from SegmentationModel::forward_detailed.
// Tested by tests/training/test_trainer.cpp (numbers against counts made by hand).
#include "training/evaluation.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/autograd.h"
#include "data/dataset_factory.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "kernels/reduce.h"
#include "training/disagreement.h"
#include "training/experiment_setup.h"
#include "training/metrics.h"
#include "training/progress.h"
#include "training/report.h"

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
  void merge(const Disagreement& d) {
    valid += d.valid, perfect += d.perfect, follows_1 += d.follows_1, follows_2 += d.follows_2;
    critical += d.critical, both_right += d.both_right, only1_moe_right += d.only1_moe_right;
    only1_moe_wrong += d.only1_moe_wrong, only2_moe_right += d.only2_moe_right;
    only2_moe_wrong += d.only2_moe_wrong, neither_moe_right += d.neither_moe_right;
    neither_moe_wrong += d.neither_moe_wrong;
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
  void merge(const GateStats& p) {
    if (!p.images) return;
    if (!G) {
      *this = p;
      return;
    }
    MOESEG_CHECK(p.G == G && p.E == E, "evaluation: gate statistics of different shapes cannot be merged");
    for (size_t i = 0; i < sum.size(); ++i) {
      sum[i] += p.sum[i];
      sum_sq[i] += p.sum_sq[i];
    }
    for (size_t e = 0; e < dominant.size(); ++e) dominant[e] += p.dominant[e];
    images += p.images;
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

json evaluate_on_subsets(SegmentationModel& model, const ExperimentConfig& c, const EvalOptions& opt,
                         const std::string& model_name) {
  std::vector<std::string> subsets = opt.subsets.empty() ? c.data.test_subsets : opt.subsets;
  if (!opt.list_file.empty()) subsets = {"list"};
  const int max_images = opt.max_images >= 0 ? opt.max_images : c.data.max_test;
  model.eval();
  NoGradGuard ng;
  const int64_t C = model.num_classes();
  std::map<std::string, std::shared_ptr<SubsetResult>> results;
  json out = {{"model", model_name}, {"subsets", json::object()}};
  // A union subset ("all") whose parts are evaluated too is their merged counts, not a second pass.
  auto merged_from_parts = [&](const std::string& subset) {
    if (!opt.list_file.empty()) return std::vector<std::string>{};
    auto parts = data::union_subset_parts(c.data.dataset, subset);
    for (auto& p : parts)
      if (!std::count(subsets.begin(), subsets.end(), p)) return std::vector<std::string>{};
    return parts;
  };
  for (const std::string& subset : subsets) {
    if (!merged_from_parts(subset).empty()) continue;   // merged below
    std::shared_ptr<const data::Dataset> ds =
        opt.list_file.empty() ? open_experiment_data(c.data, subset, opt.split, max_images)
                              : open_experiment_data(c.data, c.data.subset, opt.split, max_images, opt.list_file);
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
      ModelOutput o = model.forward_detailed(b.images.to(dev));
      const Tensor logits = o.logits.to(Device{});
      if (o.gate.defined()) r->gate.update(o.gate.to(Device{}));
      const Tensor pred = argmax(logits, 1);
      r->cm.update(pred, b.labels);
      if (o.member_logits.size() >= 2) {
        r->has_experts = true;
        r->dis.update(pred, argmax(o.member_logits[0].to(Device{}), 1), argmax(o.member_logits[1].to(Device{}), 1),
                      b.labels, C);
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
  for (const std::string& subset : subsets) {
    const auto parts = merged_from_parts(subset);
    if (parts.empty()) continue;
    auto merged = std::make_shared<SubsetResult>(C);
    for (const std::string& p : parts) {
      const SubsetResult& r = *results.at(p);
      merged->cm.merge(r.cm);
      merged->images += r.images;
      merged->has_experts = merged->has_experts || r.has_experts;
      merged->gate.merge(r.gate);
      merged->dis.merge(r.dis);
    }
    results[subset] = merged;
  }
  for (const std::string& s : subsets)
    if (results.count(s)) out["subsets"][s] = subset_json(*results.at(s));
  return out;
}

}  // namespace moeseg
