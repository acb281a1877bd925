// The one small command-line parser of the `moeseg` subcommands and the benchmarks. A command
// declares its options (flags, typed values, repeated values, positionals) with their help, then
// parse() reads argv: unknown options, missing values, values that are not numbers or are out
// of range, and missing required options are errors naming the command and the option
// (moeseg::Error, so the CLI prints one line and exits non-zero); --help / -h prints the usage
// built from the declarations. Tested by tests/core/test_cli_args.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace moeseg {

class ArgParser {
 public:
  // `command`: e.g. "moeseg train"; `synopsis`: the usage line after it; `description`: printed
  // under the usage (may be empty).
  ArgParser(std::string command, std::string synopsis, std::string description = "");

  ArgParser& flag(const std::string& name, bool* out, const std::string& help);
  ArgParser& option(const std::string& name, std::string* out, const std::string& metavar, const std::string& help);
  ArgParser& option(const std::string& name, int64_t* out, const std::string& metavar, const std::string& help,
                    int64_t min = std::numeric_limits<int64_t>::min(), int64_t max = std::numeric_limits<int64_t>::max());
  ArgParser& option(const std::string& name, int* out, const std::string& metavar, const std::string& help,
                    int min = std::numeric_limits<int>::min(), int max = std::numeric_limits<int>::max());
  ArgParser& option(const std::string& name, double* out, const std::string& metavar, const std::string& help,
                    double min = -std::numeric_limits<double>::infinity(),
                    double max = std::numeric_limits<double>::infinity());
  // Each occurrence appends (e.g. --set K=V --set K2=V2).
  ArgParser& repeated(const std::string& name, std::vector<std::string>* out, const std::string& metavar,
                      const std::string& help);
  // Called with the value of each occurrence (options that translate into something else).
  ArgParser& action(const std::string& name, const std::string& metavar, const std::string& help,
                    std::function<void(const std::string&)> fn);
  // Arguments that do not start with '-': between min and max of them.
  ArgParser& positionals(std::vector<std::string>* out, const std::string& metavar, size_t min, size_t max);
  // Marks an option as required.
  ArgParser& required(const std::string& name);

  // argv[0] is the subcommand's name. Returns false when --help was given (the usage has been
  // printed; the command returns 0). Throws moeseg::Error on any bad argument.
  bool parse(int argc, char** argv);
  bool given(const std::string& name) const;
  std::string usage() const;

  // Strict number parsing (the whole text, range-checked), naming `what` in the error.
  static int64_t parse_int(const std::string& text, const std::string& what, int64_t min, int64_t max);
  static double parse_double(const std::string& text, const std::string& what, double min, double max);

 private:
  struct Spec {
    std::string name, metavar, help;
    bool takes_value = false, is_required = false;
    std::function<void(const std::string&)> set;   // value options
    bool* flag = nullptr;
  };
  Spec& add(const std::string& name, const std::string& metavar, const std::string& help, bool takes_value);
  Spec* find(const std::string& name);

  std::string command_, synopsis_, description_;
  std::vector<Spec> specs_;
  std::vector<std::string> given_;
  std::vector<std::string>* positionals_ = nullptr;
  std::string positional_metavar_;
  size_t positional_min_ = 0, positional_max_ = 0;
};

}  // namespace moeseg
