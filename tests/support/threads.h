// Thread-count helpers for the thread-invariance tests. A test that claims "the same result for
// 1, 2 and 3 threads" proves nothing if the kernel ran single-threaded every time (a size below
// its parallel threshold, OMP_DYNAMIC, a thread limit, a lost `omp parallel`). run_with_threads
// runs a function with exactly n OpenMP threads and measures the CPU time each thread of the
// OpenMP team spent in it (per-thread CPU clocks, ns resolution), so the test can assert that
// the work really was shared. Used by tests/kernels, tests/ops and tests/training.
#pragma once
#include <functional>
#include <string>

namespace moeseg::testing {

struct ThreadUse {
  int requested = 0;
  int team = 0;                 // threads an OpenMP region really got
  double main_seconds = 0;      // CPU time of the calling thread (team thread 0) inside fn
  double worker_seconds = 0;    // CPU time of team threads 1..n-1 inside fn, summed
};

// Sets n OpenMP threads, runs fn, restores the previous setting.
ThreadUse run_with_threads(int n, const std::function<void()>& fn);

// CHECKs that the OpenMP team had `requested` threads and, for requested > 1, that the other
// team threads did real work in fn (at least a tenth of the calling thread's CPU time, and at
// least 20 microseconds): fn ran on several threads.
void check_ran_on_several_threads(const ThreadUse& use, const std::string& what);
// The condition behind it, without asserting (how the checker itself is tested).
bool ran_on_several_threads(const ThreadUse& use);

// Restores the OpenMP thread count when a test case ends, however it ends.
struct RestoreThreads {
  RestoreThreads();
  ~RestoreThreads();
  int threads;
};

}  // namespace moeseg::testing
