// The doctest main shared by every test binary. With MOESEG_OP_COVERAGE set (the ctest entry
// ops/coverage_of_checks_that_ran runs the whole test_ops binary so), it also reports, after
// every case has run, which ops had gradient and PyTorch checks that really executed and passed,
// and fails when one lacks them (tests/support/gradcheck.h).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>

#include "support/gradcheck.h"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  int rc = context.run();
  if (context.shouldExit()) return rc;
  if (std::getenv("MOESEG_OP_COVERAGE") != nullptr) rc |= moeseg::testing::report_op_checks_that_ran();
  return rc;
}
