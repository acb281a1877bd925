// Experiment config parsing and validation (see experiment_config.h). Every section is checked
// key by key, so a typo ("epocs") or a string where a number belongs fails with the dotted key
// and the file, instead of silently training with a default.
#include "training/experiment_config.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace moeseg {

namespace {

using json = nlohmann::json;

struct Section {
  const json& j;
  std::string path;     // dotted prefix, e.g. "train.optimizer"
  std::string source;

  std::string key(const std::string& k) const { return path.empty() ? k : path + "." + k; }

  void allow(const std::set<std::string>& keys) const {
    MOESEG_CHECK(j.is_object(), source, ": '", path, "' must be a JSON object, got ", j.dump());
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (keys.count(it.key())) continue;
      std::string known;
      for (auto& k : keys) known += (known.empty() ? "" : ", ") + k;
      MOESEG_FAIL(source, ": unknown key '", key(it.key()), "' (known in '", path.empty() ? "<top>" : path, "': ",
                  known, ")");
    }
  }
  [[noreturn]] void wrong(const std::string& k, const char* want) const {
    MOESEG_FAIL(source, ": key '", key(k), "' must be ", want, ", got ", j.at(k).dump());
  }
  void get(const std::string& k, int& v) const {
    if (!j.contains(k)) return;
    if (!j.at(k).is_number_integer()) wrong(k, "an integer");
    v = j.at(k).get<int>();
  }
  void get(const std::string& k, uint64_t& v) const {
    if (!j.contains(k)) return;
    if (!j.at(k).is_number_integer() || j.at(k).get<int64_t>() < 0) wrong(k, "a non-negative integer");
    v = j.at(k).get<uint64_t>();
  }
  void get(const std::string& k, int64_t& v) const {
    if (!j.contains(k)) return;
    if (!j.at(k).is_number_integer()) wrong(k, "an integer");
    v = j.at(k).get<int64_t>();
  }
  void get(const std::string& k, double& v) const {
    if (!j.contains(k)) return;
    if (!j.at(k).is_number()) wrong(k, "a number");
    v = j.at(k).get<double>();
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
  MOESEG_FAIL(source, ": key '", key, "' is '", v, "' (known: ", known, ")");
}

}  // namespace

void apply_override(json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  MOESEG_CHECK(eq != std::string::npos && eq > 0, "--set ", assignment, ": expected key.path=value");
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;   // bare words are strings: --set data.subset=urban
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
    d.get("height", D.height);
    d.get("width", D.width);
    d.get("preset", D.preset);
    d.get("max_train", D.max_train);
    d.get("max_val", D.max_val);
    d.get("max_test", D.max_test);
    d.get("workers", D.workers);
    d.get("camvid_dusk_holdout", D.camvid_dusk_holdout);
    d.get("unknown_colour_to_ignore", D.unknown_colour_to_ignore);
    one_of(source, "data.dataset", D.dataset, {"a2d2", "camvid"});
    one_of(source, "data.preset", D.preset, {"reference", "resize"});
    MOESEG_CHECK(D.height > 0 && D.width > 0, source, ": keys 'data.height'/'data.width' must be positive");
    D.root = resolve(D.root, base_dir);
  }
  if (c.data.val_subset.empty()) c.data.val_subset = c.data.subset;

  if (j.contains("train")) {
    Section t = top.sub("train");
    t.allow({"epochs", "batch", "optimizer", "schedule", "grad_clip", "val_every", "patience", "early_stopping",
             "seed", "shuffle", "ignore_index", "class_weights", "cache_expert_outputs", "max_steps_per_epoch",
             "log_every", "device"});
    TrainConfig& T = c.train;
    t.get("epochs", T.epochs);
    t.get("batch", T.batch);
    t.get("grad_clip", T.grad_clip);
    t.get("val_every", T.val_every);
    t.get("patience", T.patience);
    t.get("early_stopping", T.early_stopping);
    t.get("seed", T.seed);
    t.get("shuffle", T.shuffle);
    t.get("ignore_index", T.ignore_index);
    t.get("class_weights", T.class_weights);
    t.get("cache_expert_outputs", T.cache_expert_outputs);
    t.get("max_steps_per_epoch", T.max_steps_per_epoch);
    t.get("log_every", T.log_every);
    t.get("device", T.device);
    try {
      (void)Device::parse(T.device);
    } catch (const Error&) {
      MOESEG_FAIL(source, ": key 'train.device' must be cpu, cuda or cuda:N, got '", T.device, "'");
    }
    one_of(source, "train.early_stopping", T.early_stopping, {"miou", "loss"});
    MOESEG_CHECK(T.epochs >= 0, source, ": key 'train.epochs' must be >= 0");
    MOESEG_CHECK(T.batch >= 1, source, ": key 'train.batch' must be >= 1");
    MOESEG_CHECK(T.val_every >= 1, source, ": key 'train.val_every' must be >= 1");
    if (j.at("train").contains("optimizer")) {
      Section o = t.sub("optimizer");
      o.allow({"type", "lr", "momentum", "weight_decay", "betas", "nesterov"});
      o.get("type", T.optimizer.type);
      o.get("lr", T.optimizer.lr);
      o.get("momentum", T.optimizer.momentum);
      o.get("weight_decay", T.optimizer.weight_decay);
      o.get("nesterov", T.optimizer.nesterov);
      if (o.j.contains("betas")) {
        std::vector<double> b;
        o.get("betas", b);
        MOESEG_CHECK(b.size() == 2, source, ": key 'train.optimizer.betas' must be [beta1, beta2]");
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
      s.get("power", T.schedule.power);
      s.get("eta_min", T.schedule.eta_min);
      s.get("step_size", T.schedule.step_size);
      s.get("gamma", T.schedule.gamma);
      s.get("warmup_steps", T.schedule.warmup_steps);
      s.get("warmup_factor", T.schedule.warmup_factor);
      one_of(source, "train.schedule.kind", T.schedule.kind, {"constant", "poly", "cosine", "step"});
      one_of(source, "train.schedule.per", T.schedule_per, {"epoch", "step"});
    }
  }
  return c;
}

ExperimentConfig load_experiment_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream f(path);
  MOESEG_CHECK(f.good(), "experiment config: cannot open ", path);
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    MOESEG_FAIL(path, ": invalid JSON: ", e.what());
  }
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
