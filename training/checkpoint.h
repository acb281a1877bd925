// Training checkpoints: a folder with three files (each file itself written tmp + rename):
//   model.safetensors      the model's state_dict (parameters and buffers, PyTorch names)
//   optimizer.safetensors  the optimiser's state_dict (training/optimizer.h)
//   meta.json              epoch, step, best metric, early-stopping counter, RNG offsets, config hash
// The folder as a whole is replaced atomically too: the files go into <dir>.staging/, then
// <dir> is renamed to <dir>.old, <dir>.staging to <dir>, and <dir>.old is removed. A crash while
// writing leaves <dir> untouched (and a stale .staging that the next save removes); a crash
// between the two renames leaves <dir>.old, which the loader falls back to. So <dir> always holds
// the three files of one and the same epoch, never a mix.
// The run folder holds last/ (after every epoch) and best/ (best validation mIoU).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "layers/module.h"
#include "training/optimizer.h"

namespace moeseg {

struct CheckpointMeta {
  int64_t epoch = 0;            // epochs completed
  int64_t step = 0;             // optimiser steps completed
  double best_metric = 0;       // best validation mIoU so far (or lowest loss, see monitor)
  int64_t best_epoch = -1;
  bool has_best = false;
  int64_t bad_validations = 0;  // validations since the last improvement (early stopping)
  uint64_t rng_seed = 0, rng_offset = 0;   // default_generator (dropout) at the end of `epoch`
  std::string config_hash;
  double val_miou = -1;         // validation mIoU of this checkpoint's epoch, when validated
  nlohmann::json extra;         // free-form (e.g. the config, timings)

  nlohmann::json to_json() const;
  static CheckpointMeta from_json(const nlohmann::json& j, const std::string& source);
};

// Writes dir/{model,optimizer}.safetensors and dir/meta.json (creating dir). optimizer may be null.
void save_training_checkpoint(const std::string& dir, const Module& model, const Optimizer* optimizer,
                              const CheckpointMeta& meta);
// Reads dir/meta.json (throws naming the file when missing or invalid, and the file and the key
// when a field is missing, of the wrong JSON type or out of range).
CheckpointMeta read_checkpoint_meta(const std::string& dir);
// Loads weights (strict) and, when optimizer is given, its state; returns the meta. NaN/Inf in
// a weight or in an optimiser state tensor is refused naming the file and the tensor, before
// anything is loaded.
CheckpointMeta load_training_checkpoint(const std::string& dir, Module& model, Optimizer* optimizer);
bool checkpoint_exists(const std::string& dir);   // dir/meta.json present

// Removes leftovers of an interrupted save of `dir` (<dir>.staging, *.tmp files); returns how
// many paths it removed.
int remove_stale_temp_files(const std::string& dir);

// Test hook: the next save throws after writing this many files into the staging folder
// (simulates a crash mid-save); -1 = off. Reset to -1 after it fires.
void set_checkpoint_failure_after_files(int n);

}  // namespace moeseg
