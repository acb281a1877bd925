// Evaluation of networks with sparse MoE layers (training/sparse_moe_evaluation.h).
#include "training/sparse_moe_evaluation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/autograd.h"
#include "core/error.h"
#include "core/flop_counter.h"
#include "data/augment.h"
#include "data/loader.h"
#include "kernels/reduce.h"
#include "models/moe_insertion.h"
#include "training/experiment_setup.h"
#include "training/metrics.h"

namespace moeseg {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

double mean_or_nan(const std::vector<double>& v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

data::DataLoader make_loader(const ExperimentConfig& c, const std::string& subset, int max_images, size_t batch) {
  data::LoaderOptions lo;
  lo.batch_size = batch;
  lo.num_workers = c.data.workers;
  lo.augment = data::reference_preset(c.data.height, c.data.width, false);
  return data::DataLoader(open_experiment_data(c.data, subset, "test", max_images), lo);
}

}  // namespace

double MoeLayerUsage::entropy() const {
  const int64_t n = static_cast<int64_t>(pairs.size());
  if (n <= 1) return 1.0;
  double total = 0, h = 0;
  for (int64_t c : pairs) total += static_cast<double>(c);
  if (total <= 0) return std::numeric_limits<double>::quiet_NaN();
  for (int64_t c : pairs)
    if (c > 0) h -= (static_cast<double>(c) / total) * std::log(static_cast<double>(c) / total);
  return h / std::log(static_cast<double>(n));
}

double MoeLayerUsage::cv() const {
  if (pairs.empty()) return std::numeric_limits<double>::quiet_NaN();
  double m = 0, v = 0;
  for (int64_t c : pairs) m += static_cast<double>(c);
  m /= static_cast<double>(pairs.size());
  if (m <= 0) return std::numeric_limits<double>::quiet_NaN();
  for (int64_t c : pairs) v += (static_cast<double>(c) - m) * (static_cast<double>(c) - m);
  return std::sqrt(v / static_cast<double>(pairs.size())) / m;
}

double SparseMoeEvaluation::usage_entropy() const {
  std::vector<double> v;
  for (auto& l : layers) v.push_back(l.entropy());
  return mean_or_nan(v);
}

double SparseMoeEvaluation::usage_cv() const {
  std::vector<double> v;
  for (auto& l : layers) v.push_back(l.cv());
  return mean_or_nan(v);
}

json SparseMoeEvaluation::to_json() const {
  json j = {{"columns", columns}, {"parameters", parameters}, {"gflops_per_image", gflops_per_image},
            {"ms_per_image", ms_per_image}, {"layers", json::array()}};
  json m = json::array();
  for (double x : miou) m.push_back(std::isfinite(x) ? json(x) : json());
  j["miou"] = m;
  auto num = [](double x) { return std::isfinite(x) ? json(x) : json(); };
  j["usage_entropy"] = num(usage_entropy());
  j["usage_cv"] = num(usage_cv());
  for (auto& l : layers) j["layers"].push_back({{"layer", l.layer}, {"pairs", l.pairs}, {"entropy", num(l.entropy())}, {"cv", num(l.cv())}});
  if (!specialisation.layer.empty())
    j["specialisation"] = {{"layer", specialisation.layer}, {"domains", specialisation.domains},
                           {"by_domain", specialisation.by_domain}, {"by_class", specialisation.by_class}};
  json p = json::array();
  for (auto& [caption, file] : pictures) p.push_back({{"caption", caption}, {"file", file}});
  j["pictures"] = p;
  return j;
}

std::array<uint8_t, 3> moe_expert_colour(int64_t expert) {
  static constexpr std::array<std::array<uint8_t, 3>, 12> kColours = {{{230, 25, 75},
                                                                       {60, 180, 75},
                                                                       {0, 130, 200},
                                                                       {255, 225, 25},
                                                                       {145, 30, 180},
                                                                       {70, 240, 240},
                                                                       {245, 130, 48},
                                                                       {240, 50, 230},
                                                                       {128, 128, 0},
                                                                       {0, 0, 128},
                                                                       {170, 110, 40},
                                                                       {128, 128, 128}}};
  return kColours[static_cast<size_t>(((expert % 12) + 12) % 12)];
}

data::Image routing_picture(const Tensor& image, const std::vector<int64_t>& top1, int64_t nh, int64_t nw, int scale) {
  MOESEG_CHECK(scale >= 1 && scale <= 64, "routing_picture: scale ", scale, " outside [1, 64]");
  MOESEG_CHECK(image.dim() == 3 && image.size(0) == 3, "routing_picture: image must be [3, H, W], got ", image.str());
  MOESEG_CHECK(nh >= 1 && nw >= 1 && static_cast<int64_t>(top1.size()) == nh * nw, "routing_picture: ", top1.size(),
               " experts for a ", nh, "x", nw, " token grid");
  const int64_t H = image.size(1), W = image.size(2);
  data::Image out = data::tensor_to_image(image.detach().to(Device{}));
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const auto col = moe_expert_colour(top1[static_cast<size_t>((y * nh / H) * nw + x * nw / W)]);
      uint8_t* p = out.at(static_cast<int>(y), static_cast<int>(x));
      for (int ch = 0; ch < 3; ++ch) p[ch] = static_cast<uint8_t>(std::lround(0.55 * p[ch] + 0.45 * col[static_cast<size_t>(ch)]));
    }
  if (scale == 1) return out;
  data::Image big(out.height * scale, out.width * scale, 3);
  for (int y = 0; y < big.height; ++y)
    for (int x = 0; x < big.width; ++x) std::copy_n(out.at(y / scale, x / scale), 3, big.at(y, x));
  return big;
}

std::vector<int64_t> patch_majority_labels(const Tensor& labels, int64_t nh, int64_t nw, int64_t num_classes) {
  MOESEG_CHECK(labels.dim() == 2 && labels.dtype() == DType::Int64, "patch_majority_labels: labels must be int64 [H, W], got ",
               labels.str());
  const Tensor l = labels.to(Device{}).contiguous();
  const int64_t H = l.size(0), W = l.size(1);
  MOESEG_CHECK(nh >= 1 && nw >= 1 && nh <= H && nw <= W, "patch_majority_labels: a ", nh, "x", nw, " grid over ", H, "x", W);
  const int64_t* v = l.data<int64_t>();
  std::vector<int64_t> out(static_cast<size_t>(nh * nw), -1);
  std::vector<int64_t> hist(static_cast<size_t>(num_classes));
  for (int64_t r = 0; r < nh; ++r)
    for (int64_t c = 0; c < nw; ++c) {
      std::fill(hist.begin(), hist.end(), 0);
      for (int64_t y = r * H / nh; y < (r + 1) * H / nh; ++y)
        for (int64_t x = c * W / nw; x < (c + 1) * W / nw; ++x) {
          const int64_t k = v[y * W + x];
          if (k >= 0 && k < num_classes) ++hist[static_cast<size_t>(k)];
        }
      const auto best = std::max_element(hist.begin(), hist.end());
      if (*best > 0) out[static_cast<size_t>(r * nw + c)] = best - hist.begin();   // ties: the lowest class
    }
  return out;
}

SparseMoeEvaluation evaluate_sparse_moe_model(SegmentationModel& model, const ExperimentConfig& c,
                                              const SparseMoeEvalOptions& opt, const std::string& model_name) {
  MOESEG_CHECK(!opt.subsets.empty(), "evaluate_sparse_moe_model: no subsets");
  model.eval();
  NoGradGuard ng;
  const int64_t C = model.num_classes();
  const int max_images = opt.max_images >= 0 ? opt.max_images : c.data.max_test;
  const auto layers = sparse_moe_layers(model);
  SparseMoeEvaluation ev;
  ev.parameters = model.num_parameters();
  for (auto& [name, layer] : layers) ev.layers.push_back({name, std::vector<int64_t>(static_cast<size_t>(layer->num_experts()))});
  MoeSpecialisation& sp = ev.specialisation;
  SparseMoE* last = layers.empty() ? nullptr : layers.back().second;
  if (last) {
    sp.layer = layers.back().first;
    sp.experts = last->num_experts();
    sp.domains = opt.subsets;
    sp.by_domain.assign(opt.subsets.size(), std::vector<int64_t>(static_cast<size_t>(sp.experts)));
    sp.by_class.assign(static_cast<size_t>(C), std::vector<int64_t>(static_cast<size_t>(sp.experts)));
  }
  std::vector<ConfusionMatrix> cms;
  double flops = 0;
  int64_t images = 0;
  const Device dev = model.device();
  for (size_t si = 0; si < opt.subsets.size(); ++si) {
    const std::string& subset = opt.subsets[si];
    data::DataLoader loader = make_loader(c, subset, max_images, static_cast<size_t>(c.train.batch));
    loader.start_epoch(0);
    ConfusionMatrix cm(C);
    data::Batch b;
    int pictures = 0;
    while (loader.next(b)) {
      ModelOutput o;
      {
        FlopCountScope fc;
        o = model.forward_detailed(b.images.to(dev));
        flops += fc.flops();
      }
      cm.update(argmax(o.logits.to(Device{}), 1), b.labels);
      const int64_t nb = b.images.size(0);
      images += nb;
      for (size_t li = 0; li < layers.size(); ++li) {
        const Tensor idx = layers[li].second->last_indices().to(Device{}).contiguous();
        const int64_t* v = idx.data<int64_t>();
        for (int64_t i = 0; i < idx.numel(); ++i) ++ev.layers[li].pairs[static_cast<size_t>(v[i])];
      }
      if (!last) continue;
      const MoeRoutingStats& st = last->routing_stats();
      const int64_t gh = st.grid_h, gw = st.grid_w, per_image = gh * gw;
      const Tensor idx = last->last_indices().to(Device{}).contiguous();
      MOESEG_CHECK(idx.size(0) == nb * per_image, model_name, ": layer ", sp.layer, " routed ", idx.size(0),
                   " tokens for ", nb, " images of a ", gh, "x", gw, " token grid");
      const int64_t* v = idx.data<int64_t>();
      const int64_t k = idx.size(1);
      for (int64_t i = 0; i < nb; ++i) {
        std::vector<int64_t> top1(static_cast<size_t>(per_image));
        for (int64_t t = 0; t < per_image; ++t) top1[static_cast<size_t>(t)] = v[(i * per_image + t) * k];
        const std::vector<int64_t> maj = patch_majority_labels(b.labels.select(0, i), gh, gw, C);
        for (int64_t t = 0; t < per_image; ++t) {
          if (maj[static_cast<size_t>(t)] < 0) continue;
          ++sp.by_domain[si][static_cast<size_t>(top1[static_cast<size_t>(t)])];
          ++sp.by_class[static_cast<size_t>(maj[static_cast<size_t>(t)])][static_cast<size_t>(top1[static_cast<size_t>(t)])];
        }
        if (!opt.pictures_dir.empty() && pictures < opt.pictures_per_subset) {
          fs::create_directories(opt.pictures_dir);
          const std::string file = model_name + "_" + subset + "_" + std::to_string(pictures) + ".png";
          const int scale = std::max<int>(1, 240 / static_cast<int>(b.images.size(2)));   // >= 240 pixels high
          data::write_png((fs::path(opt.pictures_dir) / file).string(),
                          routing_picture(b.images.select(0, i), top1, gh, gw, scale));
          ev.pictures.push_back({subset + " " + std::to_string(pictures), file});
          ++pictures;
        }
      }
    }
    cms.push_back(std::move(cm));
  }
  for (size_t si = 0; si < opt.subsets.size(); ++si) {
    ev.columns.push_back(opt.subsets[si]);
    ev.miou.push_back(cms[si].mean_iou());
  }
  if (!opt.union_name.empty() && cms.size() >= 2) {
    ConfusionMatrix u = cms[0];
    u.merge(cms[1]);
    ev.columns.push_back(opt.union_name);
    ev.miou.push_back(u.mean_iou());
  }
  ev.gflops_per_image = images > 0 ? flops / static_cast<double>(images) / 1e9 : 0.0;

  // ---- inference time, one image at a time ----
  std::vector<double> ms;
  if (opt.timing_images > 0) {
    data::DataLoader loader = make_loader(c, opt.subsets[0], opt.timing_images + 1, 1);
    loader.start_epoch(0);
    data::Batch b;
    bool warm = false;
    while (loader.next(b)) {
      const Tensor x = b.images.to(dev);
      const auto t0 = std::chrono::steady_clock::now();
      Tensor y = model.forward(x).to(Device{});
      const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (warm) ms.push_back(dt);
      warm = true;
    }
  }
  if (!ms.empty()) {
    std::sort(ms.begin(), ms.end());
    ev.ms_per_image = ms[ms.size() / 2];
  }
  return ev;
}

}  // namespace moeseg
