// Blur corruptions: defocus (antialiased disk), gaussian, motion (ImageMagick's one-sided line)
// and zoom blur. Every kernel is normalised and borders replicate the edge, so a constant image
// stays constant (to float rounding). Parameters: data/corruptions.h.
// Tests: tests/data/test_corruptions.cpp.
#include <cmath>
#include <cstdlib>

#include "data/corruptions_internal.h"

namespace moeseg::data::corruption_detail {

namespace {

struct Tap {
  int dy, dx;
  float w;
};

// ImageNet-C's disk(radius, alias_blur): the pixels within `radius`, normalised, then smoothed by
// a 3x3 (radius <= 8) or 5x5 Gaussian of sigma `alias` (cv2.GaussianBlur). Only non-zero taps kept.
std::vector<Tap> disk_taps(double radius, double alias) {
  const int ks = radius <= 8 ? 3 : 5, kr = ks / 2;
  const int R = static_cast<int>(std::ceil(radius)) + kr;
  const int n = 2 * R + 1;
  std::vector<double> disk(n * n, 0.0), out(n * n, 0.0);
  double count = 0;
  for (int y = -R; y <= R; ++y)
    for (int x = -R; x <= R; ++x)
      if (x * x + y * y <= radius * radius) disk[(y + R) * n + x + R] = 1, ++count;
  std::vector<double> g(ks);
  double gs = 0;
  for (int k = -kr; k <= kr; ++k) gs += g[k + kr] = std::exp(-0.5 * k * k / (alias * alias));
  for (double& v : g) v /= gs;
  double total = 0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      double acc = 0;
      for (int a = -kr; a <= kr; ++a)
        for (int b = -kr; b <= kr; ++b) {
          const int yy = y + a, xx = x + b;
          if (yy >= 0 && yy < n && xx >= 0 && xx < n) acc += g[a + kr] * g[b + kr] * disk[yy * n + xx];
        }
      total += out[y * n + x] = acc / count;
    }
  std::vector<Tap> taps;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      if (out[y * n + x] > 1e-12) taps.push_back({y - R, x - R, static_cast<float>(out[y * n + x] / total)});
  return taps;
}

Planes defocus(const Planes& x, double radius, double alias) {
  const std::vector<Tap> taps = disk_taps(radius, alias);
  int R = 0;
  for (const Tap& t : taps) R = std::max({R, std::abs(t.dy), std::abs(t.dx)});
  // Edge-replicated copy padded by R, so the tap loop is a plain offset (no per-tap clamping).
  const int pw = x.w + 2 * R, ph = x.h + 2 * R;
  std::vector<ptrdiff_t> off(taps.size());
  for (size_t k = 0; k < taps.size(); ++k) off[k] = static_cast<ptrdiff_t>(taps[k].dy) * pw + taps[k].dx;
  Planes out(x.c, x.h, x.w);
  std::vector<float> pad(static_cast<size_t>(ph) * pw);
  for (int p = 0; p < x.c; ++p) {
    for (int y = 0; y < ph; ++y)
      for (int xx = 0; xx < pw; ++xx)
        pad[static_cast<size_t>(y) * pw + xx] = x.at(p, clamp_index(y - R, x.h), clamp_index(xx - R, x.w));
#pragma omp parallel for schedule(static)
    for (int y = 0; y < x.h; ++y)
      for (int xx = 0; xx < x.w; ++xx) {
        const float* centre = pad.data() + static_cast<size_t>(y + R) * pw + (xx + R);
        float acc = 0.f;
        for (size_t k = 0; k < taps.size(); ++k) acc += taps[k].w * centre[off[k]];
        out.at(p, y, xx) = acc;
      }
  }
  return out;
}

Planes zoom_blur(const Planes& x, double stop, double step) {
  // numpy's arange(1, stop, step): ceil((stop-1)/step) values 1 + i*step (its length, float
  // rounding included, e.g. arange(1, 1.11, .01) has 12 values 1.00..1.11).
  const int n = static_cast<int>(std::ceil((stop - 1.0) / step));
  std::vector<std::vector<Lerp>> ty(n), tx(n);
  for (int i = 0; i < n; ++i) ty[i] = zoom_taps(x.h, 1.0 + i * step), tx[i] = zoom_taps(x.w, 1.0 + i * step);
  const float inv = 1.0f / static_cast<float>(n + 1);
  Planes out(x.c, x.h, x.w);
  // One pass over rows for all zooms (each output sums x and its n zooms in zoom order).
#pragma omp parallel for collapse(2) schedule(static)
  for (int p = 0; p < x.c; ++p)
    for (int y = 0; y < x.h; ++y) {
      float* o = out.plane(p) + static_cast<size_t>(y) * x.w;
      const float* row = x.plane(p) + static_cast<size_t>(y) * x.w;
      for (int xx = 0; xx < x.w; ++xx) o[xx] = row[xx];
      for (int i = 0; i < n; ++i) {
        const float* r0 = x.plane(p) + static_cast<size_t>(ty[i][y].i0) * x.w;
        const float* r1 = x.plane(p) + static_cast<size_t>(ty[i][y].i1) * x.w;
        const float fy = ty[i][y].f;
        for (int xx = 0; xx < x.w; ++xx) {
          const Lerp& t = tx[i][xx];
          const float top = r0[t.i0] + t.f * (r0[t.i1] - r0[t.i0]);
          const float bot = r1[t.i0] + t.f * (r1[t.i1] - r1[t.i0]);
          o[xx] += top + fy * (bot - top);
        }
      }
      for (int xx = 0; xx < x.w; ++xx) o[xx] *= inv;
    }
  return out;
}

}  // namespace

Planes blur_corruption(const Planes& x, Corruption c, int severity, uint64_t seed) {
  const int s = severity - 1;
  const double sc = spatial_scale(x);
  switch (c) {
    case Corruption::DefocusBlur: {
      static constexpr double kRadius[] = {3, 4, 6, 8, 10}, kAlias[] = {.1, .5, .5, .5, .5};
      return defocus(x, kRadius[s] * sc, kAlias[s]);
    }
    case Corruption::GaussianBlur: {
      static constexpr double kSigma[] = {1, 2, 3, 4, 6};
      Planes out = x;
      gaussian_blur_planes(out, kSigma[s] * sc, 4.0, /*reflect_border=*/false);
      return out;
    }
    case Corruption::MotionBlur: {
      static constexpr double kRadius[] = {10, 15, 15, 15, 20}, kSigma[] = {3, 5, 8, 12, 15};
      RandomStream rs = corruption_stream(seed, c, 0, 0);
      const double angle = rs.uniform(-45, 45);
      return motion_blur_planes(x, kRadius[s] * sc, kSigma[s] * sc, angle);
    }
    default: {   // ZoomBlur
      static constexpr double kStop[] = {1.11, 1.16, 1.21, 1.26, 1.31}, kStep[] = {.01, .01, .02, .02, .03};
      return zoom_blur(x, kStop[s], kStep[s]);
    }
  }
}

}  // namespace moeseg::data::corruption_detail
