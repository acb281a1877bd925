// Reading a JSON file with messages that name it (core/json_checks.h).
#include "core/json_checks.h"

#include <fstream>

namespace moeseg {

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream f(path);
  MOESEG_CHECK(f.good(), what, ": cannot open ", path);
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    MOESEG_FAIL(path, ": invalid JSON: ", e.what());
  }
}

}  // namespace moeseg
