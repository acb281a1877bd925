// Counter-based random numbers (Philox-4x32-10): element i of a draw depends only on
// (seed, offset, i), so the same seed gives the same numbers on the CPU and on the GPU, in any
// thread order, and a data-loader worker can draw without sharing state.
// A Generator hands out disjoint counter ranges: each draw advances its offset.
#pragma once
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace moeseg {

// One Philox-4x32-10 block: four 32-bit outputs for a 128-bit counter and a 64-bit key.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// uint32 -> float in (0, 1], never 0 so that log() is safe.
inline double uint_to_unit(uint32_t x) { return (static_cast<double>(x) + 1.0) * (1.0 / 4294967296.0); }

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t o) { offset_ = o; }    // restore from a checkpoint
  // Reserves `blocks` Philox blocks and returns the first counter of the range.
  uint64_t reserve(uint64_t blocks) { uint64_t o = offset_; offset_ += blocks; return o; }
  // Uniform double in (0,1] for stream position `index` of the block range starting at `base`.
  double uniform_at(uint64_t base, uint64_t index) const;
 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

// In-place fills (float tensors on the CPU; CUDA kernels compute the same Philox values).
void uniform_(const Tensor& t, double lo, double hi, Generator& g = default_generator());
void normal_(const Tensor& t, double mean, double std, Generator& g = default_generator());

Tensor rand(const Shape& shape, DType dtype = DType::Float32, Generator& g = default_generator());
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Generator& g = default_generator());
// Integers uniformly in [lo, hi), int64.
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator& g = default_generator());

}  // namespace moeseg
