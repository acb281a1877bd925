// Image I/O: PNG/JPEG decode, PNG encode in all modes, and the error messages for broken files.
#include <doctest/doctest.h>

#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "data/image_io.h"
#include "data_test_util.h"

using namespace moeseg;
using namespace moeseg::data;
using namespace moeseg::testing;

namespace {
// The gradient the fixture script writes (make_data_fixtures.py: gradient_image).
int gradient(int x, int y, int c, int seed) {
  if (c == 0) return (x * 31 + seed * 17) % 256;
  if (c == 1) return (y * 43 + seed * 7) % 256;
  return (x * y * 5 + seed * 29) % 256;
}
}  // namespace

TEST_CASE("image_io: reads an RGB PNG written by the fixture script") {
  Image img = read_image(data_fixture("broken/good.png"));
  REQUIRE(img.height == 8);
  REQUIRE(img.width == 8);
  REQUIRE(img.channels == 3);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x)
      for (int c = 0; c < 3; ++c) CHECK(img.at(y, x)[c] == gradient(x, y, c, 9));
}

TEST_CASE("image_io: truncated, non-image and missing files throw naming the file") {
  const std::string trunc = data_fixture("broken/truncated.png");
  std::string msg = error_of([&] { read_image(trunc); });
  CHECK(contains(msg, trunc));
  CHECK(contains(msg, "truncated"));
  msg = error_of([&] { read_image(data_fixture("broken/not_an_image.png")); });
  CHECK(contains(msg, "not_an_image.png"));
  msg = error_of([&] { read_image(data_fixture("broken/does_not_exist.png")); });
  CHECK(contains(msg, "does_not_exist.png"));
  // a PNG cut exactly before its IEND chunk still decodes in stb: we must reject it too
  TempDir tmp("io");
  Image img(5, 7, 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 7);
  std::vector<uint8_t> bytes = encode_png(img);
  bytes.resize(bytes.size() - 12);
  write_file(tmp.str("no_iend.png"), bytes);
  msg = error_of([&] { read_image(tmp.str("no_iend.png")); });
  CHECK(contains(msg, "no_iend.png"));
}

TEST_CASE("image_io: PNG round trip, compressed and stored, RGB and gray") {
  TempDir tmp("io");
  for (int ch : {1, 3}) {
    Image img(13, 17, ch);   // odd sizes
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
    for (PngMode mode : {PngMode::Compressed, PngMode::Fast, PngMode::Stored}) {
      const std::string path = tmp.str("rt.png");
      write_png(path, img, mode);
      Image back = read_image(path);
      CHECK(back.height == 13);
      CHECK(back.width == 17);
      CHECK(back.channels == ch);
      CHECK(back.pixels == img.pixels);
    }
  }
  // flat label-like images: Fast must round-trip exactly and compress them well
  Image flat(120, 160, 3);
  for (int y = 0; y < 120; ++y)
    for (int x = 0; x < 160; ++x) {
      const uint8_t c = static_cast<uint8_t>(((x / 37) * 3 + (y / 23) * 5 + (x * x > 90 * y ? 7 : 0)) * 11);
      flat.at(y, x)[0] = c;
      flat.at(y, x)[1] = static_cast<uint8_t>(255 - c);
      flat.at(y, x)[2] = static_cast<uint8_t>(c ^ 0x5a);
    }
  write_png(tmp.str("flat.png"), flat, PngMode::Fast);
  CHECK(read_image(tmp.str("flat.png")).pixels == flat.pixels);
  CHECK(encode_png(flat, PngMode::Fast).size() < flat.pixels.size() / 10);
  // rows longer than deflate's 32 KiB window: only the one-pixel-left matches are used
  Image wide(3, 11000, 3);
  for (size_t i = 0; i < wide.pixels.size(); ++i) wide.pixels[i] = static_cast<uint8_t>((i / 300) % 7);
  write_png(tmp.str("wide.png"), wide, PngMode::Fast);
  CHECK(read_image(tmp.str("wide.png")).pixels == wide.pixels);
  // a large stored PNG spans several 64 KiB deflate blocks
  Image big(200, 150, 3);
  for (size_t i = 0; i < big.pixels.size(); ++i) big.pixels[i] = static_cast<uint8_t>((i * 13) ^ (i >> 7));
  write_png(tmp.str("big.png"), big, PngMode::Stored);
  CHECK(read_image(tmp.str("big.png")).pixels == big.pixels);
}

TEST_CASE("image_io: channel conversion and the gray-label check") {
  // gray camera image -> RGB by replication
  Image rgb = read_image(data_fixture("folder/images/c.png"), 3);
  REQUIRE(rgb.channels == 3);
  const auto& gray = data_expected()["folder_gray_image"];
  for (int i = 0; i < rgb.height * rgb.width; ++i)
    for (int c = 0; c < 3; ++c) CHECK(rgb.pixels[static_cast<size_t>(i) * 3 + c] == gray[static_cast<size_t>(i)].get<int>());
  // an RGB file is not a class-index label
  std::string msg = error_of([&] { read_gray_label(data_fixture("broken/good.png")); });
  CHECK(contains(msg, "good.png"));
  CHECK(contains(msg, "3 channels"));
}

namespace {
// A 37x29 photo-like test image (odd sizes, not a multiple of JPEG's 8/16 px blocks): red ramps
// along x, green along y, blue is a smooth wave, so the channels differ everywhere and a swap of
// channels or a shift by one row or column is a large error.
std::vector<uint8_t> jpeg_test_pixels(int W, int H) {
  std::vector<uint8_t> px(static_cast<size_t>(W) * H * 3);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      uint8_t* p = px.data() + (static_cast<size_t>(y) * W + x) * 3;
      p[0] = static_cast<uint8_t>(40 + 5 * x);
      p[1] = static_cast<uint8_t>(30 + 6 * y);
      p[2] = static_cast<uint8_t>(std::lround(128 + 60 * std::sin(x / 5.0 + y / 7.0)));
    }
  return px;
}

struct JpegError {
  double mse = 0, psnr = 0, mae[3] = {0, 0, 0};
};
// Error of `got` against `want` (same size, 3 channels interleaved), per channel and overall.
JpegError jpeg_error(const std::vector<uint8_t>& want, const std::vector<uint8_t>& got) {
  REQUIRE(want.size() == got.size());
  JpegError e;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    e.mse += d * d;
    e.mae[i % 3] += std::abs(d);
  }
  e.mse /= static_cast<double>(want.size());
  for (double& m : e.mae) m /= static_cast<double>(want.size() / 3);
  e.psnr = e.mse > 0 ? 10 * std::log10(255.0 * 255.0 / e.mse) : 99.0;
  return e;
}

// Bounds on the error of a baseline JPEG of this image at a quality (libjpeg's quality scaling
// of the standard tables: q=100 quantises by 1, q=95 by 1/10 of the q=50 steps). stb measures
// PSNR 51.7 / 47.3 / 38.2 / 35.9 / 30.8 dB and a worst-channel mean abs error of 0.6 / 1.2 / 3.4
// / 4.5 / 8.2 at q = 100 / 95 / 75 / 50 / 20; the bounds leave room for other encoders (e.g.
// 4:2:0 chroma subsampling, which stb uses only up to q=90: 41.5 dB there). A decoder that swaps
// channels gives ~14 dB, one shifted by a row ~34 dB and a green error of 6: both fail at 95, 100.
struct JpegBound {
  int quality;
  double min_psnr, max_mae;
};
constexpr JpegBound kJpegBounds[] = {{20, 26, 12}, {50, 31, 7}, {75, 33, 5}, {95, 40, 3}, {100, 44, 2}};
}  // namespace

TEST_CASE("image_io: JPEG decodes to the encoded image within quality-dependent bounds") {
  TempDir tmp("io");
  const int W = 37, H = 29;
  const std::vector<uint8_t> px = jpeg_test_pixels(W, H);
  double last_mse = 1e9;
  uintmax_t last_size = 0;
  std::vector<uint8_t> decoded95;
  for (const JpegBound& b : kJpegBounds) {
    CAPTURE(b.quality);
    const std::string path = tmp.str("q" + std::to_string(b.quality) + ".jpg");
    REQUIRE(stbi_write_jpg(path.c_str(), W, H, 3, px.data(), b.quality) != 0);
    const Image img = read_image(path);   // channels as in the file
    REQUIRE(img.width == W);
    REQUIRE(img.height == H);
    REQUIRE(img.channels == 3);
    REQUIRE(img.pixels.size() == px.size());
    const JpegError e = jpeg_error(px, img.pixels);
    INFO("JPEG quality " << b.quality << ": PSNR " << e.psnr << " dB, mean abs error R " << e.mae[0] << " G " << e.mae[1]
                         << " B " << e.mae[2]);
    CHECK(e.psnr >= b.min_psnr);
    for (double m : e.mae) CHECK(m <= b.max_mae);
    // Higher quality: strictly smaller error and a strictly larger file.
    CHECK(e.mse < last_mse);
    const uintmax_t size = std::filesystem::file_size(path);
    CHECK(size > last_size);
    last_mse = e.mse;
    last_size = size;
    // Asking for 3 channels gives the same pixels.
    CHECK(read_image(path, 3).pixels == img.pixels);
    if (b.quality == 95) decoded95 = img.pixels;
  }
  // The checker itself: the q95 decode with red and blue swapped, or shifted by one row, fails
  // the q95 bound (so a decoder with either bug could not pass above).
  REQUIRE(!decoded95.empty());
  std::vector<uint8_t> swapped = decoded95, shifted = decoded95;
  for (size_t i = 0; i < swapped.size(); i += 3) std::swap(swapped[i], swapped[i + 2]);
  std::copy(decoded95.begin() + 3 * W, decoded95.end(), shifted.begin());
  CHECK(jpeg_error(px, swapped).psnr < 40);
  CHECK(jpeg_error(px, shifted).psnr < 40);
  CHECK(jpeg_error(px, shifted).mae[1] > 3);
}

TEST_CASE("image_io: JPEG read as gray, and gray pictures") {
  TempDir tmp("io");
  const int W = 37, H = 29;
  const std::vector<uint8_t> px = jpeg_test_pixels(W, H);
  // A colour JPEG read as gray: the BT.601 luma of the original within JPEG and rounding error.
  const std::string colour = tmp.str("colour.jpg");
  REQUIRE(stbi_write_jpg(colour.c_str(), W, H, 3, px.data(), 95) != 0);
  const Image g = read_image(colour, 1);
  REQUIRE(g.channels == 1);
  REQUIRE(g.width == W);
  REQUIRE(g.height == H);
  double mae = 0;
  std::vector<uint8_t> luma(static_cast<size_t>(W) * H);
  for (size_t i = 0; i < luma.size(); ++i) {
    luma[i] = static_cast<uint8_t>(std::lround(0.299 * px[3 * i] + 0.587 * px[3 * i + 1] + 0.114 * px[3 * i + 2]));
    mae += std::abs(double(g.pixels[i]) - luma[i]);
  }
  CHECK(mae / static_cast<double>(luma.size()) < 1.5);
  // A gray picture (stb writes it as YCbCr with neutral chroma): the three channels decode equal,
  // to the gray values within JPEG error, and reading it as gray gives those same values.
  const std::string gray = tmp.str("gray.jpg");
  REQUIRE(stbi_write_jpg(gray.c_str(), W, H, 1, luma.data(), 95) != 0);
  const Image g3 = read_image(gray, 3), g1 = read_image(gray, 1);
  REQUIRE(g3.channels == 3);
  REQUIRE(g1.channels == 1);
  REQUIRE(g3.width == W);
  REQUIRE(g3.height == H);
  REQUIRE(g1.pixels.size() == luma.size());
  size_t not_gray = 0, not_same = 0;
  double se = 0;
  for (size_t i = 0; i < luma.size(); ++i) {
    not_gray += g3.pixels[3 * i] != g3.pixels[3 * i + 1] || g3.pixels[3 * i] != g3.pixels[3 * i + 2];
    not_same += g1.pixels[i] != g3.pixels[3 * i];
    se += std::pow(double(g1.pixels[i]) - luma[i], 2);
  }
  CHECK(not_gray == 0);
  CHECK(not_same == 0);
  CHECK(10 * std::log10(255.0 * 255.0 * static_cast<double>(luma.size()) / std::max(se, 1e-9)) >= 40);
}

TEST_CASE("image_io: tensor conversions") {
  Image img(3, 4, 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 20);
  Tensor t = image_to_tensor(img);
  REQUIRE(t.shape() == Shape{3, 3, 4});
  CHECK(t.at({1, 2, 3}) == doctest::Approx(img.at(2, 3)[1] / 255.0));
  CHECK(tensor_to_image(t).pixels == img.pixels);
}
