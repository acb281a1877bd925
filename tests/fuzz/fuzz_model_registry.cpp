// Fuzzes the model registry's JSON reader (models/registry.h make_model_from_config): types,
// keys, integer ranges, expert lists, nested {"config": ...} entries. The input is the config's
// JSON text.
// To keep each run about reading rather than allocating, the harness builds models thin: an
// expert or model without a "width" gets width 1/16, and inputs asking for wider models, numbers
// above 256 or more than 6 experts are skipped (the readers' range checks for large values are
// tested in tests/badinput). Paths must stay inside the scratch folder (no absolute paths, no
// ".."), so a run never reads the machine's files.
// Built and run by tests/fuzz/CMakeLists.txt (ctest -R fuzz/model_registry).
#include "fuzz_common.h"
#include "models/registry.h"

namespace {

using json = nlohmann::json;

// false: skip this input.
bool make_thin(json& j, int depth) {
  if (depth > 32) return false;
  if (j.is_number()) return j.is_number_float() ? std::abs(j.get<double>()) <= 256.0
                                                : (j.is_number_unsigned() ? j.get<uint64_t>() <= 256 : std::abs(j.get<int64_t>()) <= 256);
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    return s.empty() || (s[0] != '/' && s.find("..") == std::string::npos);
  }
  if (j.is_array()) {
    for (auto& e : j)
      if (!make_thin(e, depth + 1)) return false;
    return true;
  }
  if (!j.is_object()) return true;
  if (j.contains("experts") && j["experts"].is_array()) {
    json& list = j["experts"];
    if (list.size() > 6) return false;
    for (auto& e : list)   // "frrn_a" -> {"model": "frrn_a", "width": 1/16}: the same model, thin
      if (e.is_string()) e = json{{"model", e}};
  }
  if (j.contains("model") && j["model"].is_string() && !j.contains("width") && !j.contains("config")) j["width"] = 0.0625;
  if (j.contains("width") && j["width"].is_number() && j["width"].get<double>() > 0.125) return false;
  for (auto& [k, v] : j.items())
    if (!make_thin(v, depth + 1)) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path dir = moeseg::fuzz::scratch_dir("registry");
  json j = json::parse(moeseg::fuzz::bytes_of(data, size), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !make_thin(j, 0)) return 0;
  return moeseg::fuzz::refuse_cleanly([&] {
    auto m = moeseg::make_model_from_config(j, dir.string());
    if (!m || m->num_classes() < 1) __builtin_trap();
  });
}
