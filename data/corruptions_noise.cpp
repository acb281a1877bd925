// Noise corruptions: gaussian, shot (Poisson) and impulse (salt & pepper) noise, one random stream
// per (plane, row) so the row-parallel loops draw the same numbers with any thread count.
// Parameters: data/corruptions.h. Tests: tests/data/test_corruptions.cpp.
#include <cmath>

#include "data/corruptions_internal.h"

namespace moeseg::data::corruption_detail {

namespace {

// Poisson(lam) by inversion of the CDF from one uniform: exact for the lam <= 60 used here
// (e^-60 ~ 1e-26 is far above double's range limit), a fixed number of draws per value.
int poisson_inverse(double lam, double u) {
  double p = std::exp(-lam), cdf = p;
  int k = 0;
  const int kmax = static_cast<int>(lam + 20.0 * std::sqrt(lam) + 20.0);
  while (u > cdf && k < kmax) {
    ++k;
    p *= lam / k;
    cdf += p;
  }
  return k;
}

}  // namespace

Planes noise_corruption(const Planes& x, Corruption c, int severity, uint64_t seed) {
  static constexpr double kGaussian[] = {.08, .12, .18, .26, .38};
  static constexpr double kShot[] = {60, 25, 12, 5, 3};
  static constexpr double kImpulse[] = {.03, .06, .09, .17, .27};
  const int s = severity - 1;
  Planes out = x;
  for (int p = 0; p < x.c; ++p) {
#pragma omp parallel for schedule(static)
    for (int y = 0; y < x.h; ++y) {
      RandomStream rs = corruption_stream(seed, c, static_cast<uint32_t>(p), static_cast<uint32_t>(y));
      for (int xx = 0; xx < x.w; ++xx) {
        float& v = out.at(p, y, xx);
        switch (c) {
          case Corruption::GaussianNoise:
            v = static_cast<float>(v + kGaussian[s] * rs.normal());
            break;
          case Corruption::ShotNoise:
            v = static_cast<float>(poisson_inverse(v * kShot[s], rs.uniform()) / kShot[s]);
            break;
          default: {   // ImpulseNoise, skimage random_noise(mode='s&p'): each value flipped with p = amount
            const bool flipped = rs.uniform() < kImpulse[s];
            const bool salt = rs.uniform() < 0.5;   // drawn always: a fixed number of draws per value
            if (flipped) v = salt ? 1.f : 0.f;
          }
        }
      }
    }
  }
  return out;
}

}  // namespace moeseg::data::corruption_detail
