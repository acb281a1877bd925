// Test helpers shared by every op test:
//  - check_gradients: analytic backward vs central finite differences in float64;
//  - expect_close: tolerance comparison that prints the worst elements and the max error;
//  - the op-test registry behind the coverage listing (tests/ops/test_coverage.cpp).
#pragma once
#include <functional>
#include <map>

#include <doctest/doctest.h>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace moeseg::testing {

struct Tolerance {
  double atol, rtol;
};
inline constexpr Tolerance kTolF32{1e-5, 1e-4};
inline constexpr Tolerance kTolF64{1e-10, 1e-8};

// True when |a - b| <= atol + rtol * |b| everywhere; otherwise fails the current doctest case
// with the max error and the five worst elements (index, actual, expected).
bool expect_close(const Tensor& actual, const Tensor& expected, Tolerance tol, const std::string& what);

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t seed = 1234;
};

// fn builds the op's output from `inputs` (float64 CPU tensors; those with requires_grad are
// checked). Compares J^T v from autograd with central differences of <fn(x), v> for a random v.
// Registers `op` as having a gradient check. Returns true on success.
bool check_gradients(const std::string& op, const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                     const std::vector<Tensor>& inputs, GradcheckOptions opts = {});

// The comparison behind check_gradients without any assertion: for each input that requires
// grad, autograd's J^T v and the central-difference estimate (how the checker itself is tested).
struct GradientPair {
  Tensor analytic, numeric;
};
std::vector<GradientPair> compare_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                            const std::vector<Tensor>& inputs, GradcheckOptions opts = {});

// max |a - b| / max |b| over all elements (the parity measure of the model tests); requires
// equal shapes. Falls back to the absolute error when b is all zeros.
double max_relative_error(const Tensor& a, const Tensor& b);

// The tensors of a file whose names start with `prefix`, renamed to replacement + the rest.
std::map<std::string, Tensor> tensors_with_prefix(const TensorFile& f, const std::string& prefix,
                                                  const std::string& replacement = "");

bool contains(const std::string& text, const std::string& part);

// The message of the moeseg::Error thrown by fn; "" when nothing was thrown. Other exception
// types propagate and fail the case. (expect_error below also asserts that fn threw.)
template <typename F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Checks that fn() throws moeseg::Error whose message contains every needle; returns the message.
template <typename F>
std::string expect_error(F&& fn, const std::vector<std::string>& needles = {}) {
  std::string message;
  try {
    fn();
  } catch (const Error& e) {
    message = e.what();
  }
  CHECK_MESSAGE(!message.empty(), "expected a moeseg::Error");
  for (auto& n : needles) CHECK_MESSAGE(contains(message, n), "message '", message, "' lacks '", n, "'");
  return message;
}
// (const char*, not std::string: a braced pair of literals would also convert to std::string.)
template <typename F>
std::string expect_error(F&& fn, const char* needle) {
  return expect_error(std::forward<F>(fn), std::vector<std::string>{needle});
}

// Random float64 tensor with values in [lo, hi), requiring grad.
Tensor rand_input(const Shape& shape, double lo = -1.0, double hi = 1.0, uint64_t seed = 7);

// Registry of which ops have which kind of test ("grad", "torch"), filled at static-init time by
// MOESEG_OP_TEST so that the coverage test sees every test in the binary without running them.
int register_op_test(const std::string& op, const std::string& kind);
const std::vector<std::pair<std::string, std::string>>& registered_op_tests();

// The checks that really ran in this process: check_gradients and check_fixture record (op,
// kind) each time they finish, with whether they passed. A declaration above says a test
// exists; this says it executed and held.
void record_op_check(const std::string& op, const std::string& kind, bool passed);
// With MOESEG_OP_COVERAGE set, the test main calls this after the whole binary ran: it prints
// every op of the op table with its grad / torch checks that ran (passed / failed counts) and
// returns non-zero, naming them, when a differentiable op had no passing gradient check or any
// op had no passing torch check (ctest entry ops/coverage_of_checks_that_ran).
int report_op_checks_that_ran();

}  // namespace moeseg::testing

#define MOESEG_CAT_(a, b) a##b
#define MOESEG_CAT(a, b) MOESEG_CAT_(a, b)
// Declares that this file tests `op` with a test of `kind` ("grad" or "torch").
#define MOESEG_OP_TEST(op, kind) \
  static const int MOESEG_CAT(moeseg_op_test_, __LINE__) = ::moeseg::testing::register_op_test(op, kind)
