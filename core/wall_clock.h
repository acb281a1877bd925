// Wall-clock seconds since a steady_clock time point: the timings the studies write into
// results.json and the benchmarks' measurements (bench/timing.h) use this one function.
#pragma once
#include <chrono>

namespace moeseg {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace moeseg
