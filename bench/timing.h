// Timing for the benchmarks: the median wall time of a call after one untimed warm-up run (which
// touches the buffers, grows the caching allocator and starts the OpenMP / BLAS thread pools).
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

#include "core/wall_clock.h"

namespace moeseg::bench {

using Clock = std::chrono::steady_clock;
using moeseg::seconds_since;   // core/wall_clock.h

template <typename F>
double median_seconds(F&& f, int repeats) {
  f();   // warm-up
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace moeseg::bench
