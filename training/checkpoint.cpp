// Training checkpoints written as whole folders, atomically (see checkpoint.h).
#include "training/checkpoint.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/safetensors.h"

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

CheckpointMeta CheckpointMeta::from_json(const json& j, const std::string& source) {
  CheckpointMeta m;
  try {
    m.epoch = j.at("epoch").get<int64_t>();
    m.step = j.at("step").get<int64_t>();
    m.best_metric = j.at("best_metric").get<double>();
    m.best_epoch = j.at("best_epoch").get<int64_t>();
    m.has_best = j.at("has_best").get<bool>();
    m.bad_validations = j.at("bad_validations").get<int64_t>();
    m.rng_seed = j.at("rng_seed").get<uint64_t>();
    m.rng_offset = j.at("rng_offset").get<uint64_t>();
    m.config_hash = j.at("config_hash").get<std::string>();
    m.val_miou = j.value("val_miou", -1.0);
    m.extra = j.value("extra", json());
  } catch (const json::exception& e) {
    MOESEG_FAIL(source, ": invalid checkpoint metadata: ", e.what());
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
  {
    TensorFile tf = load_file("model.safetensors");
    try {
      model.load_state_dict(tf.tensors, /*strict=*/true);
    } catch (const Error& e) {
      MOESEG_FAIL("checkpoint ", d, "/model.safetensors: ", e.what());
    }
  }
  if (optimizer) {
    TensorFile tf = load_file("optimizer.safetensors");
    try {
      optimizer->load_state_dict(tf.tensors);
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
