// The corruption interface (names, checks, tensor/Image conversion, dispatch to the families in
// corruptions_{noise,blur,digital,weather}.cpp) and the filters they share. Parameters: see
// data/corruptions.h. Tests: tests/data/test_corruptions.cpp.
#include "data/corruptions.h"

#include <cmath>

#include "core/error.h"
#include "core/named_enum.h"
#include "data/corruptions_internal.h"

namespace moeseg::data {

namespace {

constexpr NamedValue<Corruption> kCorruptionNames[] = {
    {Corruption::GaussianNoise, "gaussian_noise"},
    {Corruption::ShotNoise, "shot_noise"},
    {Corruption::ImpulseNoise, "impulse_noise"},
    {Corruption::DefocusBlur, "defocus_blur"},
    {Corruption::GaussianBlur, "gaussian_blur"},
    {Corruption::MotionBlur, "motion_blur"},
    {Corruption::ZoomBlur, "zoom_blur"},
    {Corruption::Brightness, "brightness"},
    {Corruption::Contrast, "contrast"},
    {Corruption::Saturate, "saturate"},
    {Corruption::JpegCompression, "jpeg_compression"},
    {Corruption::Pixelate, "pixelate"},
    {Corruption::Fog, "fog"},
    {Corruption::Snow, "snow"},
    {Corruption::Spatter, "spatter"},
    {Corruption::ElasticTransform, "elastic_transform"},
};

}  // namespace

Corruption parse_corruption(const std::string& name, const std::string& where) {
  return parse_named(kCorruptionNames, name, where);
}

std::string to_string(Corruption c) { return name_of(kCorruptionNames, c); }

const std::vector<Corruption>& all_corruptions() {
  static const std::vector<Corruption> all = [] {
    std::vector<Corruption> v;
    for (const auto& e : kCorruptionNames) v.push_back(e.value);
    return v;
  }();
  return all;
}

bool corruption_is_random(Corruption c) {
  switch (c) {
    case Corruption::GaussianNoise: case Corruption::ShotNoise: case Corruption::ImpulseNoise:
    case Corruption::MotionBlur: case Corruption::Fog: case Corruption::Snow: case Corruption::Spatter:
    case Corruption::ElasticTransform:
      return true;
    default:
      return false;
  }
}

Tensor corrupt(const Tensor& image, Corruption c, int severity, uint64_t seed) {
  using namespace corruption_detail;
  const std::string name = to_string(c);   // also rejects a cast value outside the enum
  MOESEG_CHECK(severity >= kMinCorruptionSeverity && severity <= kMaxCorruptionSeverity, "corrupt(", name,
               "): severity ", severity, " is outside ", kMinCorruptionSeverity, "..", kMaxCorruptionSeverity);
  MOESEG_CHECK(image.defined() && image.dim() == 3 && image.size(0) == 3 && image.size(1) > 0 && image.size(2) > 0 &&
                   image.dtype() == DType::Float32 && image.device().is_cpu(),
               "corrupt(", name, "): float32 [3,H,W] image on the cpu expected, got ",
               image.defined() ? image.str() : std::string("an undefined tensor"));
  Planes x(3, static_cast<int>(image.size(1)), static_cast<int>(image.size(2)));
  x.v = image.to_vector<float>();
  for (float& f : x.v) f = clamp01(f);   // corruptions assume [0,1] (a NaN becomes 0 here, not garbage later)
  Planes y;
  switch (c) {
    case Corruption::GaussianNoise: case Corruption::ShotNoise: case Corruption::ImpulseNoise:
      y = noise_corruption(x, c, severity, seed); break;
    case Corruption::DefocusBlur: case Corruption::GaussianBlur: case Corruption::MotionBlur:
    case Corruption::ZoomBlur:
      y = blur_corruption(x, c, severity, seed); break;
    case Corruption::Brightness: case Corruption::Contrast: case Corruption::Saturate:
    case Corruption::JpegCompression: case Corruption::Pixelate:
      y = digital_corruption(x, c, severity, seed); break;
    case Corruption::Fog: case Corruption::Snow: case Corruption::Spatter: case Corruption::ElasticTransform:
      y = weather_corruption(x, c, severity, seed); break;
  }
  for (float& f : y.v) f = clamp01(f);
  return Tensor::from_vector(y.v, {3, y.h, y.w});
}

Image corrupt(const Image& image, Corruption c, int severity, uint64_t seed) {
  MOESEG_CHECK(image.channels == 3, "corrupt(", to_string(c), "): RGB image expected, got ", image.channels,
               " channels");
  return tensor_to_image(corrupt(image_to_tensor(image), c, severity, seed));
}

// ---- shared filters ---------------------------------------------------------------------------

namespace corruption_detail {

std::vector<float> gaussian_taps(double sigma, double truncate) {
  const int r = sigma > 0 ? static_cast<int>(truncate * sigma + 0.5) : 0;
  std::vector<double> t(2 * r + 1);
  double sum = 0;
  for (int k = -r; k <= r; ++k) sum += t[k + r] = std::exp(-0.5 * k * k / (sigma * sigma));
  std::vector<float> taps(t.size());
  for (size_t i = 0; i < t.size(); ++i) taps[i] = static_cast<float>(t[i] / sum);
  return taps;
}

namespace {

// A 1-D filter along an axis of n pixels with its border folded in: output i is the sum over
// (src, w) of its taps, every source pixel once (a kernel wider than the axis, as the elastic
// transform's sigma-183 smoothing, costs n taps, not 2r+1).
struct AxisFilter {
  std::vector<int> start;   // taps of output i: [start[i], start[i+1])
  std::vector<int> src;
  std::vector<float> w;
};

AxisFilter fold_taps(const std::vector<float>& taps, int n, bool reflect_border) {
  const int r = static_cast<int>(taps.size() / 2);
  AxisFilter f;
  f.start.push_back(0);
  std::vector<double> acc(n, 0.0);
  for (int i = 0; i < n; ++i) {
    int lo = n, hi = -1;
    for (int k = -r; k <= r; ++k) {
      const int j = reflect_border ? reflect_index(i + k, n) : clamp_index(i + k, n);
      acc[j] += taps[k + r];
      lo = std::min(lo, j), hi = std::max(hi, j);
    }
    for (int j = lo; j <= hi; ++j)
      if (acc[j] != 0.0) f.src.push_back(j), f.w.push_back(static_cast<float>(acc[j])), acc[j] = 0.0;
    f.start.push_back(static_cast<int>(f.src.size()));
  }
  return f;
}

}  // namespace

void gaussian_blur_planes(Planes& img, double sigma, double truncate, bool reflect_border) {
  const std::vector<float> taps = gaussian_taps(sigma, truncate);
  if (taps.size() == 1) return;
  const int h = img.h, w = img.w;
  const AxisFilter fx = fold_taps(taps, w, reflect_border), fy = fold_taps(taps, h, reflect_border);
  Planes tmp(img.c, h, w);
  for (int p = 0; p < img.c; ++p) {
    const float* src = img.plane(p);
    float* mid = tmp.plane(p);
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; ++y)   // horizontal pass: a gather per output pixel
      for (int x = 0; x < w; ++x) {
        float acc = 0.f;
        for (int t = fx.start[x]; t < fx.start[x + 1]; ++t) acc += fx.w[t] * src[y * w + fx.src[t]];
        mid[y * w + x] = acc;
      }
    float* dst = img.plane(p);
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; ++y) {   // vertical pass: whole source rows, in tap order
      float* out = dst + static_cast<size_t>(y) * w;
      std::fill(out, out + w, 0.f);
      for (int t = fy.start[y]; t < fy.start[y + 1]; ++t) {
        const float* row = mid + static_cast<size_t>(fy.src[t]) * w;
        const float wt = fy.w[t];
        for (int x = 0; x < w; ++x) out[x] += wt * row[x];
      }
    }
  }
}

float bilinear_clamped(const Planes& img, int p, float y, float x) {
  y = std::clamp(y, 0.f, static_cast<float>(img.h - 1));
  x = std::clamp(x, 0.f, static_cast<float>(img.w - 1));
  const int y0 = static_cast<int>(y), x0 = static_cast<int>(x);
  const int y1 = std::min(y0 + 1, img.h - 1), x1 = std::min(x0 + 1, img.w - 1);
  const float fy = y - y0, fx = x - x0;
  const float top = img.at(p, y0, x0) + fx * (img.at(p, y0, x1) - img.at(p, y0, x0));
  const float bot = img.at(p, y1, x0) + fx * (img.at(p, y1, x1) - img.at(p, y1, x0));
  return top + fy * (bot - top);
}

float bilinear_reflect(const Planes& img, int p, float y, float x) {
  const float fy0 = std::floor(y), fx0 = std::floor(x);
  const int y0 = static_cast<int>(fy0), x0 = static_cast<int>(fx0);
  const float fy = y - fy0, fx = x - fx0;
  const int ya = reflect_index(y0, img.h), yb = reflect_index(y0 + 1, img.h);
  const int xa = reflect_index(x0, img.w), xb = reflect_index(x0 + 1, img.w);
  const float top = img.at(p, ya, xa) + fx * (img.at(p, ya, xb) - img.at(p, ya, xa));
  const float bot = img.at(p, yb, xa) + fx * (img.at(p, yb, xb) - img.at(p, yb, xa));
  return top + fy * (bot - top);
}

Planes motion_blur_planes(const Planes& img, double radius, double sigma, double angle_deg) {
  const int width = 2 * static_cast<int>(std::ceil(radius)) + 1;
  const double a = angle_deg * M_PI / 180.0;
  std::vector<float> wgt(width);
  std::vector<int> dx(width), dy(width);
  double sum = 0;
  std::vector<double> wd(width);
  for (int i = 0; i < width; ++i) {
    wd[i] = sigma > 0 ? std::exp(-0.5 * i * i / (sigma * sigma)) : (i == 0 ? 1.0 : 0.0);
    sum += wd[i];
    dx[i] = static_cast<int>(std::ceil(i * std::cos(a) - 0.5));
    dy[i] = static_cast<int>(std::ceil(i * std::sin(a) - 0.5));
  }
  for (int i = 0; i < width; ++i) wgt[i] = static_cast<float>(wd[i] / sum);
  Planes out(img.c, img.h, img.w);
  for (int p = 0; p < img.c; ++p) {
#pragma omp parallel for schedule(static)
    for (int y = 0; y < img.h; ++y)
      for (int x = 0; x < img.w; ++x) {
        float acc = 0.f;
        for (int i = 0; i < width; ++i)
          acc += wgt[i] * img.at(p, clamp_index(y + dy[i], img.h), clamp_index(x + dx[i], img.w));
        out.at(p, y, x) = acc;
      }
  }
  return out;
}

std::vector<Lerp> zoom_taps(int n, double z) {
  std::vector<Lerp> t(n);
  const double c = 0.5 * (n - 1);
  for (int i = 0; i < n; ++i) {
    const double src = std::clamp(c + (i - c) / z, 0.0, static_cast<double>(n - 1));
    const int i0 = static_cast<int>(src);
    t[i] = {i0, std::min(i0 + 1, n - 1), static_cast<float>(src - i0)};
  }
  return t;
}

Planes centre_zoom(const Planes& img, double z) {
  // Output pixel (y, x) comes from (cy + (y - cy)/z, cx + (x - cx)/z): the centre crop of
  // ceil(n/z) pixels stretched back to n, as ImageNet-C's clipped_zoom (up to its half-pixel
  // trimming). The map is separable, so the bilinear taps are tabulated per row and column.
  const std::vector<Lerp> ty = zoom_taps(img.h, z), tx = zoom_taps(img.w, z);
  Planes out(img.c, img.h, img.w);
  for (int p = 0; p < img.c; ++p) {
#pragma omp parallel for schedule(static)
    for (int y = 0; y < img.h; ++y) {
      const float* r0 = img.plane(p) + static_cast<size_t>(ty[y].i0) * img.w;
      const float* r1 = img.plane(p) + static_cast<size_t>(ty[y].i1) * img.w;
      const float fy = ty[y].f;
      float* o = out.plane(p) + static_cast<size_t>(y) * img.w;
      for (int x = 0; x < img.w; ++x) {
        const Lerp& t = tx[x];
        const float top = r0[t.i0] + t.f * (r0[t.i1] - r0[t.i0]);
        const float bot = r1[t.i0] + t.f * (r1[t.i1] - r1[t.i0]);
        o[x] = top + fy * (bot - top);
      }
    }
  }
  return out;
}

}  // namespace corruption_detail

}  // namespace moeseg::data
