// Model registry: names and JSON configs -> models (see registry.h).
#include "models/registry.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "core/json_checks.h"
#include "core/safetensors.h"
#include "core/value_checks.h"
#include "models/deeplabv3plus.h"
#include "models/ensemble.h"
#include "models/frrn.h"
#include "models/moe.h"
#include "models/moe_insertion.h"

namespace moeseg {

namespace {

using json = nlohmann::json;

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || base_dir.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// Bounds for the numbers a model config holds: far above any real model, low enough that a
// typo cannot ask for terabytes of weights.
constexpr int64_t kMaxClasses = 65536;
constexpr double kMaxWidth = 16.0;
constexpr int64_t kMaxSide = 65535;
constexpr int64_t kMaxGateFeatures = 65536;
constexpr int kMaxConfigDepth = 16;   // {"config": ...} nesting (a config naming itself recurses)

std::pair<int64_t, int64_t> get_pair(const json& j, const char* key, std::pair<int64_t, int64_t> fallback, int64_t lo,
                                     const std::string& where) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  auto in_range = [&](const json& x) {
    return x.is_number_integer() && !(x.is_number_unsigned() && x.get<uint64_t>() > static_cast<uint64_t>(kMaxSide)) &&
           x.get<int64_t>() >= lo && x.get<int64_t>() <= kMaxSide;
  };
  MOESEG_CHECK(v.is_array() && v.size() == 2 && in_range(v[0]) && in_range(v[1]), where, ": key '", key,
               "' must be [height, width] with integers in [", lo, ", ", kMaxSide, "], got ", json_text(v));
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
    static thread_local int depth = 0;
    struct DepthGuard {
      DepthGuard() { ++depth; }
      ~DepthGuard() { --depth; }
    } guard;
    MOESEG_CHECK(depth <= kMaxConfigDepth, where, ": expert configs nest more than ", kMaxConfigDepth,
                 " deep at ", path, " (does a config name itself?)");
    std::error_code ec;
    MOESEG_CHECK(!std::filesystem::exists(path, ec) || std::filesystem::is_regular_file(path, ec), where, ": config ",
                 path, " is not a regular file");
    std::ifstream f(path);
    MOESEG_CHECK(f.good(), where, ": cannot open config ", path);
    json sub;
    try {
      sub = json::parse(f);
    } catch (const json::exception& ex) {
      MOESEG_FAIL(path, ": invalid JSON: ", ex.what());
    }
    m = build(sub, std::filesystem::path(path).parent_path().string(), path, classes);
    if (e.contains("checkpoint")) load_checkpoint(*m, resolve(get_or<std::string>(e, "checkpoint", "", where), base_dir));
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
  MOESEG_CHECK(classes <= kMaxClasses, where, ": key 'num_classes' is ", classes, ", outside [1, ", kMaxClasses, "]");
  std::shared_ptr<SegmentationModel> model;

  if (type == "model") {
    check_keys(cfg, {"type", "model", "num_classes", "width", "output_stride", "seed", "checkpoint", "sparse_moe"}, where);
    MOESEG_CHECK(cfg.contains("model"), where, ": missing key 'model' (one of the registry's names)");
    ModelOptions o;
    o.num_classes = classes;
    o.width = get_or<double>(cfg, "width", 1.0, where);
    MOESEG_CHECK(o.width > 0 && o.width <= kMaxWidth, where, ": key 'width' is ", o.width, ", outside (0, ", kMaxWidth,
                 "]");
    o.output_stride = static_cast<int>(get_int_in(cfg, "output_stride", 16, 1, 64, where));
    o.seed = get_or<uint64_t>(cfg, "seed", 0, where);
    model = make_model(get_or<std::string>(cfg, "model", "", where), o);
    if (cfg.contains("sparse_moe")) {
      const json& s = cfg.at("sparse_moe");
      const json list = s.is_array() ? s : json::array({s});
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string w = where + ": sparse_moe" + (s.is_array() ? "[" + std::to_string(i) + "]" : "");
        try {
          insert_sparse_moe(*model, parse_moe_insertion(list[i], w));
        } catch (const Error& e) {
          const std::string msg = e.what();
          if (msg.rfind(w, 0) == 0) throw;
          MOESEG_FAIL(w, ": ", msg);   // name the config and the entry
        }
      }
    }
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
      const EnsembleMode mode =
          parse_ensemble_mode(get_or<std::string>(cfg, "mode", "mean", where), where + ": key 'mode'");
      model = std::make_shared<Ensemble>(experts, mode);
    } else {
      MoEConfig m;
      m.gate_type = parse_gate_type(get_or<std::string>(cfg, "gate", "simple", where), where + ": key 'gate'");
      m.with_conv = get_or<bool>(cfg, "with_conv", false, where);
      m.tap = get_or<std::string>(cfg, "tap", "frrnlayer4", where);   // checked against the experts' taps by MoE
      std::tie(m.input_h, m.input_w) = get_pair(cfg, "input_size", {480, 640}, 1, where);
      std::tie(m.pool_h, m.pool_w) = get_pair(cfg, "pool_grid", {0, 0}, 0, where);
      m.fc_features = get_int_in(cfg, "fc_features", 128, 1, kMaxGateFeatures, where);
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
      try {
        model = std::make_shared<MoE>(experts, m, unused);
      } catch (const Error& e) {
        MOESEG_FAIL(where, ": ", e.what());   // e.g. a tap that an expert lacks: name the config
      }
    }
  } else {
    MOESEG_FAIL(where, ": unknown type '", printable(type), "' (known: model, moe, ensemble)");
  }
  if (cfg.contains("checkpoint")) load_checkpoint(*model, resolve(get_or<std::string>(cfg, "checkpoint", "", where), base_dir));
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
  MOESEG_FAIL("model registry: unknown model '", printable(name), "' (known: ", known, ")");
}

std::shared_ptr<SegmentationModel> make_model_from_config(const json& cfg, const std::string& base_dir) {
  return build(cfg, base_dir, "model config", 0);
}

std::shared_ptr<SegmentationModel> load_model_config(const std::string& path) {
  std::error_code ec;
  MOESEG_CHECK(!std::filesystem::exists(path, ec) || std::filesystem::is_regular_file(path, ec), "model config: ", path,
               " is not a regular file");
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
