// Helpers for tests/cuda_kernels: "device" buffers on the CUDA-on-CPU runtime, seeded random
// inputs, and the comparison with explicit tolerances that prints the worst element on failure.
#pragma once
#include <doctest/doctest.h>

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

// Passes when every |got - want| <= atol + rtol * |want| (both NaN counts as equal). On failure
// prints the worst element (largest excess over its tolerance), its values and the max error.
inline bool expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                         double atol, double rtol) {
  REQUIRE_MESSAGE(got.size() == want.size(), what, ": size ", got.size(), " vs ", want.size());
  double worst_excess = 0, max_err = 0;
  size_t worst = 0, bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(g) && std::isnan(w)) continue;
    const double err = (std::isnan(g) || std::isnan(w)) ? INFINITY : std::fabs(g - w);
    const double excess = err - (atol + rtol * std::fabs(w));
    if (err > max_err) max_err = err;
    if (excess > 0) {
      ++bad;
      if (excess > worst_excess || bad == 1) {
        worst_excess = excess;
        worst = i;
      }
    }
  }
  if (bad) {
    FAIL_CHECK(what << ": " << bad << " of " << got.size() << " elements out of tolerance (atol " << atol
                    << ", rtol " << rtol << "); worst [" << worst << "] got " << got[worst] << " want "
                    << want[worst] << "; max abs error " << max_err);
    return false;
  }
  CHECK(true);
  return true;
}

}  // namespace moeseg::cuda_test
