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
#include "support/gradcheck.h"
#include "tests/support/temp_dir.h"

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

using moeseg::testing::TempDir;   // tests/support/temp_dir.h

// error_of: tests/support/gradcheck.h

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace moeseg::testing
