// The thread-use checker of the thread-invariance tests (tests/support/threads.h), checked
// itself: a serial loop run "with 2 threads" must be seen as single-threaded, the same work in
// an OpenMP loop as shared. Run: build/tests/test_kernels -tc="thread checker*"
#include <doctest/doctest.h>

#include <omp.h>

#include <cmath>
#include <vector>

#include "support/threads.h"

namespace {

// ~20-50 ms of arithmetic whose result is used, so the compiler keeps it.
double busy(int64_t begin, int64_t end) {
  double s = 0;
  for (int64_t i = begin; i < end; ++i) s += std::sqrt(static_cast<double>(i));
  return s;
}
constexpr int64_t kWork = 40'000'000;

}  // namespace

TEST_CASE("thread checker: a serial function run with 2 threads is reported as single-threaded") {
  double sink = 0;
  const auto use = moeseg::testing::run_with_threads(2, [&] { sink = busy(0, kWork); });
  INFO("calling thread ", use.main_seconds, " s, other team threads ", use.worker_seconds, " s");
  CHECK(sink > 0);
  CHECK(use.team == 2);
  CHECK(use.main_seconds > 0.005);
  CHECK_FALSE(moeseg::testing::ran_on_several_threads(use));
}

TEST_CASE("thread checker: an OpenMP loop run with 2 threads is reported as shared") {
  std::vector<double> part(2, 0.0);
  const auto use = moeseg::testing::run_with_threads(2, [&] {
#pragma omp parallel for schedule(static) num_threads(2)
    for (int t = 0; t < 2; ++t) part[t] = busy(t * kWork / 2, (t + 1) * kWork / 2);
  });
  INFO("calling thread ", use.main_seconds, " s, other team threads ", use.worker_seconds, " s");
  CHECK(part[0] > 0);
  CHECK(part[1] > 0);
  CHECK(moeseg::testing::ran_on_several_threads(use));
  moeseg::testing::check_ran_on_several_threads(use, "OpenMP loop");
  // One thread requested: a team of one, never "shared".
  const auto one = moeseg::testing::run_with_threads(1, [&] { part[0] = busy(0, kWork / 4); });
  CHECK(one.team == 1);
  CHECK_FALSE(moeseg::testing::ran_on_several_threads(one));
}
