// The training loop (training/trainer.h).
#include "training/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/device_probe.h"
#include "core/json_checks.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/value_checks.h"
#include "data/loader.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/shape_ops.h"
#include "training/checkpoint.h"
#include "training/curves.h"
#include "training/member_cache.h"
#include "training/optimizer_factory.h"
#include "training/progress.h"
#include "training/schedule.h"

namespace moeseg {

namespace fs = std::filesystem;
using json = nlohmann::json;

TrainSummary train_experiment(const ExperimentConfig& c, const TrainOptions& opt) {
  auto model = build_experiment_model(c);
  return train_model(c, *model, opt);
}

TrainSummary train_model(const ExperimentConfig& c, SegmentationModel& model, const TrainOptions& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  const TrainConfig& T = c.train;
  const std::string run = c.out, last_dir = run + "/last", best_dir = run + "/best";
  MOESEG_CHECK(opt.resume || opt.overwrite || !checkpoint_exists(last_dir), c.source, ": the run folder ", run,
               " already holds a run (", last_dir, "); pass --resume to continue it or --overwrite to start again");
  fs::create_directories(run);
  remove_stale_temp_files(last_dir);
  remove_stale_temp_files(best_dir);
  const std::string hash = config_hash(c);

  // Where it runs: train.device ("cpu" by default; "cuda" falls back to the CPU with one line
  // when no GPU is usable). The model moves there before the optimiser sees its parameters.
  const Device dev = resolve_device(T.device);
  model.to(dev);

  // The parameters to train: everything trainable (a mixture's gate and final conv only: its
  // members are frozen).
  NamedParameters params;
  for (auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) params.emplace_back(name, p);
  MOESEG_CHECK(!params.empty(), c.source, ": the model has no trainable parameters (an ensemble needs no training)");
  std::vector<Tensor> param_tensors;
  for (auto& [n, p] : params) param_tensors.push_back(p);
  auto optimizer = make_optimizer(T.optimizer, params);

  std::unique_ptr<MemberCache> cache;
  try {
    if (T.cache_expert_outputs && !model.frozen_members().empty()) cache = std::make_unique<MemberCache>(model);
  } catch (const Error& e) {
    MOESEG_FAIL(c.source, ": ", e.what());
  }
  const bool use_cache = cache != nullptr;

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
    // null while no validation loss was finite yet (JSON has no infinity); extra may be absent.
    if (meta.extra.is_object() && meta.extra.contains("best_val_loss") && !meta.extra.at("best_val_loss").is_null())
      best_loss = json_as<double>(meta.extra.at("best_val_loss"), "extra.best_val_loss", last_dir + "/meta.json");
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
      const ModelOutput out = cache ? model.combine_members(cache->lookup(b)) : model.forward_detailed(b.images);
      Tensor loss = cross_entropy(out.logits, b.labels, weights, T.ignore_index);
      for (const auto& [name, aux] : out.aux_losses) loss = add(loss, aux);
      loss.backward();
      double gnorm = NAN;
      if (T.grad_clip > 0) gnorm = clip_grad_norm(param_tensors, T.grad_clip);
      optimizer->step();
      const double lv = loss.item();
      MOESEG_CHECK(std::isfinite(lv), c.name, ": loss is ", lv, " at epoch ", epoch + 1, " step ", meta.step + 1,
                   " ", non_finite_loss_hint(b.images, params));
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
