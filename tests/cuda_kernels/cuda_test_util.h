// Helpers for tests/cuda_kernels: "device" buffers on the CUDA-on-CPU runtime, seeded random
// inputs, and the comparisons with explicit tolerances that print the worst element on failure
// (themselves checked with planted errors in test_checkers.cpp).
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_kernels.cuh"

namespace moeseg::cuda_test {

// cudaMalloc'd buffer of n elements (+ `pad` extra elements in front so a test can hand out a
// deliberately misaligned pointer: ptr() = base + pad).
template <class T>
struct DeviceBuffer {
  T* base = nullptr;
  size_t n = 0, pad = 0;
  explicit DeviceBuffer(size_t count, size_t pad_elems = 0) : n(count), pad(pad_elems) {
    REQUIRE(cudaMalloc(&base, (count + pad_elems) * sizeof(T) + 1) == cudaSuccess);
  }
  explicit DeviceBuffer(const std::vector<T>& host, size_t pad_elems = 0) : DeviceBuffer(host.size(), pad_elems) {
    upload(host);
  }
  ~DeviceBuffer() { cudaFree(base); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* ptr() const { return base + pad; }
  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() == n);
    REQUIRE(cudaMemcpy(ptr(), host.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> host(n);
    REQUIRE(cudaMemcpy(host.data(), ptr(), n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return host;
  }
};

inline std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -3.f, float hi = 3.f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// What a comparison found. `bad` elements are out of tolerance; `worst` is the one furthest past
// its tolerance (ratio error / tolerance), `max_err` the largest |got - want| (inf when exactly
// one side is NaN or the two are opposite infinities). `text` describes the failure (empty when
// bad == 0). Pure functions, so tests/cuda_kernels/test_checkers.cpp can check the checkers.
struct CloseReport {
  size_t bad = 0, worst = 0, first_bad = 0;
  double max_err = 0, worst_ratio = 0;
  std::string text;
};

namespace detail {
// tolerance(i, want) >= 0 (0: only equality passes). Equal values (the same infinity, -0 and +0)
// pass; NaN or infinity against anything else fails; NaN against NaN passes only when nan_equal.
template <class Tol>
CloseReport compare(const std::vector<float>& got, const std::vector<float>& want, bool nan_equal, Tol tolerance) {
  CloseReport r;
  if (got.size() != want.size()) {   // expect_close* REQUIRE equal sizes first; this is for direct calls
    r.bad = std::max(got.size(), want.size());
    r.max_err = r.worst_ratio = INFINITY;
    return r;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (g == w || (nan_equal && std::isnan(g) && std::isnan(w))) continue;
    // A NaN or an infinity that is not matched exactly fails whatever the tolerance (rtol * |inf|
    // would otherwise accept -inf for +inf).
    const bool nonfinite = !std::isfinite(g) || !std::isfinite(w);
    const double err = nonfinite ? INFINITY : std::fabs(g - w);
    const double tol = tolerance(i, w);
    if (err > r.max_err) r.max_err = err;
    if (!nonfinite && err <= tol) continue;
    const double ratio = tol > 0 ? err / tol : INFINITY;
    if (r.bad == 0 || ratio > r.worst_ratio) {
      r.worst_ratio = ratio;
      r.worst = i;
    }
    if (r.bad == 0) r.first_bad = i;
    ++r.bad;
  }
  return r;
}
inline std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}
inline std::string describe(const CloseReport& r, const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  char b[320];
  std::snprintf(b, sizeof b,
                "%zu of %zu elements out of tolerance; worst [%zu] got %.9g want %.9g (error / tolerance %.3g), "
                "first [%zu]; max abs error %.3g",
                r.bad, got.size(), r.worst, double(got[r.worst]), double(want[r.worst]), r.worst_ratio, r.first_bad,
                r.max_err);
  return b;
}
}  // namespace detail

// |got - want| <= atol + rtol * |want| for every element (NaN where the reference has NaN).
inline CloseReport compare_close(const std::vector<float>& got, const std::vector<float>& want, double atol,
                                 double rtol) {
  CloseReport r = detail::compare(got, want, true, [&](size_t, double w) { return atol + rtol * std::fabs(w); });
  if (r.bad) r.text = detail::describe(r, got, want) + " (atol " + detail::num(atol) + ", rtol " +
                      detail::num(rtol) + ")";
  return r;
}

// |got - want| <= rel * scale[i] + abs_tol for every element; scale[i] is the sum of |terms| of that
// element (a dot product computed on |inputs|), so cancellation never makes the tolerance too tight.
// Any NaN fails, in the result or in the reference (sums of finite terms are never NaN).
inline CloseReport compare_close_scaled(const std::vector<float>& got, const std::vector<float>& want,
                                        const std::vector<float>& scale, double rel, double abs_tol = 1e-6) {
  if (scale.size() != want.size()) {
    CloseReport r;
    r.bad = want.size() + 1;
    r.text = "scale size " + std::to_string(scale.size()) + " vs " + std::to_string(want.size());
    return r;
  }
  CloseReport r = detail::compare(got, want, false, [&](size_t i, double) { return rel * scale[i] + abs_tol; });
  if (r.bad) r.text = detail::describe(r, got, want) + " (tolerance " + detail::num(rel) + " * sum|terms| + " +
                      detail::num(abs_tol) + "; sum|terms| of the worst " +
                      (got.size() == want.size() ? detail::num(scale[r.worst]) : "?") + ")";
  return r;
}

// The checks: one doctest assertion each, failing with the report (worst element, max error).
inline bool expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                         double atol, double rtol) {
  REQUIRE_MESSAGE(got.size() == want.size(), what, ": size ", got.size(), " vs ", want.size());
  const CloseReport r = compare_close(got, want, atol, rtol);
  CHECK_MESSAGE(r.bad == 0, what, ": ", r.text);
  return r.bad == 0;
}

inline bool expect_close_scaled(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                                const std::vector<float>& scale, double rel, double abs_tol = 1e-6) {
  REQUIRE_MESSAGE(got.size() == want.size(), what, ": size ", got.size(), " vs ", want.size());
  REQUIRE_MESSAGE(scale.size() == want.size(), what, ": scale size ", scale.size(), " vs ", want.size());
  const CloseReport r = compare_close_scaled(got, want, scale, rel, abs_tol);
  CHECK_MESSAGE(r.bad == 0, what, ": ", r.text);
  return r.bad == 0;
}

}  // namespace moeseg::cuda_test
