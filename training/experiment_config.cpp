// Experiment config parsing and validation (see experiment_config.h). Every section is checked
// key by key, so a typo ("epocs") or a string where a number belongs fails with the dotted key
// and the file, instead of silently training with a default.
#include "training/experiment_config.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/value_checks.h"

namespace moeseg {

namespace {

using json = nlohmann::json;

// Bounds of the data section: a side fits a 16-bit image header, the pixels the image reader's
// budget (data/image_io.h kDefaultMaxImagePixels), and loader threads a sane count.
constexpr int64_t kMaxSide = 65535;
constexpr int64_t kMaxPixels = int64_t{1} << 28;
constexpr int64_t kMaxWorkers = 1024;

struct Section {
  const json& j;
  std::string path;     // dotted prefix, e.g. "train.optimizer"
  std::string source;

  std::string key(const std::string& k) const { return path.empty() ? k : path + "." + k; }

  void allow(const std::set<std::string>& keys) const {
    MOESEG_CHECK(j.is_object(), source, ": '", path, "' must be a JSON object, got ", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (keys.count(it.key())) continue;
      std::string known;
      for (auto& k : keys) known += (known.empty() ? "" : ", ") + k;
      MOESEG_FAIL(source, ": unknown key '", printable(key(it.key())), "' (known in '", path.empty() ? "<top>" : path, "': ",
                  known, ")");
    }
  }
  [[noreturn]] void wrong(const std::string& k, const char* want) const {
    MOESEG_FAIL(source, ": key '", key(k), "' must be ", want, ", got ", j.at(k).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  // Integers are range-checked against what the field holds and what it means, so that
  // 4294967297 does not wrap to 1 and -3 workers are not taken; the message names the range.
  int64_t integer(const std::string& k, int64_t lo, int64_t hi) const {
    const json& x = j.at(k);
    if (!x.is_number_integer()) wrong(k, "an integer");
    const bool above = x.is_number_unsigned() ? x.get<uint64_t>() > static_cast<uint64_t>(hi) : x.get<int64_t>() > hi;
    const bool below = !x.is_number_unsigned() && x.get<int64_t>() < lo;
    MOESEG_CHECK(!above && !below, source, ": key '", key(k), "' is ", x.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), ", outside [", lo, ", ", hi, "]");
    return x.get<int64_t>();
  }
  void get(const std::string& k, int& v, int64_t lo = INT32_MIN, int64_t hi = INT32_MAX) const {
    if (!j.contains(k)) return;
    v = static_cast<int>(integer(k, std::max<int64_t>(lo, INT32_MIN), std::min<int64_t>(hi, INT32_MAX)));
  }
  void get(const std::string& k, uint64_t& v) const {
    if (!j.contains(k)) return;
    const json& x = j.at(k);
    if (!x.is_number_unsigned() && !(x.is_number_integer() && x.get<int64_t>() >= 0)) wrong(k, "a non-negative integer");
    v = x.get<uint64_t>();
  }
  void get(const std::string& k, int64_t& v, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX) const {
    if (!j.contains(k)) return;
    v = integer(k, lo, hi);
  }
  // Numbers must be finite (a JSON 1e999 parses as infinity) and inside [lo, hi].
  void get(const std::string& k, double& v, double lo = -HUGE_VAL, double hi = HUGE_VAL) const {
    if (!j.contains(k)) return;
    if (!j.at(k).is_number()) wrong(k, "a number");
    const double x = j.at(k).get<double>();
    MOESEG_CHECK(std::isfinite(x) && x >= lo && x <= hi, source, ": key '", key(k), "' is ", x, ", outside [", lo, ", ",
                 hi, "]");
    v = x;
  }
  void get(const std::string& k, bool& v) const {
    if (!j.contains(k)) return;
    if (!j.at(k).is_boolean()) wrong(k, "true or false");
    v = j.at(k).get<bool>();
  }
  void get(const std::string& k, std::string& v) const {
    if (!j.contains(k)) return;
    if (!j.at(k).is_string()) wrong(k, "a string");
    v = j.at(k).get<std::string>();
  }
  void get(const std::string& k, std::vector<std::string>& v) const {
    if (!j.contains(k)) return;
    const json& a = j.at(k);
    if (a.is_string()) {   // "highway,urban" is accepted as a list too
      v.clear();
      std::stringstream ss(a.get<std::string>());
      for (std::string s; std::getline(ss, s, ',');) v.push_back(s);
      return;
    }
    if (!a.is_array()) wrong(k, "a list of strings");
    v.clear();
    for (auto& e : a) {
      if (!e.is_string()) wrong(k, "a list of strings");
      v.push_back(e.get<std::string>());
    }
  }
  void get(const std::string& k, std::vector<double>& v) const {
    if (!j.contains(k) || j.at(k).is_null()) return;
    const json& a = j.at(k);
    if (!a.is_array()) wrong(k, "a list of numbers");
    v.clear();
    for (auto& e : a) {
      if (!e.is_number()) wrong(k, "a list of numbers");
      v.push_back(e.get<double>());
      MOESEG_CHECK(std::isfinite(v.back()), source, ": key '", key(k), "' holds ", e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), ", not a finite number");
    }
  }
  Section sub(const std::string& k) const { return Section{j.at(k), key(k), source}; }
};

std::string resolve(const std::string& p, const std::string& base) {
  if (p.empty() || base.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

void one_of(const std::string& source, const std::string& key, const std::string& v, const std::set<std::string>& ok) {
  if (ok.count(v)) return;
  std::string known;
  for (auto& k : ok) known += (known.empty() ? "" : ", ") + k;
  MOESEG_FAIL(source, ": key '", key, "' is '", printable(v), "' (known: ", known, ")");
}

}  // namespace

void apply_override(json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  MOESEG_CHECK(eq != std::string::npos && eq > 0, "--set ", assignment, ": expected key.path=value");
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  try {
    (void)json(assignment).dump();   // keys and values become JSON strings: UTF-8 only
  } catch (const json::exception&) {
    MOESEG_FAIL("--set: the override is not valid UTF-8 text");
  }
  MOESEG_CHECK(j.is_object() || j.is_null(), "--set ", assignment, ": the config is not a JSON object");
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;   // bare words are strings: --set data.subset=urban
    try {
      (void)value.dump();   // JSON strings are UTF-8; the config is saved and hashed as JSON
    } catch (const json::exception&) {
      MOESEG_FAIL("--set ", path, "=...: the value is not valid UTF-8 text");
    }
  }
  json* node = &j;
  std::stringstream ss(path);
  std::vector<std::string> parts;
  for (std::string s; std::getline(ss, s, '.');) parts.push_back(s);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    MOESEG_CHECK(!parts[i].empty(), "--set ", assignment, ": empty key component");
    if (!node->contains(parts[i])) (*node)[parts[i]] = json::object();
    node = &(*node)[parts[i]];
    MOESEG_CHECK(node->is_object(), "--set ", assignment, ": '", parts[i], "' is not an object");
  }
  (*node)[parts.back()] = value;
}

ExperimentConfig parse_experiment_config(const json& j, const std::string& source, const std::string& base_dir) {
  ExperimentConfig c;
  c.source = source;
  c.base_dir = base_dir;
  c.raw = j;
  Section top{j, "", source};
  top.allow({"name", "model", "data", "train", "out", "comment"});
  top.get("name", c.name);
  MOESEG_CHECK(j.contains("model") && (j.at("model").is_object() || j.at("model").is_string()), source,
               ": key 'model' missing or not an object (the registry's model config)");
  c.model = j.at("model").is_string() ? json{{"model", j.at("model")}} : j.at("model");
  top.get("out", c.out);
  c.out = c.out.empty() ? "runs/" + c.name : c.out;
  // out is relative to the working directory (where the command runs), not to the config file.

  if (j.contains("data")) {
    Section d = top.sub("data");
    d.allow({"dataset", "root", "subset", "val_subset", "test_subsets", "height", "width", "preset", "max_train",
             "max_val", "max_test", "workers", "camvid_dusk_holdout", "unknown_colour_to_ignore"});
    DataConfig& D = c.data;
    d.get("dataset", D.dataset);
    d.get("root", D.root);
    d.get("subset", D.subset);
    d.get("val_subset", D.val_subset);
    d.get("test_subsets", D.test_subsets);
    d.get("height", D.height, 1, kMaxSide);
    d.get("width", D.width, 1, kMaxSide);
    d.get("preset", D.preset);
    d.get("max_train", D.max_train, 0);
    d.get("max_val", D.max_val, 0);
    d.get("max_test", D.max_test, 0);
    d.get("workers", D.workers, 0, kMaxWorkers);
    d.get("camvid_dusk_holdout", D.camvid_dusk_holdout, 0);
    d.get("unknown_colour_to_ignore", D.unknown_colour_to_ignore);
    one_of(source, "data.dataset", D.dataset, {"a2d2", "camvid"});
    one_of(source, "data.preset", D.preset, {"reference", "resize"});
    MOESEG_CHECK(D.height > 0 && D.width > 0, source, ": keys 'data.height'/'data.width' must be positive");
    MOESEG_CHECK(static_cast<int64_t>(D.height) * D.width <= kMaxPixels, source, ": data.height x data.width = ",
                 D.height, " x ", D.width, " exceeds the pixel budget of ", kMaxPixels, " pixels");
    D.root = resolve(D.root, base_dir);
  }
  if (c.data.val_subset.empty()) c.data.val_subset = c.data.subset;

  if (j.contains("train")) {
    Section t = top.sub("train");
    t.allow({"epochs", "batch", "optimizer", "schedule", "grad_clip", "val_every", "patience", "early_stopping",
             "seed", "shuffle", "ignore_index", "class_weights", "cache_expert_outputs", "max_steps_per_epoch",
             "log_every", "device"});
    TrainConfig& T = c.train;
    t.get("epochs", T.epochs, 0);
    t.get("batch", T.batch, 1);
    t.get("grad_clip", T.grad_clip, 0);
    t.get("val_every", T.val_every, 1);
    t.get("patience", T.patience, 0);
    t.get("early_stopping", T.early_stopping);
    t.get("seed", T.seed);
    t.get("shuffle", T.shuffle);
    t.get("ignore_index", T.ignore_index);
    t.get("class_weights", T.class_weights);
    for (double w : T.class_weights)
      MOESEG_CHECK(w >= 0, source, ": key 'train.class_weights' holds ", w, "; weights must be >= 0");
    t.get("cache_expert_outputs", T.cache_expert_outputs);
    t.get("max_steps_per_epoch", T.max_steps_per_epoch, 0);
    t.get("log_every", T.log_every, 0);
    t.get("device", T.device);
    try {
      (void)Device::parse(T.device);
    } catch (const Error&) {
      MOESEG_FAIL(source, ": key 'train.device' must be cpu, cuda or cuda:N, got '", printable(T.device), "'");
    }
    one_of(source, "train.early_stopping", T.early_stopping, {"miou", "loss"});
    MOESEG_CHECK(T.epochs >= 0, source, ": key 'train.epochs' must be >= 0");
    // 0 epochs trains nothing and reports no validation (a best mIoU of -100%); only an ensemble,
    // which has no trainable parameters and is evaluated as it is, may say so.
    const bool ensemble = c.model.is_object() && c.model.contains("type") && c.model.at("type") == "ensemble";
    MOESEG_CHECK(T.epochs >= 1 || ensemble, source, ": key 'train.epochs' is 0: nothing would be trained or validated; "
                 "give epochs >= 1 (only an ensemble, which has nothing to train, may say 0)");
    MOESEG_CHECK(T.batch >= 1, source, ": key 'train.batch' must be >= 1");
    MOESEG_CHECK(T.val_every >= 1, source, ": key 'train.val_every' must be >= 1");
    if (j.at("train").contains("optimizer")) {
      Section o = t.sub("optimizer");
      o.allow({"type", "lr", "momentum", "weight_decay", "betas", "nesterov"});
      o.get("type", T.optimizer.type);
      o.get("lr", T.optimizer.lr);
      o.get("momentum", T.optimizer.momentum, 0);
      o.get("weight_decay", T.optimizer.weight_decay, 0);
      o.get("nesterov", T.optimizer.nesterov);
      if (o.j.contains("betas")) {
        std::vector<double> b;
        o.get("betas", b);
        MOESEG_CHECK(b.size() == 2 && b[0] >= 0 && b[0] < 1 && b[1] >= 0 && b[1] < 1, source,
                     ": key 'train.optimizer.betas' must be [beta1, beta2], each in [0, 1)");
        T.optimizer.beta1 = b[0];
        T.optimizer.beta2 = b[1];
      }
      one_of(source, "train.optimizer.type", T.optimizer.type, {"sgd", "adam", "adamw"});
      MOESEG_CHECK(T.optimizer.lr > 0, source, ": key 'train.optimizer.lr' must be positive");
    }
    if (j.at("train").contains("schedule")) {
      Section s = t.sub("schedule");
      s.allow({"kind", "per", "power", "eta_min", "step_size", "gamma", "warmup_steps", "warmup_factor"});
      s.get("kind", T.schedule.kind);
      s.get("per", T.schedule_per);
      s.get("power", T.schedule.power, 0);
      s.get("eta_min", T.schedule.eta_min, 0);
      s.get("step_size", T.schedule.step_size, 1);
      s.get("gamma", T.schedule.gamma, 0);
      s.get("warmup_steps", T.schedule.warmup_steps, 0);
      s.get("warmup_factor", T.schedule.warmup_factor, 0, 1);
      one_of(source, "train.schedule.kind", T.schedule.kind, {"constant", "poly", "cosine", "step"});
      one_of(source, "train.schedule.per", T.schedule_per, {"epoch", "step"});
    }
  }
  return c;
}

ExperimentConfig load_experiment_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  MOESEG_CHECK(!std::filesystem::exists(path, ec) || std::filesystem::is_regular_file(path, ec),
               "experiment config: ", path, " is not a regular file");
  std::ifstream f(path);
  MOESEG_CHECK(f.good(), "experiment config: cannot open ", path);
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    MOESEG_FAIL(path, ": invalid JSON: ", e.what());
  }
  // One config language: a bare model config (the registry's JSON, as `moeseg infer --config`
  // used to take) is the experiment whose model it is, with every other section at its defaults.
  if (j.is_object() && !(j.contains("model") && j["model"].is_object()))
    j = json{{"name", std::filesystem::path(path).stem().string()}, {"model", j}};
  for (auto& o : overrides) apply_override(j, o);
  std::string base = std::filesystem::path(path).parent_path().string();
  return parse_experiment_config(j, path, base.empty() ? "." : base);
}

std::string config_hash(const ExperimentConfig& c) {
  json parts = {{"model", c.raw.value("model", json())}, {"data", c.raw.value("data", json())},
                {"train", c.raw.value("train", json())}};
  // The epoch count may grow between a run and its resumption (train longer); it does not
  // change what the first epochs computed, so it is left out of the hash.
  if (parts["train"].is_object()) {
    parts["train"].erase("epochs");
    parts["train"].erase("device");   // a run may resume on another device
  }
  const std::string s = parts.dump();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace moeseg
