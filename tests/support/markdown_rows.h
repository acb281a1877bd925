// Reading the markdown tables the CLI prints, for the CLI tests: the line that starts with a
// prefix, and a row's cells after its leading name columns as numbers (NaN where a cell is not one).
#pragma once
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace moeseg::testing {

// The first line of `text` that starts with `prefix` ("" when none).
inline std::string line_starting(const std::string& text, const std::string& prefix) {
  std::istringstream s(text);
  for (std::string l; std::getline(s, l);)
    if (l.rfind(prefix, 0) == 0) return l;
  return "";
}

// The cells of a markdown row after its first `names` cells, as numbers (NaN if not one).
inline std::vector<double> numeric_cells(const std::string& line, int names = 1) {
  std::vector<double> v;
  std::istringstream s(line);
  std::string c;
  std::getline(s, c, '|');   // before the first |
  for (int i = 0; i < names; ++i) std::getline(s, c, '|');
  while (std::getline(s, c, '|')) {
    if (c.find_first_not_of(' ') == std::string::npos) continue;
    try {
      size_t used = 0;
      const double x = std::stod(c, &used);
      v.push_back(c.find_first_not_of(' ', used) == std::string::npos ? x : NAN);
    } catch (...) {
      v.push_back(NAN);
    }
  }
  return v;
}

}  // namespace moeseg::testing
