// Digital corruptions: brightness and saturation (in HSV, done in closed form on RGB), contrast,
// JPEG (stb's encoder at a low quality, decoded back by stb) and pixelate (box average down,
// nearest up, like PIL's BOX resize both ways). Parameters: data/corruptions.h.
// Tests: tests/data/test_corruptions.cpp.
#include <cmath>
#include <cstdlib>

#include <stb/stb_image.h>         // implementations live in data/image_io.cpp
#include <stb/stb_image_write.h>

#include "core/error.h"
#include "data/corruptions_internal.h"

namespace moeseg::data::corruption_detail {

namespace {

// In HSV with hue and saturation fixed every channel is V*(1 - S*g(hue)), so changing V scales
// RGB by V'/V; a black pixel (V = 0, S = 0) becomes gray V'.
Planes brightness(const Planes& x, double add) {
  Planes out = x;
  const size_t hw = static_cast<size_t>(x.h) * x.w;
  float* r = out.plane(0); float* g = out.plane(1); float* b = out.plane(2);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(hw); ++i) {
    const float v = std::max({r[i], g[i], b[i]});
    const float v2 = std::min(v + static_cast<float>(add), 1.f);
    if (v > 0.f) {
      const float k = v2 / v;
      r[i] *= k, g[i] *= k, b[i] *= k;
    } else {
      r[i] = g[i] = b[i] = v2;
    }
  }
  return out;
}

// S = (V - min)/V; with H and V fixed a channel c becomes V - (V - c) * S'/S. A gray pixel has
// hue 0 (skimage's rgb2hsv), so S' > 0 makes it (V, V(1-S'), V(1-S')), as in ImageNet-C.
Planes saturate(const Planes& x, double mul, double add) {
  Planes out = x;
  const size_t hw = static_cast<size_t>(x.h) * x.w;
  float* ch[3] = {out.plane(0), out.plane(1), out.plane(2)};
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(hw); ++i) {
    const float v = std::max({ch[0][i], ch[1][i], ch[2][i]}), mn = std::min({ch[0][i], ch[1][i], ch[2][i]});
    const float s = v > 0.f ? (v - mn) / v : 0.f;
    const float s2 = clamp01(static_cast<float>(s * mul + add));
    if (s > 0.f) {
      for (float* c : ch) c[i] = v - (v - c[i]) * (s2 / s);
    } else {
      ch[0][i] = v;
      ch[1][i] = ch[2][i] = v * (1.f - s2);
    }
  }
  return out;
}

// Per-channel mean in double, summed serially (the order decides the bits of the output).
Planes contrast(const Planes& x, double k) {
  Planes out = x;
  const size_t hw = static_cast<size_t>(x.h) * x.w;
  for (int p = 0; p < x.c; ++p) {
    float* d = out.plane(p);
    double sum = 0;
    for (size_t i = 0; i < hw; ++i) sum += d[i];
    const float mean = static_cast<float>(sum / static_cast<double>(hw));
    for (size_t i = 0; i < hw; ++i) d[i] = (d[i] - mean) * static_cast<float>(k) + mean;
  }
  return out;
}

void append_bytes(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

Planes jpeg(const Planes& x, int quality) {
  const size_t hw = static_cast<size_t>(x.h) * x.w;
  std::vector<uint8_t> rgb(hw * 3);
  for (size_t i = 0; i < hw; ++i)
    for (int p = 0; p < 3; ++p) rgb[i * 3 + p] = static_cast<uint8_t>(clamp01(x.plane(p)[i]) * 255.f + 0.5f);
  std::vector<uint8_t> bytes;
  MOESEG_CHECK(stbi_write_jpg_to_func(append_bytes, &bytes, x.w, x.h, 3, rgb.data(), quality) != 0 && !bytes.empty(),
               "corrupt(jpeg_compression): stb could not encode a ", x.h, "x", x.w, " image at quality ", quality);
  int w = 0, h = 0, n = 0;
  uint8_t* dec = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, 3);
  MOESEG_CHECK(dec != nullptr && w == x.w && h == x.h, "corrupt(jpeg_compression): stb could not decode its own ",
               bytes.size(), "-byte JPEG of ", x.h, "x", x.w, ": ", dec ? "size changed" : stbi_failure_reason());
  Planes out(3, x.h, x.w);
  for (size_t i = 0; i < hw; ++i)
    for (int p = 0; p < 3; ++p) out.plane(p)[i] = dec[i * 3 + p] * (1.0f / 255.0f);
  stbi_image_free(dec);
  return out;
}

// Box (area) weights from n input pixels onto m < = n output pixels: output j averages the input
// interval [j*n/m, (j+1)*n/m), each input pixel weighted by its overlap.
struct AreaTap { int src; float w; };
std::vector<std::vector<AreaTap>> area_weights(int n, int m) {
  std::vector<std::vector<AreaTap>> taps(m);
  const double scale = static_cast<double>(n) / m;
  for (int j = 0; j < m; ++j) {
    const double lo = j * scale, hi = (j + 1) * scale;
    for (int i = static_cast<int>(std::floor(lo)); i < n && i < hi; ++i) {
      const double ov = std::min<double>(i + 1, hi) - std::max<double>(i, lo);
      if (ov > 0) taps[j].push_back({i, static_cast<float>(ov / scale)});
    }
  }
  return taps;
}

Planes pixelate(const Planes& x, double f) {
  const int h2 = std::max(1, static_cast<int>(x.h * f)), w2 = std::max(1, static_cast<int>(x.w * f));
  const auto ty = area_weights(x.h, h2), tx = area_weights(x.w, w2);
  Planes out(x.c, x.h, x.w);
  std::vector<float> rows(static_cast<size_t>(x.h) * w2), small(static_cast<size_t>(h2) * w2);
  for (int p = 0; p < x.c; ++p) {
#pragma omp parallel for schedule(static)
    for (int y = 0; y < x.h; ++y)   // box down along rows ...
      for (int i = 0; i < w2; ++i) {
        float acc = 0.f;
        for (const AreaTap& b : tx[i]) acc += b.w * x.at(p, y, b.src);
        rows[static_cast<size_t>(y) * w2 + i] = acc;
      }
#pragma omp parallel for schedule(static)
    for (int j = 0; j < h2; ++j)   // ... then along columns
      for (int i = 0; i < w2; ++i) {
        float acc = 0.f;
        for (const AreaTap& a : ty[j]) acc += a.w * rows[static_cast<size_t>(a.src) * w2 + i];
        small[static_cast<size_t>(j) * w2 + i] = acc;
      }
#pragma omp parallel for schedule(static)
    for (int y = 0; y < x.h; ++y) {   // nearest back up
      const int j = std::min(h2 - 1, static_cast<int>((y + 0.5) * h2 / x.h));
      for (int xx = 0; xx < x.w; ++xx)
        out.at(p, y, xx) = small[static_cast<size_t>(j) * w2 + std::min(w2 - 1, static_cast<int>((xx + 0.5) * w2 / x.w))];
    }
  }
  return out;
}

}  // namespace

Planes digital_corruption(const Planes& x, Corruption c, int severity, uint64_t /*seed*/) {
  const int s = severity - 1;
  switch (c) {
    case Corruption::Brightness: {
      static constexpr double kAdd[] = {.1, .2, .3, .4, .5};
      return brightness(x, kAdd[s]);
    }
    case Corruption::Contrast: {
      static constexpr double kFactor[] = {.4, .3, .2, .1, .05};
      return contrast(x, kFactor[s]);
    }
    case Corruption::Saturate: {
      static constexpr double kMul[] = {.3, .1, 2, 5, 20}, kAdd[] = {0, 0, 0, .1, .2};
      return saturate(x, kMul[s], kAdd[s]);
    }
    case Corruption::JpegCompression: {
      static constexpr int kQuality[] = {25, 18, 15, 10, 7};
      return jpeg(x, kQuality[s]);
    }
    default: {   // Pixelate
      static constexpr double kFactor[] = {.6, .5, .4, .3, .25};
      return pixelate(x, kFactor[s]);
    }
  }
}

}  // namespace moeseg::data::corruption_detail
