// Shared pieces of the corruption files (data/corruptions*.cpp), not a public interface: the
// float planar image they work on, border indexing, separable filters, bilinear sampling and the
// per-family entry points. See data/corruptions.h for the parameters.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "data/corruptions.h"
#include "data/random_stream.h"

namespace moeseg::data::corruption_detail {

// Planar float image: plane p, row y, column x at v[(p*h + y)*w + x].
struct Planes {
  int c = 0, h = 0, w = 0;
  std::vector<float> v;
  Planes() = default;
  Planes(int c_, int h_, int w_, float fill = 0.f) : c(c_), h(h_), w(w_), v(static_cast<size_t>(c_) * h_ * w_, fill) {}
  float* plane(int p) { return v.data() + static_cast<size_t>(p) * h * w; }
  const float* plane(int p) const { return v.data() + static_cast<size_t>(p) * h * w; }
  float& at(int p, int y, int x) { return v[(static_cast<size_t>(p) * h + y) * w + x]; }
  float at(int p, int y, int x) const { return v[(static_cast<size_t>(p) * h + y) * w + x]; }
};

inline int clamp_index(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }
// scipy's 'reflect' (half-sample symmetric: d c b a | a b c d | d c b a), for any offset.
inline int reflect_index(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}
// NaN maps to 0 (every comparison with NaN is false).
inline float clamp01(float x) { return x > 0.f ? (x < 1.f ? x : 1.f) : 0.f; }

// A random stream for (seed, corruption, purpose, row): rows draw independently, so a row-parallel
// loop gives the same numbers with any thread count.
inline RandomStream corruption_stream(uint64_t seed, Corruption c, uint32_t purpose, uint32_t row) {
  constexpr uint32_t kCorruptionDomain = 0xC022u;   // keeps these streams apart from other data users
  return RandomStream(seed, kCorruptionDomain, (static_cast<uint32_t>(c) << 8) | purpose, row);
}

// Normalised Gaussian taps exp(-k^2/2s^2), k = -r..r, r = int(truncate*sigma + 0.5) (skimage).
std::vector<float> gaussian_taps(double sigma, double truncate);
// Separable Gaussian blur of every plane; border clamp (skimage 'nearest') or reflect.
void gaussian_blur_planes(Planes& img, double sigma, double truncate, bool reflect_border);
// Bilinear sample of plane p at (y, x), coordinates clamped to the image.
float bilinear_clamped(const Planes& img, int p, float y, float x);
// Bilinear sample with reflect border (scipy map_coordinates mode='reflect', order=1).
float bilinear_reflect(const Planes& img, int p, float y, float x);
// ImageMagick MotionBlurImage: one-sided line of 2*ceil(radius)+1 taps at integer offsets
// round(i*cos a), round(i*sin a), weights exp(-i^2/2 sigma^2) normalised; edge border.
Planes motion_blur_planes(const Planes& img, double radius, double sigma, double angle_deg);
// Bilinear taps of a centre zoom by z along an axis of n pixels: output i reads
// i0 + f * (i1 - i0) at source c + (i - c)/z, c = (n-1)/2, clamped to the axis.
struct Lerp {
  int i0, i1;
  float f;
};
std::vector<Lerp> zoom_taps(int n, double z);
// scipy-style centre zoom by z >= 1 (bilinear), the output cropped to the input size.
Planes centre_zoom(const Planes& img, double z);

// Families (seed and severity already checked; severity is 1..5).
Planes noise_corruption(const Planes& x, Corruption c, int severity, uint64_t seed);
Planes blur_corruption(const Planes& x, Corruption c, int severity, uint64_t seed);
Planes digital_corruption(const Planes& x, Corruption c, int severity, uint64_t seed);
Planes weather_corruption(const Planes& x, Corruption c, int severity, uint64_t seed);

// s = max(0.5, min(H,W)/224): spatial parameters of ImageNet-C's tables are multiplied by it
// (the floor keeps severity 1 visible on small images; see data/corruptions.h).
inline double spatial_scale(const Planes& x) { return std::max(0.5, std::min(x.h, x.w) / 224.0); }

}  // namespace moeseg::data::corruption_detail
