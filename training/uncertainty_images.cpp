// Reliability diagrams and uncertainty maps as RGB images (layout in training/uncertainty_images.h).
#include "training/uncertainty_images.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace moeseg {

std::array<uint8_t, 3> uncertainty_ramp(double t) {
  static constexpr double stops[5][3] = {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  std::array<uint8_t, 3> c{};
  for (int k = 0; k < 3; ++k) c[k] = static_cast<uint8_t>(std::lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])));
  return c;
}

data::Image reliability_diagram(const std::vector<ReliabilityBin>& bins, int size) {
  MOESEG_CHECK(size >= 16, "reliability_diagram: size must be >= 16, got ", size);
  MOESEG_CHECK(!bins.empty(), "reliability_diagram: no bins");
  data::Image img(size, size, 3);
  std::fill(img.pixels.begin(), img.pixels.end(), uint8_t{255});
  auto put = [&](int y, int x, uint8_t r, uint8_t g, uint8_t b) {
    if (y < 0 || y >= size || x < 0 || x >= size) return;
    uint8_t* p = img.at(y, x);
    p[0] = r, p[1] = g, p[2] = b;
  };
  auto row_of = [&](double v) { return static_cast<int>(std::lround((1.0 - std::clamp(v, 0.0, 1.0)) * (size - 1))); };
  const int B = static_cast<int>(bins.size());
  for (int b = 0; b < B; ++b) {
    if (bins[b].count == 0) continue;
    const int x0 = b * size / B, x1 = (b + 1) * size / B;
    const int top = row_of(bins[b].accuracy), conf = row_of(bins[b].confidence);
    for (int x = x0; x < x1 - 1; ++x) {   // one white column between bars
      for (int y = top; y < size; ++y) put(y, x, 40, 90, 200);
      for (int y = std::min(top, conf); y < std::max(top, conf); ++y) put(y, x, 220, 60, 50);
    }
  }
  for (int x = 0; x < size; ++x) put(size - 1 - x, x, 120, 120, 120);
  for (int i = 0; i < size; ++i) {
    put(0, i, 0, 0, 0), put(size - 1, i, 0, 0, 0), put(i, 0, 0, 0, 0), put(i, size - 1, 0, 0, 0);
  }
  return img;
}

data::Image uncertainty_map_image(const Tensor& map, double vmax, int64_t index) {
  MOESEG_CHECK(map.dim() == 2 || map.dim() == 3, "uncertainty_map_image: map is ", map.str(), ", expected [H, W] or [N, H, W]");
  MOESEG_CHECK(std::isfinite(vmax) && vmax > 0, "uncertainty_map_image: vmax must be > 0, got ", vmax);
  Tensor m = map.dim() == 3 ? map.select(0, index) : map;
  m = m.detach().to(Device{}).to(DType::Float64).contiguous();
  const int H = static_cast<int>(m.size(0)), W = static_cast<int>(m.size(1));
  data::Image img(H, W, 3);
  const double* v = m.data<double>();
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const double u = v[static_cast<size_t>(y) * W + x];
      const std::array<uint8_t, 3> c = std::isnan(u) ? std::array<uint8_t, 3>{128, 128, 128} : uncertainty_ramp(u / vmax);
      std::copy(c.begin(), c.end(), img.at(y, x));
    }
  return img;
}

}  // namespace moeseg
