// The training loop, validation, data opening and the frozen-expert cache (see trainer.h).
#include "training/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "core/autograd.h"
#include "core/device_probe.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "data/a2d2.h"
#include "data/camvid.h"
#include "data/loader.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/shape_ops.h"
#include "models/moe.h"
#include "models/registry.h"
#include "training/checkpoint.h"
#include "training/curves.h"
#include "training/metrics.h"
#include "training/optimizer.h"
#include "training/progress.h"
#include "training/schedule.h"

namespace moeseg {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A view of some samples of another dataset, by index.
class IndexedDataset : public data::Dataset {
 public:
  IndexedDataset(std::shared_ptr<const data::Dataset> base, std::vector<size_t> idx, std::string name)
      : base_(std::move(base)), idx_(std::move(idx)), name_(std::move(name)) {}
  size_t size() const override { return idx_.size(); }
  data::Sample get(size_t i) const override { return base_->get(idx_.at(i)); }
  int num_classes() const override { return base_->num_classes(); }
  int ignore_index() const override { return base_->ignore_index(); }
  std::string name() const override { return name_; }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::vector<size_t> idx_;
  std::string name_;
};

std::vector<size_t> range(size_t a, size_t b) {
  std::vector<size_t> v;
  for (size_t i = a; i < b; ++i) v.push_back(i);
  return v;
}

std::shared_ptr<const data::Dataset> open_camvid_part(const DataConfig& d, const std::string& subset,
                                                      const std::string& split) {
  data::CamVidOptions o;
  o.root = d.root;
  MOESEG_CHECK(subset == "dusk" || subset == "day", "CamVid: unknown subset '", subset, "' (known: dusk, day, all)");
  o.domains = {subset};
  const std::string tag = "camvid:" + subset + ":" + split;
  if (subset == "dusk") {
    o.split = "train";   // all dusk frames come from train.txt; the tail is held out (trainer.h)
    auto all = std::make_shared<data::CamVidDataset>(o);
    const size_t n = all->size(), hold = std::min<size_t>(static_cast<size_t>(std::max(d.camvid_dusk_holdout, 2)), n / 2);
    const size_t first = n - hold, mid = first + hold / 2;
    if (split == "train") return std::make_shared<IndexedDataset>(all, range(0, first), tag);
    if (split == "val") return std::make_shared<IndexedDataset>(all, range(first, mid), tag);
    if (split == "test") return std::make_shared<IndexedDataset>(all, range(mid, n), tag);
  } else {
    if (split == "train") {
      o.split = "train";
      return std::make_shared<data::CamVidDataset>(o);
    }
    o.split = "val";
    auto all = std::make_shared<data::CamVidDataset>(o);
    const size_t n = all->size();
    if (split == "val") return std::make_shared<IndexedDataset>(all, range(0, n / 2), tag);
    if (split == "test") return std::make_shared<IndexedDataset>(all, range(n / 2, n), tag);
  }
  MOESEG_FAIL("CamVid: unknown split '", split, "' (known: train, val, test)");
}

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

// ---- the frozen-expert cache (trainer.h) -------------------------------------------------------
uint64_t hash_tensor(const Tensor& t, uint64_t h) {
  Tensor c = t.to(Device{}).contiguous();
  const auto* p = static_cast<const unsigned char*>(c.raw_data());
  const size_t n = static_cast<size_t>(c.numel()) * dtype_size(c.dtype());
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct ExpertOutputs {
  std::vector<Tensor> taps, logits;   // per expert, [1, ...]
};

class ExpertCache {
 public:
  explicit ExpertCache(MoE& moe) : moe_(moe) {}
  // Taps and logits of every expert for the batch, from the cache or computed per sample.
  void lookup(const data::Batch& b, std::vector<Tensor>& taps, std::vector<Tensor>& logits) {
    const size_t E = moe_.experts().size();
    std::vector<std::vector<Tensor>> t(E), l(E);
    for (int64_t i = 0; i < b.images.size(0); ++i) {
      Tensor img = b.images.narrow(0, i, 1).contiguous();
      const uint64_t key = hash_tensor(img, 1469598103934665603ull ^ (b.indices[i] * 0x9E3779B97F4A7C15ull));
      auto it = map_.find(key);
      if (it == map_.end()) {
        NoGradGuard ng;
        ExpertOutputs o;
        for (auto& e : moe_.experts()) {
          SegmentationOutput so = e->forward_with_taps(img, {moe_.config().tap});
          o.taps.push_back(so.taps.at(moe_.config().tap).contiguous());
          o.logits.push_back(so.logits.contiguous());
        }
        it = map_.emplace(key, std::move(o)).first;
        ++misses_;
      } else {
        ++hits_;
      }
      for (size_t e = 0; e < E; ++e) {
        t[e].push_back(it->second.taps[e]);
        l[e].push_back(it->second.logits[e]);
      }
    }
    taps.clear();
    logits.clear();
    for (size_t e = 0; e < E; ++e) {
      taps.push_back(t[e].size() == 1 ? t[e][0] : concat(t[e], 0));
      logits.push_back(l[e].size() == 1 ? l[e][0] : concat(l[e], 0));
    }
  }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  MoE& moe_;
  std::unordered_map<uint64_t, ExpertOutputs> map_;
  int64_t hits_ = 0, misses_ = 0;
};

// The MoE's combination (models/moe.cpp forward_moe) from given expert outputs.
Tensor moe_combine(MoE& moe, const std::vector<Tensor>& taps, const std::vector<Tensor>& logits) {
  return moe.combine(taps, logits).first;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& o, NamedParameters params) {
  if (o.type == "sgd") {
    SGDOptions s;
    s.lr = o.lr;
    s.momentum = o.momentum;
    s.weight_decay = o.weight_decay;
    s.nesterov = o.nesterov;
    return std::make_unique<SGD>(std::move(params), s);
  }
  AdamOptions a;
  a.lr = o.lr;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.weight_decay = o.weight_decay;
  if (o.type == "adamw") return std::make_unique<AdamW>(std::move(params), a);
  return std::make_unique<Adam>(std::move(params), a);
}

data::AugmentConfig augment_for(const DataConfig& d, bool train, int ignore_index) {
  data::AugmentConfig a = data::reference_preset(d.height, d.width, train && d.preset == "reference");
  a.ignore_index = ignore_index;
  return a;
}

Tensor class_weight_tensor(const TrainConfig& t, int64_t classes) {
  if (t.class_weights.empty()) return Tensor();
  MOESEG_CHECK(static_cast<int64_t>(t.class_weights.size()) == classes, "train.class_weights: ", t.class_weights.size(),
               " weights for ", classes, " classes");
  std::vector<float> w(t.class_weights.begin(), t.class_weights.end());
  return Tensor::from_vector(w, {classes});
}

}  // namespace

std::shared_ptr<const data::Dataset> open_experiment_data(const DataConfig& d, const std::string& subsets,
                                                          const std::string& split, int max_images) {
  std::vector<std::shared_ptr<const data::Dataset>> parts;
  for (const std::string& s0 : split_csv(subsets)) {
    std::vector<std::string> names = {s0};
    if (d.dataset == "camvid" && s0 == "all") names = {"dusk", "day"};
    for (auto& s : names) {
      std::shared_ptr<const data::Dataset> ds;
      if (d.dataset == "camvid") {
        ds = open_camvid_part(d, s, split);
      } else {
        data::A2D2Options o;
        o.root = d.root;
        o.subset = s;
        o.split = split;
        o.unknown_colour_to_ignore = d.unknown_colour_to_ignore;
        ds = std::make_shared<data::A2D2Dataset>(o);
      }
      if (max_images > 0 && ds->size() > static_cast<size_t>(max_images))
        ds = std::make_shared<IndexedDataset>(ds, range(0, static_cast<size_t>(max_images)),
                                              ds->name() + "[:" + std::to_string(max_images) + "]");
      parts.push_back(ds);
    }
  }
  MOESEG_CHECK(!parts.empty(), "data: no subsets in '", subsets, "'");
  if (parts.size() == 1) return parts[0];
  return std::make_shared<data::ConcatDataset>(parts);
}

std::shared_ptr<SegmentationModel> build_experiment_model(const ExperimentConfig& c) {
  return make_model_from_config(c.model, c.base_dir);
}

ValidationResult validate_model(SegmentationModel& model, const data::Dataset& ds, const ExperimentConfig& c,
                                bool quiet) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  data::LoaderOptions lo;
  lo.batch_size = static_cast<size_t>(c.train.batch);
  lo.num_workers = c.data.workers;
  lo.augment = augment_for(c.data, false, ds.ignore_index());
  std::shared_ptr<const data::Dataset> view(&ds, [](const data::Dataset*) {});
  data::DataLoader loader(view, lo);
  loader.start_epoch(0);
  ConfusionMatrix cm(model.num_classes());
  Tensor weights = class_weight_tensor(c.train, model.num_classes());
  double loss_sum = 0;
  int64_t n = 0, k = 0;
  ProgressBar bar("  validate", static_cast<int64_t>(loader.batches_per_epoch()), quiet);
  data::Batch b;
  const Device dev = model.device();
  if (weights.defined()) weights = weights.to(dev);
  while (loader.next(b)) {
    b.to(dev);
    Tensor logits = model.forward(b.images);
    const int64_t bn = b.images.size(0);
    loss_sum += cross_entropy(logits, b.labels, weights, c.train.ignore_index).item() * static_cast<double>(bn);
    cm.update_from_logits(logits, b.labels);
    n += bn;
    bar.update(++k, loss_sum / static_cast<double>(n), n);
  }
  bar.finish();
  model.train(was_training);
  ValidationResult r;
  r.loss = n ? loss_sum / static_cast<double>(n) : NAN;
  r.miou = cm.mean_iou();
  r.images = n;
  return r;
}

TrainSummary train_experiment(const ExperimentConfig& c, const TrainOptions& opt) {
  auto model = build_experiment_model(c);
  return train_model(c, *model, opt);
}

TrainSummary train_model(const ExperimentConfig& c, SegmentationModel& model, const TrainOptions& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  const TrainConfig& T = c.train;
  const std::string run = c.out, last_dir = run + "/last", best_dir = run + "/best";
  fs::create_directories(run);
  remove_stale_temp_files(last_dir);
  remove_stale_temp_files(best_dir);
  const std::string hash = config_hash(c);

  // Where it runs: train.device ("cpu" by default; "cuda" falls back to the CPU with one line
  // when no GPU is usable). The model moves there before the optimiser sees its parameters.
  const Device dev = resolve_device(T.device);
  model.to(dev);

  // The parameters to train: everything trainable, or the MoE's gate (+ conv) only.
  MoE* moe = dynamic_cast<MoE*>(&model);
  NamedParameters params;
  for (auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) params.emplace_back(name, p);
  MOESEG_CHECK(!params.empty(), c.source, ": the model has no trainable parameters (an ensemble needs no training)");
  if (moe) {   // sanity: exactly the MoE's own trainable set
    MOESEG_CHECK(params.size() == moe->trainable_parameters().size(), "trainer: MoE has ", params.size(),
                 " trainable tensors but trainable_parameters() lists ", moe->trainable_parameters().size());
  }
  std::vector<Tensor> param_tensors;
  for (auto& [n, p] : params) param_tensors.push_back(p);
  auto optimizer = make_optimizer(T.optimizer, params);

  const bool use_cache = moe && T.cache_expert_outputs;
  MOESEG_CHECK(!(use_cache && moe->config().experts_bn_train_mode), c.source,
               ": train.cache_expert_outputs cannot be used with experts_bn_train_mode (the experts' outputs change "
               "while training)");
  std::unique_ptr<ExpertCache> cache = use_cache ? std::make_unique<ExpertCache>(*moe) : nullptr;

  auto train_ds = open_experiment_data(c.data, c.data.subset, "train", c.data.max_train);
  auto val_ds = open_experiment_data(c.data, c.data.val_subset, "val", c.data.max_val);
  MOESEG_CHECK(train_ds->num_classes() == model.num_classes(), c.source, ": data has ", train_ds->num_classes(),
               " classes, the model ", model.num_classes());
  data::LoaderOptions lo;
  lo.batch_size = static_cast<size_t>(T.batch);
  lo.shuffle = T.shuffle;
  lo.seed = T.seed;
  lo.num_workers = c.data.workers;
  lo.augment = augment_for(c.data, true, train_ds->ignore_index());
  data::DataLoader loader(train_ds, lo);
  int64_t steps_per_epoch = static_cast<int64_t>(loader.batches_per_epoch());
  if (T.max_steps_per_epoch > 0) steps_per_epoch = std::min<int64_t>(steps_per_epoch, T.max_steps_per_epoch);
  Tensor weights = class_weight_tensor(T, model.num_classes());
  if (weights.defined()) weights = weights.to(dev);

  ScheduleOptions sched = T.schedule;
  sched.base_lr = T.optimizer.lr;
  sched.total_steps = std::max<int64_t>(1, T.schedule_per == "epoch" ? T.epochs : T.epochs * steps_per_epoch);
  validate(sched);

  // State, fresh or from last/.
  CheckpointMeta meta;
  meta.config_hash = hash;
  meta.rng_seed = T.seed;
  double best_loss = INFINITY;
  default_generator().manual_seed(T.seed);
  JsonlLog log;
  if (opt.resume) {
    MOESEG_CHECK(checkpoint_exists(last_dir), "--resume: no checkpoint in ", last_dir);
    meta = load_training_checkpoint(last_dir, model, optimizer.get());
    MOESEG_CHECK(meta.config_hash == hash, "--resume: ", last_dir, " was written by another config (hash ",
                 meta.config_hash, ", this config ", hash, ")");
    default_generator().manual_seed(meta.rng_seed);
    default_generator().set_offset(meta.rng_offset);
    best_loss = meta.extra.value("best_val_loss", INFINITY);
    log.open(run + "/train_log.jsonl", true);
    log.write({{"kind", "resume"}, {"epoch", meta.epoch}, {"step", meta.step}});
  } else {
    log.open(run + "/train_log.jsonl", false);
    write_file_atomic(run + "/config.json", c.raw.dump(2) + "\n");
    log.write({{"kind", "start"}, {"name", c.name}, {"config_hash", hash}, {"train_images", train_ds->size()},
               {"val_images", val_ds->size()}, {"trainable_parameters", model.num_parameters(true)},
               {"threads", omp_get_max_threads()}});
  }
  if (!opt.quiet)
    std::printf("%s: %zu train / %zu val images, %lld trainable parameters, %lld steps/epoch%s\n", c.name.c_str(),
                train_ds->size(), val_ds->size(), static_cast<long long>(model.num_parameters(true)),
                static_cast<long long>(steps_per_epoch), use_cache ? ", frozen-expert outputs cached" : "");

  TrainSummary sum;
  sum.run_dir = run;
  int64_t images_total = 0;
  double train_seconds = 0;
  int epochs_this_call = 0;
  model.train();
  for (int64_t epoch = meta.epoch; epoch < T.epochs; ++epoch) {
    if (T.schedule_per == "epoch") optimizer->set_lr(learning_rate_at(sched, epoch));
    loader.start_epoch(static_cast<uint64_t>(epoch));
    ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(T.epochs), steps_per_epoch, opt.quiet);
    const auto t_epoch = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t k = 0, images = 0;
    data::Batch b;
    while (k < steps_per_epoch && loader.next(b)) {
      b.to(dev);
      if (T.schedule_per == "step") optimizer->set_lr(learning_rate_at(sched, meta.step));
      optimizer->zero_grad();
      Tensor logits;
      if (cache) {
        std::vector<Tensor> taps, expert_logits;
        cache->lookup(b, taps, expert_logits);
        logits = moe_combine(*moe, taps, expert_logits);
      } else {
        logits = model.forward(b.images);
      }
      Tensor loss = cross_entropy(logits, b.labels, weights, T.ignore_index);
      loss.backward();
      double gnorm = NAN;
      if (T.grad_clip > 0) gnorm = clip_grad_norm(param_tensors, T.grad_clip);
      optimizer->step();
      const double lv = loss.item();
      MOESEG_CHECK(std::isfinite(lv), c.name, ": loss is ", lv, " at epoch ", epoch + 1, " step ", meta.step + 1,
                   " (diverged: lower train.optimizer.lr or set train.grad_clip)");
      ++k;
      ++meta.step;
      images += b.images.size(0);
      loss_sum += lv;
      if (T.log_every > 0 && (k % T.log_every == 0 || k == steps_per_epoch)) {
        json j = {{"kind", "step"},
                  {"epoch", epoch + 1},
                  {"step", meta.step},
                  {"epoch_f", static_cast<double>(epoch) + static_cast<double>(k) / static_cast<double>(steps_per_epoch)},
                  {"loss", lv},
                  {"lr", optimizer->lr()}};
        if (std::isfinite(gnorm)) j["grad_norm"] = gnorm;
        log.write(j);
      }
      bar.update(k, loss_sum / static_cast<double>(k), images);
    }
    bar.finish();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
    train_seconds += sec;
    images_total += images;
    json ej = {{"kind", "epoch"}, {"epoch", epoch + 1}, {"step", meta.step},   {"train_loss", k ? loss_sum / k : NAN},
               {"seconds", sec},  {"images", images},   {"lr", optimizer->lr()}};
    if (cache) ej["cache"] = {{"hits", cache->hits()}, {"misses", cache->misses()}};
    log.write(ej);
    meta.epoch = epoch + 1;

    // Validation, best checkpoint, early stopping.
    bool improved = false;
    const bool validate_now = (meta.epoch % T.val_every == 0) || meta.epoch == T.epochs;
    if (validate_now) {
      ValidationResult v = validate_model(model, *val_ds, c, opt.quiet);
      meta.val_miou = v.miou;
      sum.last_val_miou = v.miou;
      improved = !meta.has_best || v.miou > meta.best_metric;
      if (improved) {
        meta.best_metric = v.miou;
        meta.best_epoch = meta.epoch;
        meta.has_best = true;
      }
      bool monitored_improved = T.early_stopping == "miou" ? improved : v.loss < best_loss;
      if (v.loss < best_loss) best_loss = v.loss;
      meta.bad_validations = monitored_improved ? 0 : meta.bad_validations + 1;
      log.write({{"kind", "val"},
                 {"epoch", meta.epoch},
                 {"step", meta.step},
                 {"val_loss", v.loss},
                 {"miou", v.miou},
                 {"best_miou", meta.best_metric},
                 {"improved", improved}});
      if (!opt.quiet)
        std::printf("  val loss %.4f mIoU %.2f%% (best %.2f%% at epoch %lld)%s\n", v.loss, 100 * v.miou,
                    100 * meta.best_metric, static_cast<long long>(meta.best_epoch), improved ? " *" : "");
    } else {
      meta.val_miou = -1;
    }
    meta.rng_offset = default_generator().offset();
    meta.extra = {{"best_val_loss", std::isfinite(best_loss) ? json(best_loss) : json()}, {"name", c.name}};
    if (improved) save_training_checkpoint(best_dir, model, optimizer.get(), meta);
    save_training_checkpoint(last_dir, model, optimizer.get(), meta);
    ++epochs_this_call;
    if (T.patience > 0 && meta.bad_validations >= T.patience) {
      sum.early_stopped = true;
      log.write({{"kind", "early_stop"}, {"epoch", meta.epoch}, {"patience", T.patience}});
      if (!opt.quiet)
        std::printf("  early stop: no improvement of val %s in %d validations\n", T.early_stopping.c_str(), T.patience);
      break;
    }
    if (opt.stop_after_epochs >= 0 && epochs_this_call >= opt.stop_after_epochs) break;
  }
  write_run_curves(run);
  sum.epochs_done = meta.epoch;
  sum.steps = meta.step;
  sum.best_miou = meta.has_best ? meta.best_metric : -1;
  sum.best_epoch = meta.best_epoch;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  sum.images_per_second = train_seconds > 0 ? static_cast<double>(images_total) / train_seconds : 0;
  log.write({{"kind", "end"},
             {"epochs_done", sum.epochs_done},
             {"best_miou", sum.best_miou},
             {"best_epoch", sum.best_epoch},
             {"early_stopped", sum.early_stopped},
             {"seconds", sum.seconds},
             {"images_per_second", sum.images_per_second}});
  return sum;
}

}  // namespace moeseg
