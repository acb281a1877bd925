// Training checkpoints written as whole folders, atomically (see checkpoint.h).
#include "training/checkpoint.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/json_checks.h"
#include "core/safetensors.h"
#include "core/value_checks.h"

namespace moeseg {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

int g_fail_after = -1;

void maybe_fail(int& written) {
  ++written;
  if (g_fail_after >= 0 && written >= g_fail_after) {
    g_fail_after = -1;
    MOESEG_FAIL("checkpoint: simulated failure after ", written, " file(s)");
  }
}

// Fault injection for the kill -9 tests (tests/tools/test_cli_kill_resume.cpp): with
// MOESEG_CHECKPOINT_PAUSE_MS set, a checkpoint write sleeps that long once the staging folder is
// complete and again between the two renames, so a test can kill the process at exactly those
// points. Unset (always, outside that test) it costs one getenv per checkpoint.
void pause_for_kill_test() {
  const char* ms = std::getenv("MOESEG_CHECKPOINT_PAUSE_MS");
  if (ms != nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
}

// The folder a reader should use: <dir>, or <dir>.old after a crash between the two renames.
std::string readable_dir(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "meta.json")) return dir;
  const std::string old = dir + ".old";
  if (fs::exists(fs::path(old) / "meta.json")) return old;
  return dir;
}

}  // namespace

void set_checkpoint_failure_after_files(int n) { g_fail_after = n; }

json CheckpointMeta::to_json() const {
  return json{{"epoch", epoch},
              {"step", step},
              {"best_metric", best_metric},
              {"best_epoch", best_epoch},
              {"has_best", has_best},
              {"bad_validations", bad_validations},
              {"rng_seed", rng_seed},
              {"rng_offset", rng_offset},
              {"config_hash", config_hash},
              {"val_miou", val_miou},
              {"extra", extra}};
}

namespace {
// best_metric / val_miou: a finite number, or null, which is how nlohmann writes a NaN or an
// infinity (read back as NaN: the value was not a number to compare with).
double number_or_null(const json& j, const char* key, const std::string& where) {
  if (j.contains(key) && j.at(key).is_null()) return std::numeric_limits<double>::quiet_NaN();
  return get_required<double>(j, key, where);
}
}  // namespace

CheckpointMeta CheckpointMeta::from_json(const json& j, const std::string& source) {
  // Every field typed and range-checked: a hand-edited or corrupt meta.json ("epoch": "three",
  // -1 steps, 2^40 epochs) fails naming the file and the key, not with a json exception.
  CheckpointMeta m;
  MOESEG_CHECK(j.is_object(), source, ": invalid checkpoint metadata: expected a JSON object, got ", json_text(j));
  constexpr int64_t kMaxCount = std::numeric_limits<int32_t>::max();   // epochs: what train.epochs holds
  m.epoch = get_required_int_in(j, "epoch", 0, kMaxCount, source);
  m.step = get_required_int_in(j, "step", 0, std::numeric_limits<int64_t>::max(), source);
  m.best_metric = number_or_null(j, "best_metric", source);
  m.best_epoch = get_required_int_in(j, "best_epoch", -1, kMaxCount, source);
  m.has_best = get_required<bool>(j, "has_best", source);
  m.bad_validations = get_required_int_in(j, "bad_validations", 0, kMaxCount, source);
  m.rng_seed = get_required<uint64_t>(j, "rng_seed", source);
  m.rng_offset = get_required<uint64_t>(j, "rng_offset", source);
  m.config_hash = get_required<std::string>(j, "config_hash", source);
  m.val_miou = j.contains("val_miou") ? number_or_null(j, "val_miou", source) : -1.0;
  if (j.contains("extra")) {
    m.extra = j.at("extra");
    MOESEG_CHECK(m.extra.is_object() || m.extra.is_null(), source, ": key 'extra' must be a JSON object, got ",
                 json_text(m.extra));
  }
  return m;
}

void save_training_checkpoint(const std::string& dir, const Module& model, const Optimizer* optimizer,
                              const CheckpointMeta& meta) {
  const fs::path final_dir(dir);
  const fs::path staging(dir + ".staging"), old(dir + ".old");
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging);
  const std::map<std::string, std::string> tag = {{"epoch", std::to_string(meta.epoch)},
                                                  {"step", std::to_string(meta.step)}};
  int written = 0;
  save_safetensors((staging / "model.safetensors").string(), model.state_dict(), tag);
  maybe_fail(written);
  if (optimizer) {
    save_safetensors((staging / "optimizer.safetensors").string(), optimizer->state_dict(), tag);
    maybe_fail(written);
  }
  write_file_atomic((staging / "meta.json").string(), meta.to_json().dump(2) + "\n");
  maybe_fail(written);
  pause_for_kill_test();
  // Swap the complete folder in. rename() cannot replace a non-empty folder, hence the .old step.
  fs::remove_all(old, ec);
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  pause_for_kill_test();
  fs::rename(staging, final_dir);
  fs::remove_all(old, ec);
}

CheckpointMeta read_checkpoint_meta(const std::string& dir) {
  const std::string path = (fs::path(readable_dir(dir)) / "meta.json").string();
  std::ifstream f(path);
  MOESEG_CHECK(f.good(), "checkpoint: no ", path, " (no complete checkpoint in ", dir, ")");
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    MOESEG_FAIL(path, ": invalid JSON: ", e.what());
  }
  return CheckpointMeta::from_json(j, path);
}

CheckpointMeta load_training_checkpoint(const std::string& dir, Module& model, Optimizer* optimizer) {
  const std::string d = readable_dir(dir);
  CheckpointMeta meta = read_checkpoint_meta(d);
  auto load_file = [&](const std::string& name) {
    const std::string path = (fs::path(d) / name).string();
    TensorFile tf = load_safetensors(path);
    auto it = tf.metadata.find("epoch");
    MOESEG_CHECK(it != tf.metadata.end() && it->second == std::to_string(meta.epoch), path, ": written at epoch ",
                 it == tf.metadata.end() ? "?" : it->second, " but meta.json says epoch ", meta.epoch,
                 " (mixed checkpoint)");
    return tf;
  };
  // Both files are read and checked before either is loaded, so a refused optimiser state leaves
  // the model as it was too.
  TensorFile weights = load_file("model.safetensors");
  TensorFile opt_state;
  if (optimizer) {
    opt_state = load_file("optimizer.safetensors");
    // Weights are refused when not finite by Module::load_state_dict; optimiser state (Adam's
    // exp_avg / exp_avg_sq, SGD's momentum buffers, the hyper-parameters) is refused here, the
    // same way: a NaN moment would turn every later step of that parameter into NaN.
    std::vector<std::string> non_finite;
    for (const auto& [name, t] : opt_state.tensors) {
      const std::string s = non_finite_summary(t);
      if (!s.empty()) non_finite.push_back(name + ": " + s);
    }
    if (!non_finite.empty()) {
      std::string list;
      for (auto& s : non_finite) list += "\n    " + s;
      MOESEG_FAIL("checkpoint ", d, "/optimizer.safetensors: ", non_finite.size(),
                  " optimizer state tensor(s) hold NaN or Inf values (corrupt or diverged), refused:", list);
    }
  }
  try {
    model.load_state_dict(weights.tensors, /*strict=*/true);
  } catch (const Error& e) {
    MOESEG_FAIL("checkpoint ", d, "/model.safetensors: ", e.what());
  }
  if (optimizer) {
    try {
      optimizer->load_state_dict(opt_state.tensors);
    } catch (const Error& e) {
      MOESEG_FAIL("checkpoint ", d, "/optimizer.safetensors: ", e.what());
    }
  }
  return meta;
}

bool checkpoint_exists(const std::string& dir) { return fs::exists(fs::path(readable_dir(dir)) / "meta.json"); }

int remove_stale_temp_files(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  const fs::path staging(dir + ".staging");
  if (fs::exists(staging)) removed += static_cast<int>(fs::remove_all(staging, ec) > 0);
  // <dir>.old is only stale when <dir> itself is complete; otherwise it is the checkpoint.
  const fs::path old(dir + ".old");
  if (fs::exists(old) && fs::exists(fs::path(dir) / "meta.json")) removed += static_cast<int>(fs::remove_all(old, ec) > 0);
  if (fs::is_directory(dir))
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".tmp") removed += static_cast<int>(fs::remove(e.path(), ec));
  return removed;
}

}  // namespace moeseg
