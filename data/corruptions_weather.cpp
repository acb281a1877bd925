// Weather-like corruptions: fog (diamond-square plasma fractal), snow, spatter (water / mud) and
// the elastic transform. Random fields are drawn per row (or serially where the algorithm is
// sequential, the plasma), so the output is fixed by the seed. Parameters: data/corruptions.h.
// Tests: tests/data/test_corruptions.cpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "data/corruptions_internal.h"

namespace moeseg::data::corruption_detail {

namespace {

// ImageNet-C's plasma_fractal(mapsize, wibbledecay): diamond-square on a torus, every new point
// the mean of its 4 neighbours + wibble * U(-wibble, wibble), wibble from 100 divided by `decay`
// each level; normalised to [0,1]. Draws serially in numpy's order (squares, then the two
// diamond sets, row-major).
std::vector<double> plasma_fractal(int mapsize, double decay, RandomStream& rs) {
  const int M = mapsize;
  std::vector<double> m(static_cast<size_t>(M) * M, 0.0);
  auto at = [&](int y, int x) -> double& { return m[static_cast<size_t>(y) * M + x]; };
  double wibble = 100;
  for (int st = M; st >= 2; st /= 2) {
    const int half = st / 2, n = M / st;
    auto ul = [&](int i, int j) { return at(((i % n + n) % n) * st, ((j % n + n) % n) * st); };
    auto dr = [&](int i, int j) { return at(((i % n + n) % n) * st + half, ((j % n + n) % n) * st + half); };
    auto wibbled = [&](double sum) { return sum / 4 + wibble * rs.uniform(-wibble, wibble); };
    for (int i = 0; i < n; ++i)   // squares
      for (int j = 0; j < n; ++j)
        at(i * st + half, j * st + half) = wibbled(ul(i, j) + ul(i + 1, j) + ul(i, j + 1) + ul(i + 1, j + 1));
    for (int i = 0; i < n; ++i)   // diamonds on the rows of the corners
      for (int j = 0; j < n; ++j) at(i * st, j * st + half) = wibbled(dr(i, j) + dr(i - 1, j) + ul(i, j) + ul(i, j + 1));
    for (int i = 0; i < n; ++i)   // diamonds on the columns of the corners
      for (int j = 0; j < n; ++j) at(i * st + half, j * st) = wibbled(dr(i, j) + dr(i, j - 1) + ul(i, j) + ul(i + 1, j));
    wibble /= decay;
  }
  double lo = m[0], hi = m[0];
  for (double v : m) lo = std::min(lo, v), hi = std::max(hi, v);
  for (double& v : m) v = hi > lo ? (v - lo) / (hi - lo) : 0.0;
  return m;
}

Planes fog(const Planes& x, double amount, double decay, uint64_t seed) {
  int M = 2;
  while (M < std::max(x.h, x.w)) M *= 2;
  RandomStream rs = corruption_stream(seed, Corruption::Fog, 0, 0);
  const std::vector<double> map = plasma_fractal(M, decay, rs);
  float max_val = 0.f;
  for (float v : x.v) max_val = std::max(max_val, v);
  const float k = max_val / (max_val + static_cast<float>(amount));
  Planes out = x;
  for (int p = 0; p < x.c; ++p)
#pragma omp parallel for schedule(static)
    for (int y = 0; y < x.h; ++y)
      for (int xx = 0; xx < x.w; ++xx)
        out.at(p, y, xx) = (x.at(p, y, xx) + static_cast<float>(amount * map[static_cast<size_t>(y) * M + xx])) * k;
  return out;
}

// One plane of N(mean, std), a stream per row.
Planes normal_field(int h, int w, double mean, double std, uint64_t seed, Corruption c, uint32_t purpose) {
  Planes f(1, h, w);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < h; ++y) {
    RandomStream rs = corruption_stream(seed, c, purpose, static_cast<uint32_t>(y));
    for (int x = 0; x < w; ++x) f.at(0, y, x) = static_cast<float>(rs.normal(mean, std));
  }
  return f;
}

Planes uniform_field(int h, int w, uint64_t seed, Corruption c, uint32_t purpose) {
  Planes f(1, h, w);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < h; ++y) {
    RandomStream rs = corruption_stream(seed, c, purpose, static_cast<uint32_t>(y));
    for (int x = 0; x < w; ++x) f.at(0, y, x) = static_cast<float>(rs.uniform(-1, 1));
  }
  return f;
}

struct SnowParams { double mean, std, zoom, cut, radius, sigma, keep; };

Planes snow(const Planes& x, const SnowParams& c, uint64_t seed) {
  const double s = spatial_scale(x);
  // Flake size is a zoom of per-pixel noise, so it is in pixels too: zoom * s, at least 1.
  Planes flakes = centre_zoom(normal_field(x.h, x.w, c.mean, c.std, seed, Corruption::Snow, 0), std::max(1.0, c.zoom * s));
  for (float& v : flakes.v) v = v < c.cut ? 0.f : std::floor(clamp01(v) * 255.f) / 255.f;   // an 8-bit layer
  RandomStream rs = corruption_stream(seed, Corruption::Snow, 1, 0);
  const double angle = rs.uniform(-135, -45);
  flakes = motion_blur_planes(flakes, c.radius * s, c.sigma * s, angle);
  Planes out(x.c, x.h, x.w);
  const float keep = static_cast<float>(c.keep);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < x.h; ++y)
    for (int xx = 0; xx < x.w; ++xx) {
      const float gray = 0.299f * x.at(0, y, xx) + 0.587f * x.at(1, y, xx) + 0.114f * x.at(2, y, xx);
      const float snow_here = flakes.at(0, y, xx) + flakes.at(0, x.h - 1 - y, x.w - 1 - xx);
      for (int p = 0; p < x.c; ++p) {
        const float v = x.at(p, y, xx);
        out.at(p, y, xx) = keep * v + (1 - keep) * std::max(v, gray * 1.5f + 0.5f) + snow_here;
      }
    }
  return out;
}

struct SpatterParams { double mean, std, sigma, cut, amount; bool mud; };

// Distance (pixels, 3-4 chamfer) of every pixel to the nearest pixel whose 4-neighbourhood
// crosses the edge of `mask`; two serial passes.
std::vector<float> edge_distance(const std::vector<uint8_t>& mask, int h, int w) {
  constexpr int kInf = std::numeric_limits<int>::max() / 4;
  std::vector<int> d(static_cast<size_t>(h) * w, kInf);
  auto m = [&](int y, int x) { return mask[static_cast<size_t>(clamp_index(y, h)) * w + clamp_index(x, w)]; };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint8_t v = m(y, x);
      if (m(y - 1, x) != v || m(y + 1, x) != v || m(y, x - 1) != v || m(y, x + 1) != v) d[y * w + x] = 0;
    }
  auto relax = [&](int y, int x, int ny, int nx, int cost) {
    if (ny >= 0 && ny < h && nx >= 0 && nx < w) d[y * w + x] = std::min(d[y * w + x], d[ny * w + nx] + cost);
  };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      relax(y, x, y, x - 1, 3), relax(y, x, y - 1, x - 1, 4), relax(y, x, y - 1, x, 3), relax(y, x, y - 1, x + 1, 4);
  for (int y = h - 1; y >= 0; --y)
    for (int x = w - 1; x >= 0; --x)
      relax(y, x, y, x + 1, 3), relax(y, x, y + 1, x + 1, 4), relax(y, x, y + 1, x, 3), relax(y, x, y + 1, x - 1, 4);
  std::vector<float> out(d.size());
  for (size_t i = 0; i < d.size(); ++i) out[i] = d[i] >= kInf ? 1e9f : d[i] / 3.0f;
  return out;
}

Planes box3(const Planes& f) {
  Planes out(1, f.h, f.w);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < f.h; ++y)
    for (int x = 0; x < f.w; ++x) {
      float acc = 0.f;
      for (int a = -1; a <= 1; ++a)
        for (int b = -1; b <= 1; ++b) acc += f.at(0, clamp_index(y + a, f.h), clamp_index(x + b, f.w));
      out.at(0, y, x) = acc / 9.f;
    }
  return out;
}

Planes spatter(const Planes& x, const SpatterParams& c, uint64_t seed) {
  const double s = spatial_scale(x);
  Planes liquid = normal_field(x.h, x.w, c.mean, c.std, seed, Corruption::Spatter, 0);
  gaussian_blur_planes(liquid, c.sigma * s, 4.0, /*reflect_border=*/false);
  for (float& v : liquid.v) v = v < c.cut ? 0.f : v;
  Planes out = x;
  const size_t hw = static_cast<size_t>(x.h) * x.w;
  if (!c.mud) {
    // Water: liquid * (embossed, truncated distance to the drops' edges), normalised to `amount`,
    // adds pale turquoise.
    std::vector<uint8_t> mask(hw);
    for (size_t i = 0; i < hw; ++i) mask[i] = liquid.v[i] > 0.f;
    const std::vector<float> dist = edge_distance(mask, x.h, x.w);
    const float trunc = static_cast<float>(std::max(1.0, 20.0 * s));
    Planes dn(1, x.h, x.w);
    for (size_t i = 0; i < hw; ++i) dn.v[i] = std::min(dist[i], trunc) / trunc;
    dn = box3(dn);
    static constexpr float kEmboss[3][3] = {{-2, -1, 0}, {-1, 1, 1}, {0, 1, 2}};
    Planes em(1, x.h, x.w);
    for (int y = 0; y < x.h; ++y)
      for (int xx = 0; xx < x.w; ++xx) {
        float acc = 0.f;
        for (int a = -1; a <= 1; ++a)
          for (int b = -1; b <= 1; ++b) acc += kEmboss[a + 1][b + 1] * dn.at(0, clamp_index(y + a, x.h), clamp_index(xx + b, x.w));
        em.at(0, y, xx) = clamp01(acc);
      }
    em = box3(em);
    float mx = 0.f;
    for (size_t i = 0; i < hw; ++i) mx = std::max(mx, em.v[i] *= liquid.v[i]);
    const float k = mx > 0.f ? static_cast<float>(c.amount) / mx : 0.f;
    static constexpr float kWater[3] = {175 / 255.f, 238 / 255.f, 238 / 255.f};
    for (int p = 0; p < x.c; ++p)
      for (size_t i = 0; i < hw; ++i) out.plane(p)[i] += k * em.v[i] * kWater[p];
  } else {
    // Mud: the drops' mask blurred by amount*s, kept where >= 0.8, blended to brown.
    Planes m(1, x.h, x.w);
    for (size_t i = 0; i < hw; ++i) m.v[i] = liquid.v[i] > c.cut ? 1.f : 0.f;
    gaussian_blur_planes(m, c.amount * s, 4.0, /*reflect_border=*/false);
    static constexpr float kMud[3] = {63 / 255.f, 42 / 255.f, 20 / 255.f};
    for (int p = 0; p < x.c; ++p)
      for (size_t i = 0; i < hw; ++i) {
        const float a = m.v[i] < 0.8f ? 0.f : m.v[i];
        out.plane(p)[i] = out.plane(p)[i] * (1 - a) + a * kMud[p];
      }
  }
  return out;
}

double det3(const double m[3][3]) {
  return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
         m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

// The affine map A (2x3) with A * (dst_i, 1) = src_i for three point pairs, by Cramer's rule
// (cv2.getAffineTransform with the roles swapped: we need output pixel -> source pixel).
std::array<double, 6> affine_from_points(const double dst[3][2], const double src[3][2]) {
  const double M[3][3] = {{dst[0][0], dst[0][1], 1}, {dst[1][0], dst[1][1], 1}, {dst[2][0], dst[2][1], 1}};
  const double det = det3(M);
  std::array<double, 6> A{};
  for (int r = 0; r < 2; ++r)
    for (int col = 0; col < 3; ++col) {
      double Mc[3][3];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) Mc[i][j] = j == col ? src[i][r] : M[i][j];
      A[r * 3 + col] = det3(Mc) / det;
    }
  return A;
}

Planes elastic(const Planes& x, double alpha, double sigma, double shift, uint64_t seed) {
  const double cx = x.w / 2, cy = x.h / 2, sq = std::min(x.h, x.w) / 3;
  const double src[3][2] = {{cx + sq, cy + sq}, {cx + sq, cy - sq}, {cx - sq, cy - sq}};
  double dst[3][2];
  RandomStream rs = corruption_stream(seed, Corruption::ElasticTransform, 0, 0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) dst[i][j] = src[i][j] + rs.uniform(-shift, shift);
  std::array<double, 6> A = affine_from_points(dst, src);   // output pixel -> source pixel
  // Below 3 pixels the triangle collapses (sq = 0): no affine part then.
  if (sq == 0 || !std::all_of(A.begin(), A.end(), [](double a) { return std::isfinite(a); })) A = {1, 0, 0, 0, 1, 0};
  Planes dx = uniform_field(x.h, x.w, seed, Corruption::ElasticTransform, 1);
  Planes dy = uniform_field(x.h, x.w, seed, Corruption::ElasticTransform, 2);
  gaussian_blur_planes(dx, sigma, 3.0, /*reflect_border=*/true);
  gaussian_blur_planes(dy, sigma, 3.0, /*reflect_border=*/true);
  Planes out(x.c, x.h, x.w);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < x.h; ++y)
    for (int xx = 0; xx < x.w; ++xx) {
      // ImageNet-C warps, then displaces; composing both into one resample saves a blur.
      const double px = xx + alpha * dx.at(0, y, xx), py = y + alpha * dy.at(0, y, xx);
      const float sx = static_cast<float>(A[0] * px + A[1] * py + A[2]);
      const float sy = static_cast<float>(A[3] * px + A[4] * py + A[5]);
      for (int p = 0; p < x.c; ++p) out.at(p, y, xx) = bilinear_reflect(x, p, sy, sx);
    }
  return out;
}

}  // namespace

Planes weather_corruption(const Planes& x, Corruption c, int severity, uint64_t seed) {
  const int s = severity - 1;
  switch (c) {
    case Corruption::Fog: {
      static constexpr double kAmount[] = {1.5, 2, 2.5, 2.5, 3}, kDecay[] = {2, 2, 1.7, 1.5, 1.4};
      return fog(x, kAmount[s], kDecay[s], seed);
    }
    case Corruption::Snow: {
      static constexpr SnowParams kSnow[] = {{.1, .3, 3, .5, 10, 4, .8},
                                             {.2, .3, 2, .5, 12, 4, .7},
                                             {.55, .3, 4, .9, 12, 8, .7},
                                             {.55, .3, 4.5, .85, 12, 8, .65},
                                             {.55, .3, 2.5, .85, 12, 12, .55}};
      return snow(x, kSnow[s], seed);
    }
    case Corruption::Spatter: {
      static constexpr SpatterParams kSpatter[] = {{.65, .3, 4, .69, .6, false},
                                                   {.65, .3, 3, .68, .6, false},
                                                   {.65, .3, 2, .68, .5, false},
                                                   {.65, .3, 1, .65, 1.5, true},
                                                   {.67, .4, 1, .65, 1.5, true}};
      return spatter(x, kSpatter[s], seed);
    }
    default: {   // ElasticTransform: 244 * (alpha, sigma, affine shift) at 224 px
      // A geometric warp: scaled by the plain ratio r = min(H,W)/224 (no floor), so the affine
      // shift keeps its size relative to the triangle of side min(H,W)/3 it moves.
      static constexpr double kAlpha[] = {2, 2, .05, .07, .12}, kSigma[] = {.7, .08, .01, .01, .01},
                              kShift[] = {.1, .2, .02, .02, .02};
      const double r = std::min(x.h, x.w) / 224.0;
      return elastic(x, 244 * kAlpha[s] * r * r, 244 * kSigma[s] * r, 244 * kShift[s] * r, seed);
    }
  }
}

}  // namespace moeseg::data::corruption_detail
