// Typed reads of JSON that comes from outside (model configs, checkpoints' meta.json, the
// synthetic scenes' record, study presets): a wrong type, a missing key or a value outside what
// the field holds or means is a moeseg::Error naming `where` (the file or config) and the key,
// never nlohmann's "[json.exception.type_error.302] type must be number, but is string". Note
// that nlohmann's get<int>() would also wrap 2^32+1 to 1 and truncate 2.5 to 2 without a word.
//   const int64_t epoch = get_required_int_in(j, "epoch", 0, INT32_MAX, path);
//   const std::string gate = get_or<std::string>(cfg, "gate", "simple", where);
// Messages: "<where>: key 'epoch' must be an integer, got \"three\"", "<where>: key 'epoch' is
// -1, outside [0, 2147483647]", "<where>: missing key 'epoch'", "<where>: unknown key 'widht'
// (known: ...)". Used by models/registry.cpp, training/checkpoint.cpp, data/synthetic_scenes.cpp
// and the study presets (training/experiments/model_level_moe.cpp); tested by
// tests/badinput/test_badinput.cpp. (training/experiment_config.cpp has its own dotted-key
// Section reader for the nested experiment config.)
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/value_checks.h"

namespace moeseg {

// A JSON value as text for a message (bytes that are not UTF-8 replaced, so dump never throws).
inline std::string json_text(const nlohmann::json& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// j must be an object whose keys are all in `allowed`.
inline void check_keys(const nlohmann::json& j, const std::set<std::string>& allowed, const std::string& where) {
  MOESEG_CHECK(j.is_object(), where, ": expected a JSON object, got ", json_text(j));
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (allowed.count(it.key())) continue;
    std::string known;
    for (auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
    MOESEG_FAIL(where, ": unknown key '", printable(it.key()), "' (known: ", known, ")");
  }
}

// The value v of `key` as T: std::string, bool, double (finite), uint64_t (non-negative) or a
// signed integer type (range-checked against T).
template <typename T>
T json_as(const nlohmann::json& v, const char* key, const std::string& where) {
  if constexpr (std::is_same_v<T, std::string>) {
    MOESEG_CHECK(v.is_string(), where, ": key '", key, "' must be a string, got ", json_text(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    MOESEG_CHECK(v.is_boolean(), where, ": key '", key, "' must be true or false, got ", json_text(v));
  } else if constexpr (std::is_same_v<T, double>) {
    MOESEG_CHECK(v.is_number() && std::isfinite(v.get<double>()), where, ": key '", key,
                 "' must be a finite number, got ", json_text(v));
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    MOESEG_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), where, ": key '", key,
                 "' must be a non-negative integer, got ", json_text(v));
  } else {
    static_assert(std::is_integral_v<T> && std::is_signed_v<T>);
    MOESEG_CHECK(v.is_number_integer(), where, ": key '", key, "' must be an integer, got ", json_text(v));
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                                             : v.get<int64_t>() >= std::numeric_limits<T>::min() &&
                                                   v.get<int64_t>() <= std::numeric_limits<T>::max();
    MOESEG_CHECK(fits, where, ": key '", key, "' is ", json_text(v), ", outside [", std::numeric_limits<T>::min(), ", ",
                 std::numeric_limits<T>::max(), "]");
  }
  return v.get<T>();
}

// `key` of object j as T, or `fallback` when j has no such key.
template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  return json_as<T>(j.at(key), key, where);
}

// `key` of j as T; a missing key (or j not an object) is an error naming it.
template <typename T>
T get_required(const nlohmann::json& j, const char* key, const std::string& where) {
  MOESEG_CHECK(j.is_object(), where, ": expected a JSON object, got ", json_text(j));
  MOESEG_CHECK(j.contains(key), where, ": missing key '", key, "'");
  return json_as<T>(j.at(key), key, where);
}

// An integer key that must lie in [lo, hi] (fallback when absent).
inline int64_t get_int_in(const nlohmann::json& j, const char* key, int64_t fallback, int64_t lo, int64_t hi,
                          const std::string& where) {
  const int64_t v = get_or<int64_t>(j, key, fallback, where);
  MOESEG_CHECK(v >= lo && v <= hi, where, ": key '", key, "' is ", v, ", outside [", lo, ", ", hi, "]");
  return v;
}

// An integer key that must be present and lie in [lo, hi].
inline int64_t get_required_int_in(const nlohmann::json& j, const char* key, int64_t lo, int64_t hi,
                                   const std::string& where) {
  const int64_t v = get_required<int64_t>(j, key, where);
  MOESEG_CHECK(v >= lo && v <= hi, where, ": key '", key, "' is ", v, ", outside [", lo, ", ", hi, "]");
  return v;
}

// A non-empty list of strings under `key`, e.g. "subsets": ["highway", "urban", "all"].
inline std::vector<std::string> get_required_strings(const nlohmann::json& j, const char* key,
                                                     const std::string& where) {
  MOESEG_CHECK(j.contains(key) && j.at(key).is_array() && !j.at(key).empty(), where, ": key '", key,
               "' must be a non-empty list of strings");
  std::vector<std::string> v;
  for (const nlohmann::json& e : j.at(key)) {
    MOESEG_CHECK(e.is_string(), where, ": key '", key, "' must list strings, got ", json_text(e));
    v.push_back(e.get<std::string>());
  }
  return v;
}

// A JSON file parsed: "<what>: cannot open <path>" or "<path>: invalid JSON: ..." otherwise.
nlohmann::json read_json_file(const std::string& path, const std::string& what);

}  // namespace moeseg
