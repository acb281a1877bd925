// ArgParser (core/cli_args.h).
#include "core/cli_args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace moeseg {

ArgParser::ArgParser(std::string command, std::string synopsis, std::string description)
    : command_(std::move(command)), synopsis_(std::move(synopsis)), description_(std::move(description)) {}

ArgParser::Spec& ArgParser::add(const std::string& name, const std::string& metavar, const std::string& help,
                                bool takes_value) {
  MOESEG_CHECK(name.rfind("--", 0) == 0 && find(name) == nullptr, command_, ": bad or duplicate option declaration ", name);
  Spec s;
  s.name = name;
  s.metavar = metavar;
  s.help = help;
  s.takes_value = takes_value;
  specs_.push_back(std::move(s));
  return specs_.back();
}

ArgParser::Spec* ArgParser::find(const std::string& name) {
  for (auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

ArgParser& ArgParser::flag(const std::string& name, bool* out, const std::string& help) {
  add(name, "", help, false).flag = out;
  return *this;
}

ArgParser& ArgParser::option(const std::string& name, std::string* out, const std::string& metavar,
                             const std::string& help) {
  add(name, metavar, help, true).set = [out](const std::string& v) { *out = v; };
  return *this;
}

ArgParser& ArgParser::option(const std::string& name, int64_t* out, const std::string& metavar, const std::string& help,
                             int64_t min, int64_t max) {
  const std::string what = command_ + ": " + name;
  add(name, metavar, help, true).set = [=](const std::string& v) { *out = parse_int(v, what, min, max); };
  return *this;
}

ArgParser& ArgParser::option(const std::string& name, int* out, const std::string& metavar, const std::string& help,
                             int min, int max) {
  const std::string what = command_ + ": " + name;
  add(name, metavar, help, true).set = [=](const std::string& v) { *out = static_cast<int>(parse_int(v, what, min, max)); };
  return *this;
}

ArgParser& ArgParser::option(const std::string& name, double* out, const std::string& metavar, const std::string& help,
                             double min, double max) {
  const std::string what = command_ + ": " + name;
  add(name, metavar, help, true).set = [=](const std::string& v) { *out = parse_double(v, what, min, max); };
  return *this;
}

ArgParser& ArgParser::repeated(const std::string& name, std::vector<std::string>* out, const std::string& metavar,
                               const std::string& help) {
  add(name, metavar, help, true).set = [out](const std::string& v) { out->push_back(v); };
  return *this;
}

ArgParser& ArgParser::action(const std::string& name, const std::string& metavar, const std::string& help,
                             std::function<void(const std::string&)> fn) {
  add(name, metavar, help, true).set = std::move(fn);
  return *this;
}

ArgParser& ArgParser::positionals(std::vector<std::string>* out, const std::string& metavar, size_t min, size_t max) {
  positionals_ = out;
  positional_metavar_ = metavar;
  positional_min_ = min;
  positional_max_ = max;
  return *this;
}

ArgParser& ArgParser::required(const std::string& name) {
  Spec* s = find(name);
  MOESEG_CHECK(s != nullptr, command_, ": required() of an undeclared option ", name);
  s->is_required = true;
  return *this;
}

int64_t ArgParser::parse_int(const std::string& text, const std::string& what, int64_t min, int64_t max) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  MOESEG_CHECK(!text.empty() && end != nullptr && *end == '\0' && errno != ERANGE, what, ": '", text,
               "' is not an integer");
  MOESEG_CHECK(v >= min && v <= max, what, ": ", v, " is out of range [", min, ", ", max, "]");
  return v;
}

double ArgParser::parse_double(const std::string& text, const std::string& what, double min, double max) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  MOESEG_CHECK(!text.empty() && end != nullptr && *end == '\0' && errno != ERANGE && std::isfinite(v), what, ": '",
               text, "' is not a finite number");
  MOESEG_CHECK(v >= min && v <= max, what, ": ", v, " is out of range [", min, ", ", max, "]");
  return v;
}

bool ArgParser::given(const std::string& name) const {
  return std::find(given_.begin(), given_.end(), name) != given_.end();
}

std::string ArgParser::usage() const {
  std::ostringstream o;
  o << "usage: " << command_ << " " << synopsis_ << "\n";
  if (!description_.empty()) o << "\n" << description_ << "\n";
  if (!specs_.empty()) o << "\noptions:\n";
  for (const Spec& s : specs_) {
    std::string left = "  " + s.name + (s.metavar.empty() ? "" : " " + s.metavar);
    if (left.size() < 22) left.resize(22, ' ');
    else left += "\n" + std::string(22, ' ');
    o << left << s.help << (s.is_required ? " (required)" : "") << "\n";
  }
  return o.str();
}

bool ArgParser::parse(int argc, char** argv) {
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    if (a.size() > 1 && a[0] == '-') {
      std::string name = a, value;
      bool inline_value = false;
      const size_t eq = a.find('=');
      if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        inline_value = true;
      }
      Spec* s = find(name);
      MOESEG_CHECK(s != nullptr, command_, ": unknown option ", name, " (see --help)");
      given_.push_back(name);
      if (!s->takes_value) {
        MOESEG_CHECK(!inline_value, command_, ": ", name, " takes no value");
        *s->flag = true;
        continue;
      }
      if (!inline_value) {
        MOESEG_CHECK(i + 1 < argc, command_, ": ", name, " needs a value (", s->metavar, ")");
        value = argv[++i];
      }
      s->set(value);
      continue;
    }
    pos.push_back(a);
  }
  for (const Spec& s : specs_)
    MOESEG_CHECK(!s.is_required || given(s.name), command_, ": ", s.name, " ", s.metavar, " is required (see --help)");
  if (positionals_ != nullptr) {
    MOESEG_CHECK(pos.size() >= positional_min_, command_, ": needs ", positional_metavar_, " (see --help)");
    MOESEG_CHECK(pos.size() <= positional_max_, command_, ": too many arguments: '", pos.back(), "' (expected at most ",
                 positional_max_, " ", positional_metavar_, ")");
    *positionals_ = pos;
  } else {
    MOESEG_CHECK(pos.empty(), command_, ": unexpected argument '", pos.empty() ? "" : pos.front(), "' (see --help)");
  }
  return true;
}

}  // namespace moeseg
