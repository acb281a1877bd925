// A whole file as a string, for tests that read what a command or a writer produced. A file that
// cannot be opened reads as "" (the tests then fail on its content, naming what they expected).
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace moeseg::testing {

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace moeseg::testing
