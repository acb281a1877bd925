// Entry points of `moeseg train`, `moeseg eval` and `moeseg reproduce` (tools/cmd_train.cpp,
// cmd_eval.cpp, cmd_reproduce.cpp). argv[0] is the subcommand name.
#pragma once

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

namespace moeseg::cli {
int run_train(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_reproduce(int argc, char** argv);

// libgomp reads OMP_WAIT_POLICY once, when it is loaded, so it cannot be changed from main.
// With the default (threads spin at every barrier), a 2-core machine shared with any other
// process, or with OpenBLAS's own threads, stalls whole OpenMP teams: we measured FRRN-A
// (width 0.125, 64x96) training at 2.4 img/s vs 31 img/s with OMP_WAIT_POLICY=passive on the
// same loaded machine (and 39 vs 102 img/s at 48x64 unloaded). So the training commands restart
// themselves once with OMP_WAIT_POLICY=passive unless the user has set it. Returns only when the
// variable is already set or the restart failed.
// Re-measured with OpenBLAS single-threaded (2-core VM shared with other builds, load average 5
// to 120 during the runs; "default" = OMP_WAIT_POLICY set to an invalid value, which skips the
// restart and leaves libgomp's default policy), alternating the two modes:
//   reproduce --preset tiny, 5 runs each: passive 7.0-17.0 s wall (mean training 24-52 img/s),
//     default 39-238 s (2.6-12.2 img/s);
//   train cpu_frrnA_highway, 40 steps at 64x96, 3 runs each: passive 19.2-20.1 img/s (10.1-10.5 s),
//     default 2.9-3.8 img/s (53-71 s).
// Passive was faster in every pair (5-7x), so the restart stays.
inline void ensure_passive_omp_wait(const char* subcommand) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t a = 0; a < all.size();) {
    const size_t b = all.find('\0', a);
    args.push_back(all.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  if (args.empty()) return;
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  setenv("OMP_WAIT_POLICY", "passive", 1);
  (void)subcommand;
  execv("/proc/self/exe", argv.data());   // on failure: carry on with the spinning default
}
}  // namespace moeseg::cli
