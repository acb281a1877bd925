// Image I/O: PNG/JPEG decode, PNG encode in both modes, and the error messages for broken files.
#include <doctest/doctest.h>

#include <stb/stb_image_write.h>

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

TEST_CASE("image_io: reads JPEG") {
  TempDir tmp("io");
  std::vector<uint8_t> px(32 * 24 * 3);
  for (int y = 0; y < 24; ++y)
    for (int x = 0; x < 32; ++x) {
      uint8_t* p = px.data() + (y * 32 + x) * 3;
      p[0] = static_cast<uint8_t>(x * 8);
      p[1] = static_cast<uint8_t>(y * 10);
      p[2] = 128;
    }
  const std::string path = tmp.str("smooth.jpg");
  REQUIRE(stbi_write_jpg(path.c_str(), 32, 24, 3, px.data(), 95) != 0);
  Image img = read_image(path, 3);
  REQUIRE(img.width == 32);
  REQUIRE(img.height == 24);
  int worst = 0;
  for (size_t i = 0; i < px.size(); ++i) worst = std::max(worst, std::abs(int(img.pixels[i]) - int(px[i])));
  CHECK(worst < 24);   // lossy, but a smooth ramp survives at quality 95
}

TEST_CASE("image_io: tensor conversions") {
  Image img(3, 4, 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 20);
  Tensor t = image_to_tensor(img);
  REQUIRE(t.shape() == Shape{3, 3, 4});
  CHECK(t.at({1, 2, 3}) == doctest::Approx(img.at(2, 3)[1] / 255.0));
  CHECK(tensor_to_image(t).pixels == img.pixels);
}
