// Augmentation: one geometric draw applied to image and label alike, resize semantics,
// padding, colour jitter against its definition (image only, factors in the configured ranges),
// determinism from (seed, epoch, index).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "data/augment.h"
#include "data_test_util.h"

using namespace moeseg;
using namespace moeseg::data;
using namespace moeseg::testing;

namespace {
// A sample whose image encodes its label: channel 0 = label / 40, so any geometric mismatch
// between image and label shows as a value mismatch. Blocks of 3x3 keep bilinear interiors exact.
Sample coded_sample(int H, int W) {
  Sample s;
  s.id = "coded";
  s.image = Tensor::zeros({3, H, W});
  s.label = Tensor::empty({H, W}, DType::Int64);
  float* im = s.image.data<float>();
  int64_t* lb = s.label.data<int64_t>();
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const int64_t c = ((y / 3) * 7 + (x / 3) * 3) % 11;
      lb[y * W + x] = c;
      im[y * W + x] = static_cast<float>(c) / 40.0f;
      im[H * W + y * W + x] = static_cast<float>(x) / W;    // channel 1: column ramp
      im[2 * H * W + y * W + x] = static_cast<float>(y) / H;   // channel 2: row ramp
    }
  return s;
}

// Pixels whose 3x3 label neighbourhood is constant must have image ch0 == label/40.
int mismatches(const Sample& s) {
  const int H = static_cast<int>(s.label.size(0)), W = static_cast<int>(s.label.size(1));
  Tensor lb = s.label.contiguous(), im = s.image.contiguous();
  const int64_t* l = lb.data<int64_t>();
  const float* p = im.data<float>();
  int bad = 0;
  for (int y = 1; y + 1 < H; ++y)
    for (int x = 1; x + 1 < W; ++x) {
      bool flat = true;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) flat &= l[(y + dy) * W + x + dx] == l[y * W + x];
      if (!flat || l[y * W + x] == 255) continue;
      bad += std::abs(p[y * W + x] - l[y * W + x] / 40.0f) > 1e-5f;
    }
  return bad;
}
}  // namespace

TEST_CASE("augment: flip and crop move image and label together (exact)") {
  Sample s = coded_sample(31, 45);
  Sample f = hflip_sample(s);
  CHECK(f.label.at({4, 0}) == s.label.at({4, 44}));
  CHECK(f.image.at({1, 4, 0}) == s.image.at({1, 4, 44}));
  Sample ff = hflip_sample(f);
  CHECK(ff.label.to_vector<int64_t>() == s.label.to_vector<int64_t>());
  Sample c = crop_sample(s, 5, 7, 10, 12, 255);
  CHECK(c.label.at({0, 0}) == s.label.at({5, 7}));
  CHECK(c.image.at({2, 9, 11}) == s.image.at({2, 14, 18}));
  Sample pad = crop_sample(s, -2, -3, 40, 50, 255);   // larger than the sample: padded
  CHECK(pad.label.at({0, 0}) == 255);
  CHECK(pad.image.at({0, 0, 0}) == 0.0);
  CHECK(pad.label.at({2, 3}) == s.label.at({0, 0}));
  CHECK(pad.label.at({39, 49}) == 255);
}

TEST_CASE("augment: resize is bilinear for images, nearest for labels (no new label values)") {
  Sample s = coded_sample(30, 45);
  Sample down = resize_sample(s, 10, 15);   // exact factor 3: nearest picks block centres
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 15; ++x) CHECK(down.label.at({y, x}) == s.label.at({3 * y + 1, 3 * x + 1}));
  CHECK(down.image.at({0, 4, 7}) == doctest::Approx(s.image.at({0, 13, 22})));   // block interior: exact
  Sample up = resize_sample(s, 47, 61);
  std::set<int64_t> before, after;
  for (int64_t v : s.label.to_vector<int64_t>()) before.insert(v);
  for (int64_t v : up.label.to_vector<int64_t>()) after.insert(v);
  for (int64_t v : after) CHECK(before.count(v));
  CHECK(mismatches(up) == 0);
  // bilinear keeps a linear ramp linear (half-pixel centres, away from the borders)
  Sample r2 = resize_sample(s, 60, 90);
  CHECK(r2.image.at({1, 10, 41}) - r2.image.at({1, 10, 40}) == doctest::Approx(0.5 / 45).epsilon(1e-3));
}

TEST_CASE("augment: random scale + crop + flip: same geometry for image and label") {
  Sample s = coded_sample(48, 64);
  AugmentConfig cfg;
  cfg.scale_min = 0.6;
  cfg.scale_max = 1.6;
  cfg.crop_height = 40;
  cfg.crop_width = 56;
  cfg.flip_p = 0.5;
  int flips = 0;
  for (uint64_t i = 0; i < 20; ++i) {
    Sample a = augment_sample(s, cfg, 7, 1, i);
    CHECK(a.image.shape() == Shape{3, 40, 56});
    CHECK(a.label.shape() == Shape{40, 56});
    CHECK(mismatches(a) == 0);
    // the flip is visible in the column ramp of channel 1 (decreasing left to right)
    flips += a.image.at({1, 20, 30}) < a.image.at({1, 20, 10});
  }
  CHECK(flips > 2);
  CHECK(flips < 18);
}

TEST_CASE("augment: deterministic from (seed, epoch, index)") {
  Sample s = coded_sample(30, 40);
  AugmentConfig cfg;
  cfg.scale_min = 0.8;
  cfg.scale_max = 1.2;
  cfg.crop_height = 24;
  cfg.crop_width = 32;
  cfg.flip_p = 0.5;
  cfg.brightness = 0.3;
  cfg.contrast = 0.3;
  cfg.saturation = 0.3;
  Sample a = augment_sample(s, cfg, 1, 2, 3), b = augment_sample(s, cfg, 1, 2, 3);
  CHECK(a.image.to_vector<float>() == b.image.to_vector<float>());
  CHECK(a.label.to_vector<int64_t>() == b.label.to_vector<int64_t>());
  int differ = 0;
  for (uint64_t e = 0; e < 8; ++e) differ += augment_sample(s, cfg, 1, e, 3).image.to_vector<float>() != a.image.to_vector<float>();
  CHECK(differ == 7);   // other epochs draw other augmentations (epoch 2 is `a` itself)
  CHECK(augment_sample(s, cfg, 2, 2, 3).image.to_vector<float>() != a.image.to_vector<float>());   // another seed
  CHECK(augment_sample(s, cfg, 1, 2, 4).image.to_vector<float>() != a.image.to_vector<float>());   // another sample
}

namespace {
// A smooth colour image in [0.05, 0.95] whose channels differ at every pixel (so saturation
// changes it), written out as HWC-independent per-channel vectors.
Sample colour_sample(int H, int W) {
  Sample s;
  s.id = "colour";
  s.image = Tensor::empty({3, H, W});
  s.label = Tensor::empty({H, W}, DType::Int64);
  float* im = s.image.data<float>();
  int64_t* lb = s.label.data<int64_t>();
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const int i = y * W + x;
      im[i] = 0.05f + 0.9f * static_cast<float>(x) / static_cast<float>(W - 1);
      im[H * W + i] = 0.05f + 0.9f * static_cast<float>(y) / static_cast<float>(H - 1);
      im[2 * H * W + i] = 0.5f + 0.4f * std::sin(0.3f * static_cast<float>(x + 2 * y));
      lb[i] = (x / 4 + y / 3) % 7;
    }
  return s;
}

double luma(double r, double g, double b) { return 0.299 * r + 0.587 * g + 0.114 * b; }

// The jitter of augment.h written out in double: brightness scales every value by bf; contrast
// moves each value away from / towards the image's mean luma (after brightness) by cf;
// saturation moves each channel away from / towards the pixel's own luma by sf; then clamp to
// [0, 1].
std::vector<double> jitter_by_definition(const Tensor& image, double bf, double cf, double sf) {
  const std::vector<float> p = image.contiguous().to_vector<float>();
  const size_t hw = p.size() / 3;
  double mean = 0;
  for (size_t i = 0; i < hw; ++i) mean += luma(bf * p[i], bf * p[hw + i], bf * p[2 * hw + i]);
  mean /= static_cast<double>(hw);
  std::vector<double> out(p.size());
  for (size_t i = 0; i < hw; ++i) {
    double v[3];
    for (size_t c = 0; c < 3; ++c) v[c] = mean + (bf * p[c * hw + i] - mean) * cf;
    const double g = luma(v[0], v[1], v[2]);
    for (size_t c = 0; c < 3; ++c) out[c * hw + i] = std::clamp(g + (v[c] - g) * sf, 0.0, 1.0);
  }
  return out;
}

// Largest |got - want| over all values.
double max_diff(const Tensor& got, const std::vector<double>& want) {
  const std::vector<float> g = got.contiguous().to_vector<float>();
  REQUIRE(g.size() == want.size());
  double m = 0;
  for (size_t i = 0; i < g.size(); ++i) m = std::max(m, std::abs(g[i] - want[i]));
  return m;
}

// The factor a one-factor jitter applied, read back from the value that moved most without
// clamping: out = ref + (in - ref) * f, with ref = 0 (brightness), the mean luma (contrast) or the
// pixel's luma (saturation).
enum class Jitter { Brightness, Contrast, Saturation };
double factor_applied(const Tensor& in_t, const Tensor& out_t, Jitter kind) {
  const std::vector<float> in = in_t.contiguous().to_vector<float>(), out = out_t.contiguous().to_vector<float>();
  const size_t hw = in.size() / 3;
  double mean = 0;
  for (size_t i = 0; i < hw; ++i) mean += luma(in[i], in[hw + i], in[2 * hw + i]);
  mean /= static_cast<double>(hw);
  double best_lever = 0, f = 0;
  for (size_t i = 0; i < hw; ++i)
    for (size_t c = 0; c < 3; ++c) {
      const size_t k = c * hw + i;
      const double ref = kind == Jitter::Brightness ? 0.0 : kind == Jitter::Contrast ? mean : luma(in[i], in[hw + i], in[2 * hw + i]);
      const double lever = std::abs(in[k] - ref);
      if (out[k] > 0.001f && out[k] < 0.999f && lever > best_lever) {
        best_lever = lever;
        f = (out[k] - ref) / (in[k] - ref);
      }
    }
  REQUIRE(best_lever > 0.1);
  return f;
}
}  // namespace

TEST_CASE("augment: colour jitter follows its definition (brightness, contrast, saturation, clamp)") {
  Sample s = colour_sample(19, 23);
  const std::vector<float> in = s.image.to_vector<float>();
  const size_t hw = in.size() / 3;
  // Identity factors change nothing.
  CHECK(max_diff(color_jitter(s.image, 1, 1, 1), std::vector<double>(in.begin(), in.end())) < 1e-6);
  // Brightness alone scales every value by the factor, clamped at 1.
  {
    Tensor j = color_jitter(s.image, 1.3, 1, 1);
    std::vector<double> want(in.size());
    for (size_t k = 0; k < in.size(); ++k) want[k] = std::min(1.0, 1.3 * in[k]);
    CHECK(max_diff(j, want) < 1e-5);
    for (size_t k = 0; k < in.size(); ++k) want[k] = 0.6 * in[k];
    CHECK(max_diff(color_jitter(s.image, 0.6, 1, 1), want) < 1e-5);
  }
  // Contrast alone keeps the mean luma and scales each value's distance from it.
  {
    double mean = 0;
    for (size_t i = 0; i < hw; ++i) mean += luma(in[i], in[hw + i], in[2 * hw + i]);
    mean /= static_cast<double>(hw);
    std::vector<double> want(in.size());
    for (size_t k = 0; k < in.size(); ++k) want[k] = mean + 0.5 * (in[k] - mean);
    CHECK(max_diff(color_jitter(s.image, 1, 0.5, 1), want) < 1e-5);
    CHECK(max_diff(color_jitter(s.image, 1, 0, 1), std::vector<double>(in.size(), mean)) < 1e-6);   // contrast 0: mean gray
  }
  // Saturation 0 turns every pixel into its own luma; 2 doubles each channel's distance from it.
  {
    std::vector<double> gray(in.size()), vivid(in.size());
    for (size_t i = 0; i < hw; ++i) {
      const double g = luma(in[i], in[hw + i], in[2 * hw + i]);
      for (size_t c = 0; c < 3; ++c) {
        gray[c * hw + i] = g;
        vivid[c * hw + i] = std::clamp(g + 2.0 * (in[c * hw + i] - g), 0.0, 1.0);
      }
    }
    CHECK(max_diff(color_jitter(s.image, 1, 1, 0), gray) < 1e-5);
    CHECK(max_diff(color_jitter(s.image, 1, 1, 2), vivid) < 1e-5);
  }
  // All three at once, in the documented order, with clamping at both ends.
  for (const auto& f : {std::array<double, 3>{1.25, 1.4, 0.7}, std::array<double, 3>{0.7, 1.3, 1.6}, std::array<double, 3>{1.1, 0.6, 1.3}}) {
    CAPTURE(f[0]);
    CAPTURE(f[1]);
    CAPTURE(f[2]);
    CHECK(max_diff(color_jitter(s.image, f[0], f[1], f[2]), jitter_by_definition(s.image, f[0], f[1], f[2])) < 1e-5);
  }
  // The input is not modified.
  CHECK(s.image.to_vector<float>() == in);
}

TEST_CASE("augment: jitter factors are drawn from [1-x, 1+x] per sample, labels untouched") {
  Sample s = colour_sample(19, 23);
  const std::vector<int64_t> labels = s.label.to_vector<int64_t>();
  AugmentConfig none;
  none.brightness = none.contrast = none.saturation = 0;
  CHECK(augment_sample(s, none, 5, 0, 0).image.to_vector<float>() == s.image.to_vector<float>());   // zero ranges: identity
  const double x[3] = {0.3, 0.4, 0.5};
  const Jitter kinds[3] = {Jitter::Brightness, Jitter::Contrast, Jitter::Saturation};
  double lo[3] = {9, 9, 9}, hi[3] = {0, 0, 0};
  std::set<long> distinct;
  for (uint64_t idx = 0; idx < 40; ++idx) {
    CAPTURE(idx);
    double f[3];
    for (int k = 0; k < 3; ++k) {
      AugmentConfig one;
      (k == 0 ? one.brightness : k == 1 ? one.contrast : one.saturation) = x[k];
      const Sample a = augment_sample(s, one, 5, 1, idx);
      CHECK(a.label.to_vector<int64_t>() == labels);
      f[k] = factor_applied(s.image, a.image, kinds[k]);
      CHECK(f[k] >= 1 - x[k] - 1e-6);
      CHECK(f[k] <= 1 + x[k] + 1e-6);
      lo[k] = std::min(lo[k], f[k]);
      hi[k] = std::max(hi[k], f[k]);
      // the whole image is that one jitter with that factor
      const double bf = k == 0 ? f[k] : 1, cf = k == 1 ? f[k] : 1, sf = k == 2 ? f[k] : 1;
      CHECK(max_diff(a.image, jitter_by_definition(s.image, bf, cf, sf)) < 1e-5);
      distinct.insert(std::lround(f[k] * 1e6));
    }
    // With all three on, each factor is the one drawn when it was on alone (draws do not depend
    // on which steps are enabled), applied in the documented order.
    AugmentConfig all;
    all.brightness = x[0];
    all.contrast = x[1];
    all.saturation = x[2];
    const Sample a = augment_sample(s, all, 5, 1, idx);
    CHECK(a.label.to_vector<int64_t>() == labels);
    CHECK(max_diff(a.image, jitter_by_definition(s.image, f[0], f[1], f[2])) < 1e-5);
  }
  // The draws cover the range: over 40 samples each factor went below 1 - x/2 and above 1 + x/2.
  for (int k = 0; k < 3; ++k) {
    CAPTURE(k);
    CHECK(lo[k] < 1 - x[k] / 2);
    CHECK(hi[k] > 1 + x[k] / 2);
  }
  CHECK(distinct.size() >= 110);   // 120 factors, practically all different
}

TEST_CASE("augment: the reference preset resizes and flips only when training") {
  AugmentConfig tr = reference_preset(480, 640, true), ev = reference_preset(480, 640, false);
  CHECK(tr.height == 480);
  CHECK(tr.width == 640);
  CHECK(tr.flip_p == 0.5);
  CHECK(ev.flip_p == 0.0);
  CHECK(tr.crop_height == 0);
  CHECK(tr.scale_min == 1.0);
  CHECK(tr.brightness == 0.0);
  Sample s = coded_sample(30, 40);
  Sample out = augment_sample(s, reference_preset(24, 36, false), 0, 0, 0);
  CHECK(out.image.shape() == Shape{3, 24, 36});
  CHECK(out.label.to_vector<int64_t>() == resize_sample(s, 24, 36).label.to_vector<int64_t>());
}
