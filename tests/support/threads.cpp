// Per-thread CPU time of the OpenMP team around a function (tests/support/threads.h).
#include "support/threads.h"

#include <omp.h>
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

namespace moeseg::testing {

namespace {
double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
}  // namespace

RestoreThreads::RestoreThreads() : threads(omp_get_max_threads()) {}
RestoreThreads::~RestoreThreads() { omp_set_num_threads(threads); }

ThreadUse run_with_threads(int n, const std::function<void()>& fn) {
  RestoreThreads restore;
  omp_set_num_threads(n);
  ThreadUse use;
  use.requested = n;
  // libgomp keeps one pool: the threads of this region are the ones every later region of n
  // threads runs on, so their CPU clocks measure what fn's regions do.
  std::vector<clockid_t> clocks(static_cast<size_t>(n));
  std::vector<int> have(static_cast<size_t>(n), 0);
#pragma omp parallel num_threads(n)
  {
    const int t = omp_get_thread_num();
    have[t] = pthread_getcpuclockid(pthread_self(), &clocks[t]) == 0;
#pragma omp single
    use.team = omp_get_num_threads();
  }
  // Idle workers spin for a while after a region ends; let that finish so it is not counted.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<double> before(static_cast<size_t>(n), 0.0);
  for (int t = 0; t < use.team; ++t)
    if (have[t]) before[t] = cpu_seconds(clocks[t]);
  fn();
  for (int t = 0; t < use.team; ++t) {
    if (!have[t]) continue;
    const double spent = cpu_seconds(clocks[t]) - before[t];
    (t == 0 ? use.main_seconds : use.worker_seconds) += spent;
  }
  return use;
}

bool ran_on_several_threads(const ThreadUse& use) {
  return use.team == use.requested && use.requested > 1 && use.worker_seconds >= std::max(20e-6, 0.1 * use.main_seconds);
}

void check_ran_on_several_threads(const ThreadUse& use, const std::string& what) {
  INFO(what, ": ", use.requested, " threads requested, OpenMP team of ", use.team, ", CPU seconds: calling thread ",
       use.main_seconds, ", other team threads ", use.worker_seconds);
  CHECK(use.team == use.requested);
  if (use.requested > 1) CHECK(ran_on_several_threads(use));
}

}  // namespace moeseg::testing
