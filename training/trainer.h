// The trainer: trains what an experiment config describes — an expert on one subset, a baseline
// on the union, or an MoE gate (+ final conv) on frozen experts — with validation mIoU every N
// epochs, a best-mIoU checkpoint, early stopping, a JSONL log, SVG curves and exact resumption.
// Its pieces: experiment_setup.h (data, model, augmentation of a config), validation.h,
// member_cache.h (frozen-member outputs), optimizer_factory.h, checkpoint.h; this file the loop.
//
// Determinism and resumption: the data order of an epoch is a Philox shuffle of (seed, epoch)
// (data/loader.h), augmentation is keyed by (seed, epoch, index), the LR is a pure function of
// the epoch or step (training/schedule.h), and the dropout generator's offset is saved at every
// epoch end. So "1 epoch, stop, --resume, 1 epoch" gives bit-for-bit the weights of "2 epochs" on
// the CPU (tests/training/test_trainer.cpp checks every tensor).
//
// Gate stage: a model that combines frozen members (the MoE) has only its combination (gate,
// final conv) trainable, its members frozen (eval mode: their BatchNorm statistics never change);
// with train.cache_expert_outputs the members' outputs are cached (training/member_cache.h).
// Auxiliary losses a model returns (ModelOutput::aux_losses) are added to the task loss.
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
#include "training/experiment_setup.h"
#include "training/validation.h"

namespace moeseg {

// ---- training --------------------------------------------------------------------------------
struct TrainOptions {
  bool resume = false;          // continue from <out>/last (error if absent)
  // A run folder that already holds a run (a last/ checkpoint) is refused unless the call
  // resumes it or overwrite is set: a second `moeseg train` into the same --out never silently
  // replaces the first run.
  bool overwrite = false;
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

}  // namespace moeseg
