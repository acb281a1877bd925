// The trainer: trains what an experiment config describes — an expert on one subset, a baseline
// on the union, or an MoE gate (+ final conv) on frozen experts — with validation mIoU every N
// epochs, a best-mIoU checkpoint, early stopping, a JSONL log, SVG curves and exact resumption.
//
// Determinism and resumption: the data order of an epoch is a Philox shuffle of (seed, epoch)
// (data/loader.h), augmentation is keyed by (seed, epoch, index), the LR is a pure function of
// the epoch or step (training/schedule.h), and the dropout generator's offset is saved at every
// epoch end. So "1 epoch, stop, --resume, 1 epoch" gives bit-for-bit the weights of "2 epochs" on
// the CPU (tests/training/test_trainer.cpp checks every tensor).
//
// MoE gate stage: only MoE::trainable_parameters() (gate, final conv) are optimised; the experts
// are frozen (eval mode: their BatchNorm statistics never change). With
// train.cache_expert_outputs the frozen experts' tap and logits of every training input are
// computed once, at batch size 1, and kept in memory, keyed by the sample index and a 64-bit
// hash of the input pixels: a random augmentation that changes the input (flip, crop, jitter)
// just misses the cache and computes afresh, so the cache is never wrong, only less useful. It
// is refused with experts_bn_train_mode (the reference quirk: experts' BN statistics drift, so
// their outputs are not constant). Always batch size 1 for expert passes in this mode, so a
// resumed run (cold cache) computes the same numbers as an uninterrupted one (warm cache).
//
// Threads: data.workers defaults to 0 (batches are decoded on the training thread). On a 2-core
// machine a loader thread competes with the OpenMP team of the kernels; libgomp's threads
// spin-wait at every barrier, so one descheduled thread stalls the whole team, and we measured
// 4 img/s instead of 65 img/s (FRRN-A width 0.125, 64x96) with one loader thread.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "models/segmentation_model.h"
#include "training/experiment_config.h"

namespace moeseg {

// ---- data ------------------------------------------------------------------------------------
// The dataset of `subsets` (comma separated) and split (train, val, test) as the config's data
// section says; each subset is cut to `max_images` (0 = all) before concatenation.
// A2D2 (and the synthetic scenes): subsets highway, urban, ambiguous, all.
// CamVid: subsets dusk (sequence 0001TP), day (the others), all. CamVid as published has train
// and val lists only, so: dusk train = 0001TP train frames minus the last camvid_dusk_holdout;
// dusk val = the first half of those held-out frames, dusk test = the second half; day train =
// the day frames of train.txt; day val = the first half of val.txt, day test = the second half.
std::shared_ptr<const data::Dataset> open_experiment_data(const DataConfig& d, const std::string& subsets,
                                                          const std::string& split, int max_images);

// The model of a config (registry JSON, relative paths against the config's folder).
std::shared_ptr<SegmentationModel> build_experiment_model(const ExperimentConfig& c);

// ---- training --------------------------------------------------------------------------------
struct TrainOptions {
  bool resume = false;          // continue from <out>/last (error if absent)
  bool quiet = false;           // no progress output
  int stop_after_epochs = -1;   // >= 0: return after this many epochs of this call (tests: interruption)
};

struct TrainSummary {
  std::string run_dir;
  int64_t epochs_done = 0, steps = 0;
  double best_miou = -1;
  int64_t best_epoch = -1;
  bool early_stopped = false;
  double seconds = 0;
  double images_per_second = 0;
  double last_val_miou = -1;
};

TrainSummary train_experiment(const ExperimentConfig& c, const TrainOptions& opt = {});
// Same, on a model built by the caller (tests; reproduce builds MoEs around trained experts).
TrainSummary train_model(const ExperimentConfig& c, SegmentationModel& model, const TrainOptions& opt = {});

// Mean loss and confusion matrix of `model` on `ds` at batch `batch` (eval mode, no gradients).
struct ValidationResult {
  double loss = 0, miou = 0;
  int64_t images = 0;
};
ValidationResult validate_model(SegmentationModel& model, const data::Dataset& ds, const ExperimentConfig& c,
                                bool quiet = true);

}  // namespace moeseg
