// Model registry: names and JSON configs -> models (see registry.h).
#include "models/registry.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "core/safetensors.h"
#include "models/deeplabv3plus.h"
#include "models/ensemble.h"
#include "models/frrn.h"
#include "models/moe.h"

namespace moeseg {

namespace {

using json = nlohmann::json;

void check_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) {
  MOESEG_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (allowed.count(it.key())) continue;
    std::string known;
    for (auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
    MOESEG_FAIL(where, ": unknown key '", it.key(), "' (known: ", known, ")");
  }
}

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || base_dir.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    MOESEG_FAIL(where, ": key '", key, "' has the wrong type (", j.at(key).dump(), ")");
  }
}

std::pair<int64_t, int64_t> get_pair(const json& j, const char* key, std::pair<int64_t, int64_t> fallback,
                                     const std::string& where) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  MOESEG_CHECK(v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer(), where, ": key '",
               key, "' must be [height, width], got ", v.dump());
  return {v[0].get<int64_t>(), v[1].get<int64_t>()};
}

std::shared_ptr<SegmentationModel> build(const json& cfg, const std::string& base_dir, const std::string& where,
                                         int64_t inherited_classes);

// One expert entry of an MoE / ensemble config.
std::shared_ptr<SegmentationModel> build_expert(const json& e, const std::string& base_dir, const std::string& where,
                                                int64_t classes) {
  if (e.is_string()) {
    ModelOptions o;
    o.num_classes = classes;
    return make_model(e.get<std::string>(), o);
  }
  check_keys(e, {"model", "config", "checkpoint", "width", "output_stride", "seed", "num_classes"}, where);
  std::shared_ptr<SegmentationModel> m;
  if (e.contains("config")) {
    MOESEG_CHECK(!e.contains("model"), where, ": give either 'model' or 'config', not both");
    const std::string path = resolve(get_or<std::string>(e, "config", "", where), base_dir);
    std::ifstream f(path);
    MOESEG_CHECK(f.good(), where, ": cannot open config ", path);
    json sub;
    try {
      sub = json::parse(f);
    } catch (const json::exception& ex) {
      MOESEG_FAIL(path, ": invalid JSON: ", ex.what());
    }
    m = build(sub, std::filesystem::path(path).parent_path().string(), path, classes);
    if (e.contains("checkpoint")) load_checkpoint(*m, resolve(e.at("checkpoint").get<std::string>(), base_dir));
    return m;
  }
  json single = e;
  if (!single.contains("num_classes")) single["num_classes"] = classes;
  return build(single, base_dir, where, classes);
}

std::shared_ptr<SegmentationModel> build(const json& cfg, const std::string& base_dir, const std::string& where,
                                         int64_t inherited_classes) {
  MOESEG_CHECK(cfg.is_object(), where, ": expected a JSON object");
  const std::string type = get_or<std::string>(cfg, "type", "model", where);
  const int64_t classes = get_or<int64_t>(cfg, "num_classes", inherited_classes, where);
  MOESEG_CHECK(classes >= 1, where, ": 'num_classes' missing or not positive");
  std::shared_ptr<SegmentationModel> model;

  if (type == "model") {
    check_keys(cfg, {"type", "model", "num_classes", "width", "output_stride", "seed", "checkpoint"}, where);
    MOESEG_CHECK(cfg.contains("model"), where, ": missing key 'model' (one of the registry's names)");
    ModelOptions o;
    o.num_classes = classes;
    o.width = get_or<double>(cfg, "width", 1.0, where);
    o.output_stride = get_or<int>(cfg, "output_stride", 16, where);
    o.seed = get_or<uint64_t>(cfg, "seed", 0, where);
    model = make_model(cfg.at("model").get<std::string>(), o);
  } else if (type == "moe" || type == "ensemble") {
    if (type == "moe")
      check_keys(cfg, {"type", "num_classes", "experts", "gate", "with_conv", "tap", "input_size", "pool_grid",
                       "fc_features", "experts_bn_train_mode", "reference_unused_expert", "seed", "checkpoint"},
                 where);
    else
      check_keys(cfg, {"type", "num_classes", "experts", "mode", "checkpoint"}, where);
    MOESEG_CHECK(cfg.contains("experts") && cfg.at("experts").is_array() && !cfg.at("experts").empty(), where,
                 ": 'experts' must be a non-empty list");
    std::vector<std::shared_ptr<SegmentationModel>> experts;
    const json& list = cfg.at("experts");
    for (size_t i = 0; i < list.size(); ++i)
      experts.push_back(build_expert(list[i], base_dir, where + ": experts[" + std::to_string(i) + "]", classes));
    if (type == "ensemble") {
      model = std::make_shared<Ensemble>(experts, get_or<std::string>(cfg, "mode", "mean", where));
    } else {
      MoEConfig m;
      m.gate_type = get_or<std::string>(cfg, "gate", "simple", where);
      m.with_conv = get_or<bool>(cfg, "with_conv", false, where);
      m.tap = get_or<std::string>(cfg, "tap", "frrnlayer4", where);
      std::tie(m.input_h, m.input_w) = get_pair(cfg, "input_size", {480, 640}, where);
      std::tie(m.pool_h, m.pool_w) = get_pair(cfg, "pool_grid", {0, 0}, where);
      m.fc_features = get_or<int64_t>(cfg, "fc_features", 128, where);
      m.experts_bn_train_mode = get_or<bool>(cfg, "experts_bn_train_mode", false, where);
      m.reference_unused_expert = get_or<bool>(cfg, "reference_unused_expert", false, where);
      m.seed = get_or<uint64_t>(cfg, "seed", 0, where);
      std::shared_ptr<SegmentationModel> unused;
      // The reference's extra FRRN has the first expert's architecture.
      if (m.reference_unused_expert) unused = build_expert(list[0].is_object() ? [&] {
        json e = list[0];
        e.erase("checkpoint");
        return e;
      }() : list[0], base_dir, where + ": unused expert", classes);
      model = std::make_shared<MoE>(experts, m, unused);
    }
  } else {
    MOESEG_FAIL(where, ": unknown type '", type, "' (known: model, moe, ensemble)");
  }
  if (cfg.contains("checkpoint")) load_checkpoint(*model, resolve(cfg.at("checkpoint").get<std::string>(), base_dir));
  return model;
}

}  // namespace

std::vector<std::string> model_names() {
  return {"frrn_a", "frrn_b", "deeplabv3plus_resnet18", "deeplabv3plus_resnet50", "deeplabv3plus_resnet101"};
}

std::shared_ptr<SegmentationModel> make_model(const std::string& name, const ModelOptions& opt) {
  if (name == "frrn_a" || name == "frrn_b") {
    FRRNConfig c;
    c.table = name == "frrn_a" ? 'A' : 'B';
    c.num_classes = opt.num_classes;
    c.width = opt.width;
    c.seed = opt.seed;
    return std::make_shared<FRRN>(c);
  }
  const std::string dl = "deeplabv3plus_resnet";
  if (name.rfind(dl, 0) == 0) {
    const std::string depth = name.substr(dl.size());
    if (depth == "18" || depth == "50" || depth == "101")
      return make_deeplabv3plus(std::stoi(depth), opt.num_classes, opt.output_stride, opt.width);
  }
  std::string known;
  for (auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  MOESEG_FAIL("model registry: unknown model '", name, "' (known: ", known, ")");
}

std::shared_ptr<SegmentationModel> make_model_from_config(const json& cfg, const std::string& base_dir) {
  return build(cfg, base_dir, "model config", 0);
}

std::shared_ptr<SegmentationModel> load_model_config(const std::string& path) {
  std::ifstream f(path);
  MOESEG_CHECK(f.good(), "model config: cannot open ", path);
  json cfg;
  try {
    cfg = json::parse(f);
  } catch (const json::exception& e) {
    MOESEG_FAIL(path, ": invalid JSON: ", e.what());
  }
  return build(cfg, std::filesystem::path(path).parent_path().string(), path, 0);
}

void load_checkpoint(Module& model, const std::string& path) {
  TensorFile file = load_safetensors(path);
  std::map<std::string, Tensor> state = std::move(file.tensors);
  const std::string prefix = "module.";
  bool all_prefixed = !state.empty();
  for (auto& [k, v] : state) all_prefixed = all_prefixed && k.rfind(prefix, 0) == 0;
  if (all_prefixed) {
    std::map<std::string, Tensor> stripped;
    for (auto& [k, v] : state) stripped[k.substr(prefix.size())] = v;
    state = std::move(stripped);
  }
  try {
    model.load_state_dict(state, /*strict=*/true);
  } catch (const Error& e) {
    MOESEG_FAIL("checkpoint ", path, ": ", e.what());
  }
}

}  // namespace moeseg
