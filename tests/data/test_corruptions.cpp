// ImageNet-C-style corruptions (data/corruptions.h) on known images: blurs and pixelate keep a
// constant image constant, JPEG error / noise std / contrast loss grow with severity, brightness
// and saturation match their HSV definitions on hand-computed pixels, shape and [0,1] range for
// every corruption and severity, determinism by seed (and across thread counts), bad input.
// Run: test_data -tc="*corrupt*"
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "data/corruptions.h"
#include "data_test_util.h"

using namespace moeseg;
using namespace moeseg::data;
using namespace moeseg::testing;

namespace {

// Smooth ramps plus fine deterministic texture (a hash), all channels inside [0.1, 0.9] so noise is
// rarely clipped and JPEG has detail to lose.
Tensor textured(int H, int W) {
  Tensor t = Tensor::empty({3, H, W});
  float* d = t.data<float>();
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const uint32_t h = (static_cast<uint32_t>(x) * 73856093u) ^ (static_cast<uint32_t>(y) * 19349663u) ^
                           (static_cast<uint32_t>(c) * 83492791u);
        const float tex = static_cast<float>((h * 2654435761u) >> 24) / 255.f;   // 0..1
        const float smooth = 0.5f + 0.2f * std::sin(0.3f * x + c) * std::cos(0.2f * y);
        d[(c * H + y) * W + x] = std::clamp(0.6f * smooth + 0.3f * tex + 0.05f, 0.1f, 0.9f);
      }
  return t;
}

Tensor constant(int H, int W, float r = 0.3f, float g = 0.5f, float b = 0.7f) {
  Tensor t = Tensor::empty({3, H, W});
  float* d = t.data<float>();
  const float v[3] = {r, g, b};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < H * W; ++i) d[c * H * W + i] = v[c];
  return t;
}

std::vector<float> values(const Tensor& t) { return t.to_vector<float>(); }

double mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s / v.size();
}
double std_of(const std::vector<float>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (float x : v) s += (x - m) * (x - m);
  return std::sqrt(s / v.size());
}
double mse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / a.size();
}
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}
// Sum of squared horizontal + vertical neighbour differences: falls when an image gets blurrier.
double roughness(const std::vector<float>& v, int H, int W) {
  double s = 0;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y + 1 < H; ++y)
      for (int x = 0; x + 1 < W; ++x) {
        const float a = v[(c * H + y) * W + x];
        s += std::pow(v[(c * H + y) * W + x + 1] - a, 2) + std::pow(v[(c * H + y + 1) * W + x] - a, 2);
      }
  return s;
}

const Corruption kBlurs[] = {Corruption::DefocusBlur, Corruption::GaussianBlur, Corruption::MotionBlur,
                             Corruption::ZoomBlur, Corruption::Pixelate};

}  // namespace

TEST_CASE("corruptions: names round-trip, sixteen of them, unknown names rejected") {
  CHECK(all_corruptions().size() == 16);
  std::set<std::string> names;
  for (Corruption c : all_corruptions()) {
    CHECK(parse_corruption(to_string(c), "test") == c);
    names.insert(to_string(c));
  }
  CHECK(names.size() == 16);
  CHECK(to_string(Corruption::ElasticTransform) == "elastic_transform");
  CHECK(parse_corruption("jpeg_compression", "test") == Corruption::JpegCompression);
  const std::string msg = error_of([] { parse_corruption("fogg", "option --corruption"); });
  CHECK(contains(msg, "'fogg'"));
  CHECK(contains(msg, "option --corruption"));
  CHECK(contains(msg, "gaussian_noise"));
  CHECK(corruption_is_random(Corruption::Snow));
  CHECK_FALSE(corruption_is_random(Corruption::JpegCompression));
}

TEST_CASE("corruptions: severity outside 1..5 and bad tensors rejected naming the value") {
  const Tensor img = textured(8, 8);
  for (int bad : {0, 6, -1}) {
    const std::string msg = error_of([&] { corrupt(img, Corruption::Fog, bad, 1); });
    CHECK_MESSAGE(contains(msg, "severity " + std::to_string(bad)), msg);
    CHECK(contains(msg, "fog"));
  }
  CHECK(error_of([&] { corrupt(img, Corruption::Fog, 5, 1); }).empty());
  CHECK(contains(error_of([] { corrupt(Tensor::zeros({1, 8, 8}), Corruption::Contrast, 1, 0); }), "[1, 8, 8]"));
  CHECK(contains(error_of([] { corrupt(Tensor::zeros({3, 8, 8}, DType::Float64), Corruption::Contrast, 1, 0); }),
                 "float64"));
  CHECK(contains(error_of([] { corrupt(Image(4, 4, 1), Corruption::Contrast, 1, 0); }), "1 channels"));
}

TEST_CASE("corruptions: shape kept and values in [0,1] for every corruption and severity") {
  for (auto [H, W] : {std::pair{33, 47}, std::pair{64, 96}, std::pair{1, 5}, std::pair{2, 2}}) {
    const Tensor img = textured(H, W);
    for (Corruption c : all_corruptions())
      for (int s = 1; s <= 5; ++s) {
        const Tensor out = corrupt(img, c, s, 7);
        REQUIRE(out.sizes() == img.sizes());
        CHECK(out.dtype() == DType::Float32);
        const std::vector<float> v = values(out);
        const bool in_range = std::all_of(v.begin(), v.end(), [](float x) { return x >= 0.f && x <= 1.f; });
        CHECK_MESSAGE(in_range, to_string(c), " severity ", s, " at ", H, "x", W);
      }
  }
}

TEST_CASE("corruptions: values outside [0,1] and NaN are clamped before corrupting") {
  Tensor img = constant(4, 6, 0.5f, 0.5f, 0.5f);
  img.data<float>()[0] = std::nanf("");
  img.data<float>()[1] = 7.f;
  img.data<float>()[2] = -3.f;
  const std::vector<float> out = values(corrupt(img, Corruption::Contrast, 5, 0));
  const double mean0 = (0 + 1 + 0 + 21 * 0.5) / 24;   // channel 0 after clamping: NaN -> 0, 7 -> 1, -3 -> 0
  CHECK(out[0] == doctest::Approx(mean0 * (1 - 0.05)).epsilon(1e-5));
  CHECK(out[1] == doctest::Approx((1 - mean0) * 0.05 + mean0).epsilon(1e-5));
  CHECK(out[1] > 0.5f);
  CHECK(out[2] < 0.5f);
  CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x >= 0.f && x <= 1.f; }));
}

TEST_CASE("corruptions: a constant image stays constant under every blur, pixelate and elastic") {
  for (auto [H, W] : {std::pair{64, 96}, std::pair{120, 160}}) {
    const Tensor img = constant(H, W);
    const std::vector<float> ref = values(img);
    for (Corruption c : kBlurs)
      for (int s = 1; s <= 5; ++s)
        CHECK_MESSAGE(max_abs_diff(values(corrupt(img, c, s, 3)), ref) < 2e-6, to_string(c), " severity ", s);
    for (int s = 1; s <= 5; ++s)
      CHECK(max_abs_diff(values(corrupt(img, Corruption::ElasticTransform, s, 3)), ref) < 2e-6);
  }
  // The 8-bit path rounds back to exactly the same bytes.
  const Image im = tensor_to_image(constant(64, 96, 0.2f, 0.6f, 0.9f));
  for (Corruption c : kBlurs) CHECK(corrupt(im, c, 5, 1).pixels == im.pixels);
}

TEST_CASE("corruptions: blurs smooth a textured image more at each severity") {
  const int H = 64, W = 96;
  const Tensor img = textured(H, W);
  for (Corruption c : {Corruption::DefocusBlur, Corruption::GaussianBlur, Corruption::ZoomBlur}) {
    double prev = roughness(values(img), H, W);
    for (int s = 1; s <= 5; ++s) {
      const double r = roughness(values(corrupt(img, c, s, 0)), H, W);
      CHECK_MESSAGE(r < prev, to_string(c), " severity ", s, ": ", r, " vs ", prev);
      prev = r;
    }
  }
  // Pixelate: block edges keep it rough, but it departs further from the original each severity.
  double prev_err = 0;
  for (int s = 1; s <= 5; ++s) {
    const double e = mse(values(corrupt(img, Corruption::Pixelate, s, 0)), values(img));
    CHECK_MESSAGE(e > prev_err, "pixelate severity ", s);
    prev_err = e;
  }
  // Motion blur: random angle per seed, but always smoother than the original.
  for (int s = 1; s <= 5; ++s)
    CHECK(roughness(values(corrupt(img, Corruption::MotionBlur, s, 5)), H, W) < 0.8 * roughness(values(img), H, W));
}

TEST_CASE("corruptions: pixelate makes blocks of the severity's size") {
  const int H = 64, W = 96;   // severity 5: factor .25 -> 16 x 24 blocks of 4 x 4
  const std::vector<float> v = values(corrupt(textured(H, W), Corruption::Pixelate, 5, 0));
  int distinct_neighbours = 0;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x + 1 < W; ++x) {
      const bool same = v[y * W + x] == v[y * W + x + 1];
      if ((x + 1) % 4 != 0) CHECK(same);   // inside a block
      distinct_neighbours += !same;
    }
  CHECK(distinct_neighbours > H * (W / 4 - 1) / 2);   // and blocks differ from each other
}

TEST_CASE("corruptions: JPEG error grows with severity on a textured image") {
  const Tensor img = textured(64, 96);
  const std::vector<float> ref = values(img);
  double prev = 0;
  for (int s = 1; s <= 5; ++s) {
    const double e = mse(values(corrupt(img, Corruption::JpegCompression, s, 0)), ref);
    CHECK_MESSAGE(e > prev, "severity ", s, ": mse ", e, " vs ", prev);
    prev = e;
  }
  CHECK(prev > 1e-3);
}

TEST_CASE("corruptions: noise strength grows with severity and matches its parameter") {
  const Tensor gray = constant(64, 96, 0.5f, 0.5f, 0.5f);
  const double gauss[] = {.08, .12, .18, .26, .38};
  const double lam[] = {60, 25, 12, 5, 3};
  const double amount[] = {.03, .06, .09, .17, .27};
  double prev_g = 0, prev_s = 0, prev_i = 0;
  for (int s = 1; s <= 5; ++s) {
    const double g = std_of(values(corrupt(gray, Corruption::GaussianNoise, s, 11)));
    const double sh = std_of(values(corrupt(gray, Corruption::ShotNoise, s, 11)));
    const std::vector<float> imp = values(corrupt(gray, Corruption::ImpulseNoise, s, 11));
    const double flipped =
        std::count_if(imp.begin(), imp.end(), [](float x) { return x != 0.5f; }) / static_cast<double>(imp.size());
    CHECK(g > prev_g);
    CHECK(sh > prev_s);
    CHECK(flipped > prev_i);
    prev_g = g, prev_s = sh, prev_i = flipped;
    if (s <= 3) {   // below clipping: std = sigma, Poisson std = sqrt(0.5 lam)/lam
      CHECK(g == doctest::Approx(gauss[s - 1]).epsilon(0.05));
      CHECK(sh == doctest::Approx(std::sqrt(0.5 / lam[s - 1])).epsilon(0.05));
    }
    CHECK(flipped == doctest::Approx(amount[s - 1]).epsilon(0.1));
  }
  // Shot noise keeps the mean (Poisson(x lam)/lam is unbiased) where nothing clips.
  CHECK(mean_of(values(corrupt(gray, Corruption::ShotNoise, 1, 3))) == doctest::Approx(0.5).epsilon(0.01));
}

TEST_CASE("corruptions: brightness raises the mean, contrast lowers the std, saturate follows HSV") {
  const Tensor img = textured(48, 64);
  const std::vector<float> ref = values(img);
  double prev_mean = mean_of(ref), prev_std = std_of(ref);
  for (int s = 1; s <= 5; ++s) {
    const double m = mean_of(values(corrupt(img, Corruption::Brightness, s, 0)));
    const std::vector<float> ct = values(corrupt(img, Corruption::Contrast, s, 0));
    CHECK(m > prev_mean);
    CHECK(std_of(ct) < prev_std);
    CHECK(mean_of(ct) == doctest::Approx(mean_of(ref)).epsilon(1e-4));   // per-channel means kept
    prev_mean = m, prev_std = std_of(ct);
  }
  // Contrast severity 1 is exactly (x - mean) * 0.4 + mean per channel.
  {
    const std::vector<float> ct = values(corrupt(img, Corruption::Contrast, 1, 0));
    const int hw = 48 * 64;
    double m0 = 0;
    for (int i = 0; i < hw; ++i) m0 += ref[i];
    m0 /= hw;
    CHECK(ct[5] == doctest::Approx((ref[5] - m0) * 0.4 + m0).epsilon(1e-5));
  }
  // Hand-computed HSV: (.2,.4,.6) has V=.6, brightness +.1 (severity 1) scales it to V=.7.
  Tensor px = constant(2, 2, 0.2f, 0.4f, 0.6f);
  std::vector<float> b = values(corrupt(px, Corruption::Brightness, 1, 0));
  CHECK(b[0] == doctest::Approx(0.2 * 7 / 6).epsilon(1e-5));
  CHECK(b[4] == doctest::Approx(0.4 * 7 / 6).epsilon(1e-5));
  CHECK(b[8] == doctest::Approx(0.7).epsilon(1e-5));
  // (.3,.45,.6): V=.6, S=.5; severity 3 doubles S to 1 -> (0, .3, .6); severity 1 (x.3) -> S=.15.
  px = constant(2, 2, 0.3f, 0.45f, 0.6f);
  std::vector<float> sat = values(corrupt(px, Corruption::Saturate, 3, 0));
  CHECK(sat[0] == doctest::Approx(0.0).epsilon(1e-5));
  CHECK(sat[4] == doctest::Approx(0.3).epsilon(1e-5));
  CHECK(sat[8] == doctest::Approx(0.6).epsilon(1e-5));
  sat = values(corrupt(px, Corruption::Saturate, 1, 0));
  CHECK(sat[0] == doctest::Approx(0.6 - 0.3 * 0.3).epsilon(1e-5));
  CHECK(sat[4] == doctest::Approx(0.6 - 0.15 * 0.3).epsilon(1e-5));
  CHECK(sat[8] == doctest::Approx(0.6).epsilon(1e-5));
}

TEST_CASE("corruptions: fog, snow and spatter change the image the way they should") {
  const int H = 64, W = 96;
  const Tensor dark = constant(H, W, 0.2f, 0.2f, 0.2f);
  const Tensor img = textured(H, W);
  for (int s = 1; s <= 5; ++s) {
    // Fog on a constant image: (v + a*plasma) * v/(v+a) <= v everywhere, and it varies smoothly.
    const std::vector<float> f = values(corrupt(dark, Corruption::Fog, s, 2));
    CHECK(*std::max_element(f.begin(), f.end()) <= 0.2f + 1e-6f);
    CHECK(std_of(f) > 0.005);
    CHECK(roughness(f, H, W) / (3.0 * H * W) < std_of(f) * std_of(f));   // neighbours alike: a smooth field
    // Snow brightens (flakes and the gray*1.5+.5 lift); spatter changes a visible fraction.
    CHECK(mean_of(values(corrupt(img, Corruption::Snow, s, 2))) > mean_of(values(img)) + 0.02);
    const std::vector<float> sp = values(corrupt(img, Corruption::Spatter, s, 2));
    const std::vector<float> ref = values(img);
    size_t changed = 0;
    for (size_t i = 0; i < sp.size(); ++i) changed += std::fabs(sp[i] - ref[i]) > 1e-3f;
    CHECK_MESSAGE(changed > sp.size() / 100, "spatter severity ", s, " changed ", changed);
    // The elastic transform moves pixels: the image changes, its mean barely.
    const std::vector<float> el = values(corrupt(img, Corruption::ElasticTransform, s, 2));
    CHECK(mse(el, ref) > 1e-4);
    CHECK(mean_of(el) == doctest::Approx(mean_of(ref)).epsilon(0.05));
  }
}

TEST_CASE("corruptions: same seed gives the same output, with any thread count, and another seed differs") {
  const Tensor img = textured(40, 56);
  const int threads = omp_get_max_threads();
  for (Corruption c : all_corruptions()) {
    const std::vector<float> a = values(corrupt(img, c, 3, 42));
    omp_set_num_threads(1);
    const std::vector<float> single = values(corrupt(img, c, 3, 42));
    omp_set_num_threads(std::max(threads, 3));
    const std::vector<float> multi = values(corrupt(img, c, 3, 42));
    omp_set_num_threads(threads);
    CHECK_MESSAGE(a == single, to_string(c));
    CHECK_MESSAGE(a == multi, to_string(c));
    const std::vector<float> b = values(corrupt(img, c, 3, 43));
    if (corruption_is_random(c))
      CHECK_MESSAGE(a != b, to_string(c), " ignores its seed");
    else
      CHECK_MESSAGE(a == b, to_string(c), " is deterministic, the seed must not matter");
  }
  // The Image overload is the tensor path rounded to 8 bits.
  const Image im = tensor_to_image(img);
  CHECK(corrupt(im, Corruption::Snow, 2, 9).pixels ==
        tensor_to_image(corrupt(image_to_tensor(im), Corruption::Snow, 2, 9)).pixels);
}

TEST_CASE("corruptions: every corruption and severity of a 240x320 image in well under a second") {
  const Tensor img = textured(240, 320);
  for (Corruption c : all_corruptions()) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 1; s <= 5; ++s) corrupt(img, c, s, 1);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE(to_string(c), ": ", ms / 5, " ms per 240x320 image (mean over severities)");
    CHECK(ms / 5 < 1000);   // a generous ceiling: a regression to O(pixels * image) shows here
  }
}
