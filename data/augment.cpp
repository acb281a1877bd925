// Resize / scale / crop / flip / colour jitter on Samples (see augment.h).
// Resizing uses pixel centres (align_corners = false), like torch's interpolate and PIL without
// antialiasing; nearest picks floor((dst + 0.5) * in / out).
#include "data/augment.h"

#include <algorithm>
#include <cmath>

#include "data/random_stream.h"

namespace moeseg::data {

namespace {

constexpr uint32_t kAugmentTag = 0xA0617E01u;   // separates augmentation streams from others

void check_pair(const Sample& s, const char* op) {
  MOESEG_CHECK(s.image.defined() && s.image.dim() == 3 && s.image.dtype() == DType::Float32, op, ": sample '", s.id,
               "' image must be float32 [C,H,W]");
  MOESEG_CHECK(s.label.defined() && s.label.dim() == 2 && s.label.dtype() == DType::Int64, op, ": sample '", s.id,
               "' label must be int64 [H,W]");
  MOESEG_CHECK(s.image.size(1) == s.label.size(0) && s.image.size(2) == s.label.size(1), op, ": sample '", s.id,
               "' image ", s.image.str(), " and label ", s.label.str(), " differ in size");
}

}  // namespace

AugmentConfig reference_preset(int height, int width, bool train) {
  AugmentConfig c;
  c.height = height;
  c.width = width;
  c.flip_p = train ? 0.5 : 0.0;
  return c;
}

Sample resize_sample(const Sample& s, int height, int width) {
  check_pair(s, "resize_sample");
  MOESEG_CHECK(height > 0 && width > 0, "resize_sample: target size ", height, "x", width, " must be positive");
  const int C = static_cast<int>(s.image.size(0)), H = static_cast<int>(s.image.size(1)), W = static_cast<int>(s.image.size(2));
  Sample out = s;
  if (H == height && W == width) return out;
  Tensor img = s.image.contiguous(), lab = s.label.contiguous();
  out.image = Tensor::empty({C, height, width}, DType::Float32);
  out.label = Tensor::empty({height, width}, DType::Int64);
  const float* in = img.data<float>();
  float* o = out.image.data<float>();
  const double sy = static_cast<double>(H) / height, sx = static_cast<double>(W) / width;
  // bilinear taps per output column / row, computed once
  std::vector<int> x0(width), x1(width);
  std::vector<float> fx(width);
  for (int x = 0; x < width; ++x) {
    double src = std::max(0.0, (x + 0.5) * sx - 0.5);
    x0[x] = std::min(static_cast<int>(src), W - 1);
    x1[x] = std::min(x0[x] + 1, W - 1);
    fx[x] = static_cast<float>(src - x0[x]);
  }
  for (int y = 0; y < height; ++y) {
    double src = std::max(0.0, (y + 0.5) * sy - 0.5);
    const int y0 = std::min(static_cast<int>(src), H - 1), y1 = std::min(y0 + 1, H - 1);
    const float fy = static_cast<float>(src - y0);
    for (int c = 0; c < C; ++c) {
      const float* r0 = in + (static_cast<size_t>(c) * H + y0) * W;
      const float* r1 = in + (static_cast<size_t>(c) * H + y1) * W;
      float* dst = o + (static_cast<size_t>(c) * height + y) * width;
      for (int x = 0; x < width; ++x) {
        const float top = r0[x0[x]] + (r0[x1[x]] - r0[x0[x]]) * fx[x];
        const float bot = r1[x0[x]] + (r1[x1[x]] - r1[x0[x]]) * fx[x];
        dst[x] = top + (bot - top) * fy;
      }
    }
  }
  const int64_t* li = lab.data<int64_t>();
  int64_t* lo = out.label.data<int64_t>();
  for (int y = 0; y < height; ++y) {
    const int ys = std::min(static_cast<int>((y + 0.5) * sy), H - 1);
    for (int x = 0; x < width; ++x) lo[static_cast<size_t>(y) * width + x] = li[static_cast<size_t>(ys) * W + std::min(static_cast<int>((x + 0.5) * sx), W - 1)];
  }
  return out;
}

Sample hflip_sample(const Sample& s) {
  check_pair(s, "hflip_sample");
  const int64_t C = s.image.size(0), H = s.image.size(1), W = s.image.size(2);
  Tensor img = s.image.contiguous(), lab = s.label.contiguous();
  Sample out = s;
  out.image = Tensor::empty({C, H, W}, DType::Float32);
  out.label = Tensor::empty({H, W}, DType::Int64);
  const float* a = img.data<float>();
  float* b = out.image.data<float>();
  for (int64_t r = 0; r < C * H; ++r)
    for (int64_t x = 0; x < W; ++x) b[r * W + x] = a[r * W + (W - 1 - x)];
  const int64_t* la = lab.data<int64_t>();
  int64_t* lb = out.label.data<int64_t>();
  for (int64_t r = 0; r < H; ++r)
    for (int64_t x = 0; x < W; ++x) lb[r * W + x] = la[r * W + (W - 1 - x)];
  return out;
}

Sample crop_sample(const Sample& s, int top, int left, int height, int width, int ignore_index) {
  check_pair(s, "crop_sample");
  MOESEG_CHECK(height > 0 && width > 0, "crop_sample: crop size ", height, "x", width, " must be positive");
  const int64_t C = s.image.size(0), H = s.image.size(1), W = s.image.size(2);
  Tensor img = s.image.contiguous(), lab = s.label.contiguous();
  Sample out = s;
  out.image = Tensor::zeros({C, height, width}, DType::Float32);
  out.label = Tensor::full({height, width}, ignore_index, DType::Int64);
  const float* a = img.data<float>();
  float* b = out.image.data<float>();
  const int64_t* la = lab.data<int64_t>();
  int64_t* lb = out.label.data<int64_t>();
  for (int y = 0; y < height; ++y) {
    const int64_t sy = top + y;
    if (sy < 0 || sy >= H) continue;
    for (int x = 0; x < width; ++x) {
      const int64_t sx = left + x;
      if (sx < 0 || sx >= W) continue;
      for (int64_t c = 0; c < C; ++c) b[(c * height + y) * width + x] = a[(c * H + sy) * W + sx];
      lb[static_cast<int64_t>(y) * width + x] = la[sy * W + sx];
    }
  }
  return out;
}

Tensor color_jitter(const Tensor& image, double bf, double cf, double sf) {
  MOESEG_CHECK(image.dim() == 3 && image.size(0) == 3 && image.dtype() == DType::Float32, "color_jitter: float32 [3,H,W] expected, got ",
               image.str());
  Tensor out = image.contiguous().clone().detach();
  if (!out.is_contiguous()) out = out.contiguous();
  float* p = out.data<float>();
  const int64_t hw = out.size(1) * out.size(2);
  // brightness, then contrast around the mean gray, then saturation towards per-pixel gray
  double mean = 0;
  for (int64_t i = 0; i < hw; ++i) mean += (0.299 * p[i] + 0.587 * p[hw + i] + 0.114 * p[2 * hw + i]) * bf;
  mean /= static_cast<double>(hw);
  for (int64_t i = 0; i < hw; ++i) {
    float v[3];
    for (int c = 0; c < 3; ++c) v[c] = static_cast<float>(((p[c * hw + i] * bf) - mean) * cf + mean);
    const float g = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
    for (int c = 0; c < 3; ++c) p[c * hw + i] = std::clamp(static_cast<float>(g + (v[c] - g) * sf), 0.0f, 1.0f);
  }
  return out;
}

Sample augment_sample(const Sample& s, const AugmentConfig& cfg, uint64_t seed, uint64_t epoch, uint64_t index) {
  RandomStream rng(seed, static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32) ^ static_cast<uint32_t>(epoch),
                   kAugmentTag ^ static_cast<uint32_t>(epoch >> 32) ^ (static_cast<uint32_t>(epoch) * 0x9E3779B9u));
  // Every draw is made whether or not its step is enabled, so switching one step off does not
  // change the others' values.
  const double u_scale = rng.uniform(), u_top = rng.uniform(), u_left = rng.uniform(), u_flip = rng.uniform();
  const double u_b = rng.uniform(), u_c = rng.uniform(), u_s = rng.uniform();
  Sample out = s;
  if (cfg.height > 0 && cfg.width > 0) out = resize_sample(out, cfg.height, cfg.width);
  if (cfg.scale_min != 1 || cfg.scale_max != 1) {
    MOESEG_CHECK(cfg.scale_min > 0 && cfg.scale_max >= cfg.scale_min, "augment: scale range [", cfg.scale_min, ", ",
                 cfg.scale_max, "] is invalid");
    const double f = cfg.scale_min + (cfg.scale_max - cfg.scale_min) * u_scale;
    const int h = std::max(1, static_cast<int>(std::lround(out.image.size(1) * f)));
    const int w = std::max(1, static_cast<int>(std::lround(out.image.size(2) * f)));
    out = resize_sample(out, h, w);
  }
  if (cfg.crop_height > 0 && cfg.crop_width > 0) {
    const int H = static_cast<int>(out.image.size(1)), W = static_cast<int>(out.image.size(2));
    // a crop larger than the sample centres it in padding; a smaller one picks a random window
    const int top = H >= cfg.crop_height ? static_cast<int>(u_top * (H - cfg.crop_height + 1)) : -(cfg.crop_height - H) / 2;
    const int left = W >= cfg.crop_width ? static_cast<int>(u_left * (W - cfg.crop_width + 1)) : -(cfg.crop_width - W) / 2;
    out = crop_sample(out, top, left, cfg.crop_height, cfg.crop_width, cfg.ignore_index);
  }
  if (u_flip < cfg.flip_p) out = hflip_sample(out);
  if (cfg.brightness > 0 || cfg.contrast > 0 || cfg.saturation > 0)
    out.image = color_jitter(out.image, 1 + cfg.brightness * (2 * u_b - 1), 1 + cfg.contrast * (2 * u_c - 1),
                             1 + cfg.saturation * (2 * u_s - 1));
  return out;
}

}  // namespace moeseg::data
