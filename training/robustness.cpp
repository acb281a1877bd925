// Robustness evaluation (training/robustness.h): clean / FGSM / PGD / universal-δ mIoU per subset.
#include "training/robustness.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "core/autograd.h"
#include "core/error.h"
#include "data/dataset_factory.h"
#include "data/loader.h"
#include "kernels/reduce.h"
#include "training/experiment_setup.h"
#include "training/metrics.h"
#include "training/progress.h"

namespace moeseg {

using json = nlohmann::json;

AttackKind parse_attack_kind(const std::string& name, const std::string& where) {
  if (name == "clean") return AttackKind::Clean;
  if (name == "fgsm") return AttackKind::Fgsm;
  if (name == "pgd") return AttackKind::Pgd;
  if (name == "universal") return AttackKind::Universal;
  MOESEG_FAIL(where, ": unknown attack '", name, "' (known: clean, fgsm, pgd, universal)");
}

namespace {

// The logits the attack's mIoU is measured on, on the CPU.
Tensor attacked_logits(SegmentationModel& model, const AttackSpec& a, const Tensor& x, const Tensor& y, int64_t ignore,
                       uint64_t batch_index) {
  switch (a.kind) {
    case AttackKind::Clean: {
      NoGradGuard ng;
      return model.forward(x).to(Device{});
    }
    case AttackKind::Fgsm: {
      AttackOptions o = a.fgsm;
      o.ignore_index = ignore;
      AttackResult r = fgsm(model, x, y, o);
      NoGradGuard ng;
      return model.forward(r.adversarial.detach()).to(Device{});
    }
    case AttackKind::Pgd: {
      PgdOptions o = a.pgd;
      o.ignore_index = ignore;
      o.seed = a.pgd.seed + batch_index;
      AttackResult r = pgd(model, x, y, o);
      // The reference reports the prediction of its last forward pass (before the last update);
      // the Madry variant is measured on its final adversarial image.
      if (o.variant == PgdVariant::Reference) return r.logits.detach().to(Device{});
      NoGradGuard ng;
      return model.forward(r.adversarial.detach()).to(Device{});
    }
    case AttackKind::Universal: {
      MOESEG_CHECK(a.delta.defined(), "robustness: attack '", a.name, "' is universal but has no delta");
      NoGradGuard ng;
      return model.forward(apply_universal_delta(x, a.delta)).to(Device{});
    }
  }
  MOESEG_FAIL("robustness: unreachable attack kind");
}

}  // namespace

FrozenParameters::FrozenParameters(SegmentationModel& model) {
  for (Tensor p : model.parameters())
    if (p.requires_grad()) {
      p.set_requires_grad(false);
      frozen_.push_back(p);
    }
}

FrozenParameters::~FrozenParameters() {
  for (Tensor& p : frozen_) p.set_requires_grad(true);
}

json evaluate_attacks(SegmentationModel& model, const ExperimentConfig& c, const std::vector<AttackSpec>& attacks,
                      const RobustnessOptions& opt, const std::string& model_name) {
  MOESEG_CHECK(!attacks.empty(), "robustness: no attack to evaluate for ", model_name);
  for (const AttackSpec& a : attacks) {
    if (a.kind == AttackKind::Universal) {
      MOESEG_CHECK(a.delta.defined() && a.delta.dim() == 3 && a.delta.size(0) == 3, "robustness: attack '", a.name,
                   "' needs a delta [3,H,W], got ", a.delta.defined() ? a.delta.str() : std::string("none"));
      MOESEG_CHECK(a.delta.size(1) == c.data.height && a.delta.size(2) == c.data.width, "robustness: attack '", a.name,
                   "': delta ", a.delta.str(), " does not match the config's images (", c.data.height, "x",
                   c.data.width, ")");
    }
  }
  std::vector<std::string> subsets = opt.subsets.empty() ? c.data.test_subsets : opt.subsets;
  MOESEG_CHECK(!subsets.empty(), "robustness: no subset to evaluate for ", model_name);
  const int64_t C = model.num_classes();
  const Device dev = model.device();
  model.eval();
  FrozenParameters frozen(model);
  auto parts_of = [&](const std::string& subset) {
    auto parts = data::union_subset_parts(c.data.dataset, subset);
    for (auto& p : parts)
      if (!std::count(subsets.begin(), subsets.end(), p)) return std::vector<std::string>{};
    return parts;
  };
  // cms[subset][attack]
  std::map<std::string, std::vector<ConfusionMatrix>> cms;
  std::map<std::string, int64_t> images;
  for (const std::string& subset : subsets) {
    if (!parts_of(subset).empty()) continue;   // merged below
    auto ds = open_experiment_data(c.data, subset, opt.split, opt.max_images);
    data::LoaderOptions lo;
    lo.batch_size = static_cast<size_t>(opt.batch > 0 ? opt.batch : c.train.batch);
    lo.num_workers = 0;
    lo.augment = data::reference_preset(c.data.height, c.data.width, false);
    data::DataLoader loader(ds, lo);
    loader.start_epoch(0);
    const int64_t ignore = ds->ignore_index();
    std::vector<ConfusionMatrix> m(attacks.size(), ConfusionMatrix(C));
    ProgressBar bar("  attack " + model_name + " on " + subset, static_cast<int64_t>(loader.batches_per_epoch()),
                    opt.quiet);
    data::Batch b;
    int64_t k = 0, n = 0;
    while (loader.next(b)) {
      const Tensor x = b.images.to(dev), y = b.labels.to(dev);
      for (size_t i = 0; i < attacks.size(); ++i) {
        const Tensor logits = attacked_logits(model, attacks[i], x, y, ignore, static_cast<uint64_t>(k));
        m[i].update(argmax(logits, 1), b.labels);
      }
      n += b.images.size(0);
      bar.update(++k, NAN, n);
    }
    bar.finish();
    cms.emplace(subset, std::move(m));
    images[subset] = n;
  }
  for (const std::string& subset : subsets) {
    const auto parts = parts_of(subset);
    if (parts.empty()) continue;
    std::vector<ConfusionMatrix> m(attacks.size(), ConfusionMatrix(C));
    int64_t n = 0;
    for (const std::string& p : parts) {
      for (size_t i = 0; i < attacks.size(); ++i) m[i].merge(cms.at(p)[i]);
      n += images.at(p);
    }
    cms.emplace(subset, std::move(m));
    images[subset] = n;
  }
  json out = {{"model", model_name}, {"attacks", json::object()}};
  for (size_t i = 0; i < attacks.size(); ++i) {
    json subs = json::object();
    for (const std::string& s : subsets) {
      const ConfusionMatrix& m = cms.at(s)[i];
      const double miou = m.mean_iou(), acc = m.pixel_accuracy();
      subs[s] = {{"images", images.at(s)},
                 {"miou", std::isfinite(miou) ? json(miou) : json()},
                 {"pixel_accuracy", std::isfinite(acc) ? json(acc) : json()}};
    }
    out["attacks"][attacks[i].name] = {{"subsets", subs}};
  }
  return out;
}

Tensor make_universal_delta(SegmentationModel& model, const ExperimentConfig& c, const UniversalSpec& spec) {
  MOESEG_CHECK(spec.batch >= 1, "robustness: universal batch must be >= 1, got ", spec.batch);
  auto ds = open_experiment_data(c.data, spec.subsets.empty() ? c.data.subset : spec.subsets, spec.split,
                                 spec.max_images);
  UniversalOptions o = spec.attack;
  o.loader.batch_size = static_cast<size_t>(spec.batch);
  o.loader.num_workers = 0;
  o.loader.shuffle = false;   // the reference's loaders do not shuffle
  o.loader.augment = data::reference_preset(c.data.height, c.data.width, false);
  FrozenParameters frozen(model);
  return universal_perturbation(model, ds, o);
}

double attacked_miou(const json& result, const std::string& attack, const std::string& subset) {
  if (!result.contains("attacks") || !result["attacks"].contains(attack)) return NAN;
  const json& s = result["attacks"][attack]["subsets"];
  if (!s.contains(subset) || !s[subset]["miou"].is_number()) return NAN;
  return s[subset]["miou"].get<double>();
}

}  // namespace moeseg
