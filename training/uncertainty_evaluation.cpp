// Uncertainty and calibration over a dataset (training/uncertainty_evaluation.h).
#include "training/uncertainty_evaluation.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/autograd.h"
#include "core/error.h"
#include "data/augment.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "training/calibration.h"
#include "training/experiment_setup.h"
#include "training/mc_dropout.h"
#include "training/progress.h"
#include "training/report.h"
#include "training/uncertainty_images.h"

namespace moeseg {

using json = nlohmann::json;

namespace {

const std::vector<std::string>& known_measures() {
  static const std::vector<std::string> m = {"predictive_entropy", "mutual_information", "expert_variance",
                                             "gate_entropy"};
  return m;
}

size_t threshold_index(double t) {
  const std::vector<double> grid = conditional_thresholds();
  for (size_t k = 0; k < grid.size(); ++k)
    if (std::abs(grid[k] - t) < 1e-9) return k;
  MOESEG_FAIL("uncertainty: the PAvPU threshold ", t, " is not a point of the grid 0.01, 0.03, ..., 0.99");
}

// Each image of a CPU batch [N,3,H,W] corrupted; image n gets seed `seed + first + n`.
Tensor corrupt_batch(const Tensor& images, data::Corruption c, int severity, uint64_t seed) {
  const Tensor in = images.contiguous();
  Tensor out = Tensor::empty(in.shape(), in.dtype());
  const int64_t N = in.size(0), per = in.numel() / std::max<int64_t>(N, 1);
  for (int64_t n = 0; n < N; ++n) {
    const Tensor r = data::corrupt(in.select(0, n).contiguous(), c, severity, seed + static_cast<uint64_t>(n)).contiguous();
    std::memcpy(out.data<float>() + n * per, r.data<float>(), sizeof(float) * static_cast<size_t>(per));
  }
  return out;
}

// One model's output on a batch with its members' probabilities computed once for the member
// sets of its rows (training/uncertainty.h members_from_probs).
struct CachedOutput {
  ModelOutput out;
  std::vector<Tensor> member_probs;
  Tensor own_probs;   // computed when a set first needs it

  explicit CachedOutput(ModelOutput o) : out(std::move(o)) {
    for (const Tensor& l : out.member_logits) member_probs.push_back(member_probabilities(l));
  }
  Members members(MemberSet set) {
    if (!own_probs.defined() && (set == MemberSet::Stacked || member_probs.empty()))
      own_probs = member_probabilities(out.logits);
    return members_from_probs(out, set, member_probs, own_probs);
  }
};

struct CellState {
  CalibrationAccumulator pooled;
  PerImageCalibration per_image;
  CellState(int64_t ignore) : pooled(ignore), per_image(ignore) {}
};

UncertaintyScores scores_of(const CalibrationMetrics& m, const PerImageMeans& p, size_t k) {
  UncertaintyScores s;
  s.ece = p.ece_reference;
  s.mce = p.mce_reference;
  s.brier = p.brier_reference;
  s.nll = p.nll_reference;
  s.auroc = m.auroc;
  s.pavpu = m.pavpu_reference.at(k);
  s.pavpu_standard = m.pavpu_standard.at(k);
  s.accuracy = m.accuracy;
  s.ece_standard = m.ece;
  s.images = p.images;
  s.pixels = m.valid_pixels;
  return s;
}

// The mean of several passes' scores (counts summed).
UncertaintyScores mean_scores(const std::vector<UncertaintyScores>& v) {
  UncertaintyScores s;
  const double n = static_cast<double>(v.size());
  for (const UncertaintyScores& x : v) {
    s.ece += x.ece / n;
    s.mce += x.mce / n;
    s.brier += x.brier / n;
    s.nll += x.nll / n;
    s.auroc += x.auroc / n;
    s.pavpu += x.pavpu / n;
    s.pavpu_standard += x.pavpu_standard / n;
    s.accuracy += x.accuracy / n;
    s.ece_standard += x.ece_standard / n;
    s.images += x.images;
    s.pixels += x.pixels;
  }
  return s;
}

std::string slug(size_t row, const std::string& measure) {
  char b[32];
  std::snprintf(b, sizeof b, "r%02zu_", row);
  return b + measure;
}

}  // namespace

std::string measure_title(const std::string& measure) {
  if (measure == "predictive_entropy") return "PE";
  if (measure == "mutual_information") return "MI";
  if (measure == "expert_variance") return "EV";
  if (measure == "gate_entropy") return "gate entropy";
  return measure;
}

json scores_json(const UncertaintyScores& s) {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  return {{"ece", num(s.ece)},
          {"mce", num(s.mce)},
          {"brier", num(s.brier)},
          {"nll", num(s.nll)},
          {"auroc", num(s.auroc)},
          {"pavpu", num(s.pavpu)},
          {"pavpu_standard", num(s.pavpu_standard)},
          {"accuracy", num(s.accuracy)},
          {"ece_standard", num(s.ece_standard)},
          {"images", s.images},
          {"pixels", s.pixels}};
}

TextTable uncertainty_table(const std::vector<UncertaintyCell>& cells) {
  auto cell = [](double v) {
    if (!std::isfinite(v)) return std::string("n/a");
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v);
    return std::string(b);
  };
  TextTable t{{"Measure", "Members", "ECE", "MCE", "Brier", "NLL", "AUROC", "PAvPU"}, {}, 2};
  for (const UncertaintyCell& k : cells) {
    const UncertaintyScores& s = k.scores;
    t.rows.push_back({measure_title(k.measure), k.members, cell(s.ece), cell(s.mce), cell(s.brier), cell(s.nll),
                      cell(s.auroc), cell(s.pavpu)});
  }
  return t;
}

json uncertainty_cells_json(const std::vector<UncertaintyCell>& cells) {
  json a = json::array();
  for (const UncertaintyCell& k : cells)
    a.push_back({{"measure", k.measure}, {"members", k.members}, {"model", k.model}, {"scores", scores_json(k.scores)},
                 {"detail", k.detail}});
  return a;
}

std::vector<UncertaintyRowSpec> default_uncertainty_rows(const ModelOutput& probe, const std::string& key,
                                                         const std::string& title) {
  const bool gated = probe.gate.defined();
  const size_t members = probe.member_logits.size();
  std::vector<UncertaintyRowSpec> rows;
  auto add = [&](MemberSet set, size_t count, bool gate_entropy) {
    UncertaintyRowSpec r;
    r.model = key;
    r.members = title + " · " + member_set_name(set);
    r.set = set;
    r.measures = {"predictive_entropy"};
    if (count >= 2) {
      r.measures.push_back("mutual_information");
      r.measures.push_back("expert_variance");
    }
    if (gate_entropy) r.measures.push_back("gate_entropy");
    rows.push_back(r);
  };
  add(MemberSet::Plain, std::max<size_t>(members, 1), gated);
  if (gated) {
    add(MemberSet::Weighted, members, true);
    add(MemberSet::Stacked, members + 1, false);
  }
  return rows;
}

std::vector<UncertaintyCell> evaluate_uncertainty(const std::map<std::string, SegmentationModel*>& models,
                                                  const DataConfig& data, const std::vector<UncertaintyRowSpec>& rows,
                                                  const UncertaintyCondition& cond, const UncertaintyEvalOptions& opt) {
  const std::string where = "uncertainty (condition " + cond.name + ")";
  MOESEG_CHECK(!rows.empty(), where, ": no row to evaluate");
  MOESEG_CHECK(!cond.subsets.empty(), where, ": no subset to evaluate");
  MOESEG_CHECK(opt.batch >= 1, where, ": batch must be >= 1, got ", opt.batch);
  if (!cond.corruptions.empty())
    MOESEG_CHECK(cond.severity >= data::kMinCorruptionSeverity && cond.severity <= data::kMaxCorruptionSeverity, where,
                 ": severity ", cond.severity, " is outside 1..5");
  const size_t tk = threshold_index(opt.pavpu_threshold);
  for (const UncertaintyRowSpec& r : rows) {
    MOESEG_CHECK(models.count(r.model) && models.at(r.model), where, ": row '", r.members, "' names model '", r.model,
                 "', which is not loaded");
    MOESEG_CHECK(!r.measures.empty(), where, ": row '", r.members, "' has no measure");
    for (const std::string& m : r.measures) {
      bool known = false;
      for (const std::string& k : known_measures()) known = known || k == m;
      MOESEG_CHECK(known, where, ": row '", r.members, "': unknown measure '", m,
                   "' (known: predictive_entropy, mutual_information, expert_variance, gate_entropy)");
    }
  }
  for (auto& [name, m] : models) m->eval();

  // One pass per corruption (or one clean pass).
  std::vector<int> passes;   // corruption index, -1 = clean
  if (cond.corruptions.empty()) passes.push_back(-1);
  for (size_t i = 0; i < cond.corruptions.size(); ++i) passes.push_back(static_cast<int>(i));
  std::vector<UncertaintyCell> cells;
  std::vector<size_t> cell_row;
  for (size_t r = 0; r < rows.size(); ++r)
    for (const std::string& m : rows[r].measures) {
      cell_row.push_back(r);
      UncertaintyCell c;
      c.model = rows[r].model;
      c.members = rows[r].members;
      c.measure = m;
      c.detail = cond.corruptions.empty() ? json::object() : json{{"per_corruption", json::object()}};
      cells.push_back(std::move(c));
    }
  // Pictures of a single-pass condition (clean or another subset), not of each corruption.
  const bool pictures = !opt.pictures_dir.empty() && cond.corruptions.empty();
  if (pictures) std::filesystem::create_directories(opt.pictures_dir);

  std::vector<std::vector<UncertaintyScores>> cell_passes(cells.size());
  for (int pass : passes) {
    std::vector<std::unique_ptr<CellState>> state;
    int64_t ignore = opt.ignore_index;
    uint64_t image_index = 0, batch_index = 0;
    bool first_batch = true;
    const std::string pass_name = pass < 0 ? "clean" : data::to_string(cond.corruptions[static_cast<size_t>(pass)]);
    for (const std::string& subset : cond.subsets) {
      auto ds = open_experiment_data(data, subset, opt.split, opt.max_images);
      if (ignore < 0) ignore = ds->ignore_index();
      if (state.empty())
        for (size_t i = 0; i < cells.size(); ++i) state.push_back(std::make_unique<CellState>(ignore));
      data::LoaderOptions lo;
      lo.batch_size = static_cast<size_t>(opt.batch);
      lo.num_workers = 0;
      lo.augment = data::reference_preset(data.height, data.width, false);
      data::DataLoader loader(ds, lo);
      loader.start_epoch(0);
      ProgressBar bar("  uncertainty " + cond.name + " " + pass_name + " on " + subset,
                      static_cast<int64_t>(loader.batches_per_epoch()), opt.quiet);
      data::Batch b;
      int64_t k = 0, n_images = 0;
      while (loader.next(b)) {
        Tensor x = b.images;
        if (pass >= 0)
          x = corrupt_batch(x, cond.corruptions[static_cast<size_t>(pass)], cond.severity, cond.seed + image_index);
        std::map<std::string, CachedOutput> outputs;
        size_t ci = 0;
        for (size_t r = 0; r < rows.size(); ++r) {
          const UncertaintyRowSpec& row = rows[r];
          SegmentationModel& model = *models.at(row.model);
          const Tensor xd = x.to(model.device());
          std::unique_ptr<CachedOutput> mc;
          CachedOutput* co = nullptr;
          if (row.mc_dropout) {
            mc = std::make_unique<CachedOutput>(
                mc_dropout_output(model, xd, row.mc_rate, row.mc_samples, row.mc_seed + batch_index));
            co = mc.get();
          } else {
            auto it = outputs.find(row.model);
            if (it == outputs.end()) {
              NoGradGuard ng;
              it = outputs.emplace(row.model, CachedOutput(model.forward_detailed(xd))).first;
            }
            co = &it->second;
          }
          MOESEG_CHECK(row.set != MemberSet::Weighted || co->out.gate.defined(), where, ": row '", row.members,
                       "': member set 'weighted' needs a gate; model '", row.model, "' has none");
          const Members mem = co->members(row.mc_dropout ? MemberSet::Plain : row.set);
          const UncertaintyMaps u = compute_uncertainty(mem, co->out.gate, row.reduction);
          const Tensor y = b.labels.to(u.mean_probs.device());
          for (const std::string& measure : row.measures) {
            MOESEG_CHECK(measure != "gate_entropy" || u.gate_entropy.defined(), where, ": row '", row.members,
                         "' asks for gate entropy, but model '", row.model, "' has no gate");
            const Tensor un = normalised_uncertainty(u, measure);
            state[ci]->pooled.add(u.mean_probs, y, un);
            state[ci]->per_image.add(u.mean_probs, y, un);
            if (pictures && first_batch) {
              const std::string file = slug(r, measure) + "_map.png";
              data::write_png(opt.pictures_dir + "/" + file, uncertainty_map_image(un.to(Device{}), 1.0, 0));
              cells[ci].pictures.emplace_back(row.members + ": " + measure_title(measure) + " (image 0)", file);
            }
            ++ci;
          }
        }
        if (pictures && first_batch) {
          data::write_png(opt.pictures_dir + "/input_0.png", data::tensor_to_image(x.select(0, 0).contiguous()));
          write_label_png(opt.pictures_dir + "/labels_0.png", b.labels.select(0, 0).contiguous(),
                          models.begin()->second->num_classes());
        }
        first_batch = false;
        image_index += static_cast<uint64_t>(b.images.size(0));
        n_images += b.images.size(0);
        ++batch_index;
        bar.update(++k, NAN, n_images);
      }
      bar.finish();
    }
    MOESEG_CHECK(!state.empty(), where, ": the subsets gave no image");
    for (size_t i = 0; i < cells.size(); ++i) {
      const CalibrationMetrics m = state[i]->pooled.result();
      const PerImageMeans p = state[i]->per_image.result();
      const UncertaintyScores s = scores_of(m, p, tk);
      cell_passes[i].push_back(s);
      if (pass < 0) {
        cells[i].detail = calibration_json(m);
        cells[i].detail["per_image_mean"] = per_image_json(p);
        if (pictures) {
          const std::string file = slug(cell_row[i], cells[i].measure) + "_reliability.png";
          data::write_png(opt.pictures_dir + "/" + file, reliability_diagram(m.bins_reference));
          cells[i].pictures.emplace_back(cells[i].members + ": " + measure_title(cells[i].measure) +
                                             " reliability (confidence = 1 - u)",
                                         file);
        }
      } else {
        cells[i].detail["per_corruption"][pass_name] = scores_json(s);
      }
    }
  }
  for (size_t i = 0; i < cells.size(); ++i) cells[i].scores = mean_scores(cell_passes[i]);
  return cells;
}

}  // namespace moeseg
