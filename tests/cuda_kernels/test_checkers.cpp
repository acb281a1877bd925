// The comparison helpers of cuda_test_util.h, checked with planted errors (DESIGN.md "Tests": a
// planted bug must be caught, and the test showing it is kept, so the checker itself is checked):
// a one-element error just past the tolerance is found at its index, one just inside passes, the
// worst of several is reported, NaN and infinities are handled, the scaled tolerance of the conv
// tests likewise; a one-element error planted in real kernel output (relu, conv2d through
// CUDA-on-CPU) is caught; and the doctest checks themselves fail the case (the cases marked
// should_fail pass only when the check inside them fails: their ERROR lines are expected).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/conv2d_cpu.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// want + f * (its tolerance atol + rtol |want|), rounded to float.
float off_by(float want, double atol, double rtol, double f) {
  return static_cast<float>(want + f * (atol + rtol * std::fabs(double(want))));
}

}  // namespace

TEST_CASE("checkers: compare_close finds a planted one-element error at its index and nothing else") {
  const auto want = random_vector(1000, 5);
  const double atol = 1e-5, rtol = 1e-4;
  CloseReport r = compare_close(want, want, atol, rtol);
  CHECK(r.bad == 0);
  CHECK(r.text.empty());

  auto got = want;
  got[517] = off_by(want[517], atol, rtol, 1.05);   // just past
  r = compare_close(got, want, atol, rtol);
  CHECK(r.bad == 1);
  CHECK(r.worst == 517);
  CHECK(r.first_bad == 517);
  CHECK(r.worst_ratio > 1.0);
  CHECK(r.worst_ratio < 1.1);
  CHECK_MESSAGE(contains(r.text, "1 of 1000"), r.text);
  CHECK_MESSAGE(contains(r.text, "[517]"), r.text);

  got[517] = off_by(want[517], atol, rtol, 0.95);   // just inside
  CHECK(compare_close(got, want, atol, rtol).bad == 0);
  got[517] = off_by(want[517], atol, rtol, -1.05);  // just past, below
  CHECK(compare_close(got, want, atol, rtol).bad == 1);

  // Exact comparisons: one ulp is an error.
  got = want;
  got[0] = std::nextafter(want[0], INFINITY);
  r = compare_close(got, want, 0, 0);
  CHECK(r.bad == 1);
  CHECK(r.worst == 0);
}

TEST_CASE("checkers: compare_close reports the worst of several errors and the first") {
  const auto want = random_vector(1000, 6);
  auto got = want;
  got[10] = off_by(want[10], 1e-6, 1e-6, 2.0);
  got[900] = off_by(want[900], 1e-6, 1e-6, 50.0);
  got[400] = off_by(want[400], 1e-6, 1e-6, 5.0);
  const CloseReport r = compare_close(got, want, 1e-6, 1e-6);
  CHECK(r.bad == 3);
  CHECK(r.worst == 900);
  CHECK(r.first_bad == 10);
  CHECK(r.worst_ratio == doctest::Approx(50.0).epsilon(0.02));
  CHECK(r.max_err == doctest::Approx(std::fabs(double(got[900]) - want[900])));
}

TEST_CASE("checkers: NaN and infinities") {
  const float inf = INFINITY;
  // NaN where the reference has NaN, equal infinities, -0 against +0: equal.
  CHECK(compare_close({kNaN, inf, -inf, -0.f}, {kNaN, inf, -inf, 0.f}, 0, 0).bad == 0);
  // A NaN against a number fails whatever the tolerance, either way round.
  CloseReport r = compare_close({1.f, kNaN, 3.f}, {1.f, 2.f, 3.f}, 1e30, 1e30);
  CHECK(r.bad == 1);
  CHECK(r.worst == 1);
  CHECK(compare_close({1.f, 2.f, 3.f}, {1.f, 2.f, kNaN}, 1e30, 1e30).bad == 1);
  // Opposite infinities, and an infinity against a number, either way round: rtol * |inf| is no
  // tolerance (the checker before this test accepted -inf for +inf whenever rtol > 0).
  CHECK(compare_close({inf}, {-inf}, 1e30, 1e30).bad == 1);
  CHECK(compare_close({inf}, {3.f}, 1e30, 0).bad == 1);
  CHECK(compare_close({std::numeric_limits<float>::max()}, {inf}, 1e30, 1e30).bad == 1);
  // Sizes that differ are a failure, not a partial comparison.
  CHECK(compare_close({1.f, 2.f}, {1.f}, 1, 1).bad > 0);
}

TEST_CASE("checkers: compare_close_scaled finds a planted error against rel * sum|terms| + abs") {
  const auto want = random_vector(333, 7);
  auto scale = random_vector(333, 8, 0.f, 50.f);
  scale[100] = 0.f;   // a zero scale: only abs_tol is left
  const double rel = 2e-5, abs_tol = 1e-6;
  CHECK(compare_close_scaled(want, want, scale, rel, abs_tol).bad == 0);
  auto got = want;
  got[200] = static_cast<float>(want[200] + 1.2 * (rel * scale[200] + abs_tol));
  CloseReport r = compare_close_scaled(got, want, scale, rel, abs_tol);
  CHECK(r.bad == 1);
  CHECK(r.worst == 200);
  CHECK_MESSAGE(contains(r.text, "[200]"), r.text);
  CHECK_MESSAGE(contains(r.text, "sum|terms|"), r.text);
  got[200] = static_cast<float>(want[200] + 0.8 * (rel * scale[200] + abs_tol));
  CHECK(compare_close_scaled(got, want, scale, rel, abs_tol).bad == 0);
  got = want;
  got[100] = want[100] + 4e-6f;   // 4x abs_tol where the scale is 0
  r = compare_close_scaled(got, want, scale, rel, abs_tol);
  CHECK(r.bad == 1);
  CHECK(r.worst == 100);
  // No NaN passes here, not even NaN against NaN; and the scale must match.
  got = want;
  got[5] = kNaN;
  auto want_nan = want;
  want_nan[5] = kNaN;
  CHECK(compare_close_scaled(got, want_nan, scale, 1e30, 1e30).bad == 1);
  CHECK(compare_close_scaled(want, want, std::vector<float>(10, 1.f), rel, abs_tol).bad > 0);
}

TEST_CASE("checkers: a one-element error planted in kernel output is caught") {
  // relu through CUDA-on-CPU, compared exactly as in test_elementwise.cpp.
  const int n = 1029;
  const auto x = random_vector(size_t(n), 9);
  std::vector<float> want(x);
  for (auto& v : want) v = v > 0 ? v : 0.f;
  DeviceBuffer<float> dx(x), dy{size_t(n)};
  coc::relu_forward(dx.ptr(), dy.ptr(), n);
  auto got = dy.download();
  CHECK(compare_close(got, want, 0, 0).bad == 0);
  const size_t k = 1028;   // the tail past the vector path
  got[k] = std::nextafter(got[k], INFINITY);
  CloseReport r = compare_close(got, want, 0, 0);
  CHECK(r.bad == 1);
  CHECK(r.worst == k);

  // conv2d forward with the tolerance of test_conv2d.cpp: an error of 1.5x the tolerance of one
  // output element (3x3, dilation 2, 37 -> 5 channels) is found, and only there.
  const cpu::Conv2dGeometry g{1, 37, 7, 9, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1};
  const coc::Conv2dShape s{1, 37, 7, 9, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1};
  const size_t nx = 37 * 7 * 9, nw = 5 * 37 * 9, ny = size_t(5) * g.h_out() * g.w_out();
  const auto cx = random_vector(nx, 10), cw = random_vector(nw, 11, -1.f, 1.f);
  std::vector<float> cwant(ny), cscale(ny), ax(cx), aw(cw);
  for (auto& v : ax) v = std::fabs(v);
  for (auto& v : aw) v = std::fabs(v);
  cpu::conv2d_forward<float>(g, cx.data(), cw.data(), nullptr, false, cwant.data());
  cpu::conv2d_forward<float>(g, ax.data(), aw.data(), nullptr, false, cscale.data());
  DeviceBuffer<float> dcx(cx), dcw(cw), dcy{ny};
  coc::conv2d_forward(s, dcx.ptr(), dcw.ptr(), nullptr, false, dcy.ptr());
  auto cgot = dcy.download();
  const double rel = 2e-5;
  CHECK(compare_close_scaled(cgot, cwant, cscale, rel).bad == 0);
  const size_t j = ny / 2 + 3;
  cgot[j] = static_cast<float>(cwant[j] + 1.5 * (rel * cscale[j] + 1e-6));
  r = compare_close_scaled(cgot, cwant, cscale, rel);
  CHECK(r.bad == 1);
  CHECK(r.worst == j);
}

// These pass only when the check inside fails (doctest::should_fail): the ERROR lines are planted.
TEST_CASE("checkers: expect_close fails the case on a planted one-element error" * doctest::should_fail()) {
  MESSAGE("planted error: the failed check below is expected");
  auto want = random_vector(37, 12);
  auto got = want;
  got[36] = std::nextafter(got[36], -INFINITY);
  expect_close("planted", got, want, 0, 0);
}

TEST_CASE("checkers: expect_close_scaled fails the case on a planted one-element error" * doctest::should_fail()) {
  MESSAGE("planted error: the failed check below is expected");
  auto want = random_vector(37, 13);
  const std::vector<float> scale(37, 1.f);
  auto got = want;
  got[0] = static_cast<float>(want[0] + 2 * (2e-5 + 1e-6));
  expect_close_scaled("planted", got, want, scale, 2e-5);
}
