// Augmentation: one geometric draw applied to image and label alike, resize semantics,
// padding, colour jitter on the image only, determinism from (seed, epoch, index).
#include <doctest/doctest.h>

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

TEST_CASE("augment: deterministic from (seed, epoch, index), colour jitter leaves labels alone") {
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
  CHECK(differ >= 6);   // other epochs draw other augmentations
  Tensor j = color_jitter(s.image, 1.2, 0.8, 0.5);
  CHECK(j.to_vector<float>() != s.image.to_vector<float>());
  for (float v : j.to_vector<float>()) CHECK((v >= 0.f && v <= 1.f));
  AugmentConfig only_colour;
  only_colour.brightness = 0.5;
  Sample c = augment_sample(s, only_colour, 1, 0, 0);
  CHECK(c.label.to_vector<int64_t>() == s.label.to_vector<int64_t>());
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
