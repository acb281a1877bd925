// Experiment configs: one JSON file says which model to build (the registry's JSON, models/
// registry.h), which data to train and evaluate it on, and how to train it. `moeseg train`,
// `moeseg eval` and `moeseg reproduce` all read this one format; configs/ holds one per
// experiment of the reference (spec §1.7) plus the CPU presets.
//   {"name": "frrnA_highway",
//    "model": {...registry config...},
//    "data":  {"dataset": "a2d2"|"camvid", "root": "data/synthetic", "subset": "highway",
//              "val_subset": "highway", "test_subsets": ["highway","urban","ambiguous","all"],
//              "height": 480, "width": 640, "preset": "reference"|"resize", "max_train": 0,
//              "max_val": 0, "max_test": 0, "workers": 0, "camvid_dusk_holdout": 20,
//              "unknown_colour_to_ignore": false},
//    "train": {"epochs": 200, "batch": 2, "optimizer": {"type": "adam", "lr": 0.01, "momentum": 0.99,
//              "weight_decay": 1e-4, "betas": [0.9, 0.99]}, "schedule": {"kind": "cosine", "per": "epoch",
//              "eta_min": 1e-6, ...}, "grad_clip": 0, "val_every": 1, "patience": 50,
//              "early_stopping": "miou"|"loss", "seed": 304, "shuffle": true, "ignore_index": 255,
//              "class_weights": [..], "cache_expert_outputs": false, "max_steps_per_epoch": 0,
//              "log_every": 1},
//    "out": "runs/frrnA_highway"}
// Unknown keys and wrong types are errors naming the dotted key and the file. Overrides from the
// command line (`--set train.epochs=3`) are applied to the JSON before it is parsed: the value
// is JSON when it parses as JSON, else a string.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "training/schedule.h"

namespace moeseg {

struct DataConfig {
  std::string dataset = "a2d2";     // a2d2 (also the synthetic scenes, written as A2D2) or camvid
  std::string root;                 // resolved against the config's folder when relative
  std::string subset = "highway";   // training subset(s), comma separated: "highway,urban"
  std::string val_subset;           // default: subset
  std::vector<std::string> test_subsets = {"highway", "urban", "ambiguous", "all"};
  int height = 480, width = 640;
  std::string preset = "reference"; // reference: resize + flip p 0.5 (train); resize: resize only
  int max_train = 0, max_val = 0, max_test = 0;   // 0 = all; else the first N of each list
  int workers = 0;                  // loader threads; 0 = load on the training thread (see trainer.h)
  int camvid_dusk_holdout = 20;     // CamVid: the last N of the 62 0001TP train frames -> dusk val/test
  bool unknown_colour_to_ignore = false;   // A2D2: a label colour outside the table -> ignore (else error)
};

struct OptimizerConfig {
  std::string type = "adam";        // sgd | adam | adamw
  double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999;
  bool nesterov = false;
};

struct TrainConfig {
  int epochs = 1;
  int batch = 2;
  OptimizerConfig optimizer;
  ScheduleOptions schedule;         // base_lr and total_steps are filled by the trainer
  std::string schedule_per = "epoch";   // "epoch" (CosineAnnealingLR stepped per epoch) or "step"
  double grad_clip = 0;             // 0 = off
  int val_every = 1;
  int patience = 0;                 // 0 = no early stopping; counted in validations
  std::string early_stopping = "miou";  // the monitored quantity: val "miou" (max) or "loss" (min)
  uint64_t seed = 0;
  bool shuffle = true;
  int ignore_index = 255;
  std::vector<double> class_weights;
  bool cache_expert_outputs = false;
  int max_steps_per_epoch = 0;      // 0 = the whole epoch
  int log_every = 1;
  std::string device = "cpu";       // "cpu", "cuda" or "cuda:N" (core/device_probe.h resolves it)
};

struct ExperimentConfig {
  std::string name = "run";
  nlohmann::json model;             // the registry's config (paths already resolved)
  DataConfig data;
  TrainConfig train;
  std::string out;                  // run folder
  std::string source;               // file it came from (for error messages)
  std::string base_dir;             // folder relative paths were resolved against
  nlohmann::json raw;               // the JSON after overrides (saved into the run folder)
};

// Applies "a.b.c=value" to j (creating objects on the way); throws naming the override.
void apply_override(nlohmann::json& j, const std::string& assignment);

// Parses and validates; `source` names the file in errors, base_dir resolves relative paths.
ExperimentConfig parse_experiment_config(const nlohmann::json& j, const std::string& source,
                                         const std::string& base_dir);
ExperimentConfig load_experiment_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Hex FNV-1a of the canonical JSON of the parts that change the trained weights (model, data,
// train): a resumed run checks it against the checkpoint's.
std::string config_hash(const ExperimentConfig& c);

}  // namespace moeseg
