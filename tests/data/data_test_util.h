// Helpers shared by the data-layer tests: fixture paths, expected.json, temporary folders.
#pragma once
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/error.h"

namespace moeseg::testing {

inline std::string data_fixture(const std::string& rel) { return std::string(MOESEG_FIXTURE_DIR) + "/data/" + rel; }

inline const nlohmann::json& data_expected() {
  static const nlohmann::json j = [] {
    std::ifstream in(data_fixture("expected.json"));
    REQUIRE_MESSAGE(in.good(), "run tools/fixtures/make_data_fixtures.py: expected.json missing");
    return nlohmann::json::parse(in);
  }();
  return j;
}

// A fresh folder under the system temp dir, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("moeseg_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str(const std::string& rel = "") const { return rel.empty() ? path.string() : (path / rel).string(); }
};

// The message of the moeseg::Error thrown by fn ("" if none was thrown).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace moeseg::testing
