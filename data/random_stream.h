// A counter-based random stream for the data layer: every draw is Philox-4x32-10 of
// (seed, a 3-word stream id, a draw counter). A stream id is e.g. (domain, split, image index)
// in the scene generator or (epoch, sample index, purpose) in augmentation, so a value depends
// only on *what* it is for, never on which thread drew it or in what order: the same seed gives
// the same data with 1 or 16 threads, and any image can be regenerated on its own.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

#include "core/rng.h"

namespace moeseg::data {

class RandomStream {
 public:
  RandomStream(uint64_t seed, uint32_t a, uint32_t b = 0, uint32_t c = 0)
      : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}, a_(a), b_(b), c_(c) {}

  // Next raw 32-bit value. Four values come from one Philox block; the block counter is
  // (draw/4, a, b, c) so at most 2^32 blocks per stream, far more than any image needs.
  uint32_t next_u32() {
    if (pos_ == 4) {
      buf_ = philox4x32({block_++, a_, b_, c_}, key_);
      pos_ = 0;
    }
    return buf_[pos_++];
  }
  // Uniform in [0, 1).
  double uniform() { return 1.0 - uint_to_unit(next_u32()); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Integer in [lo, hi] (inclusive).
  int randint(int lo, int hi) {
    return lo + static_cast<int>(uniform() * (hi - lo + 1)) % (hi - lo + 1);
  }
  bool bernoulli(double p) { return uniform() < p; }
  // Standard normal by Box-Muller (one value per call; the pair's second half is discarded,
  // which keeps the draw count per call fixed and the stream easy to reason about).
  double normal() {
    double u1 = uint_to_unit(next_u32()), u2 = uint_to_unit(next_u32());
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  double normal(double mean, double std) { return mean + std * normal(); }

 private:
  std::array<uint32_t, 2> key_;
  uint32_t a_, b_, c_;
  uint32_t block_ = 0;
  std::array<uint32_t, 4> buf_{};
  int pos_ = 4;
};

}  // namespace moeseg::data
