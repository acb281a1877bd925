// stb_image / stb_image_write behind the data layer's Image type. This is the one translation
// unit that instantiates the stb implementations.
// Files are read into memory with our own fread so that an unreadable file and a truncated one
// give distinct messages; stb decodes from memory. stb's failure reason is thread-local in
// v2.27 (STBI_THREAD_LOCAL), so concurrent loader threads do not clobber each other's errors.
#include "data/image_io.h"

#include "data/png_encode.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace moeseg::data {

namespace {

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  MOESEG_CHECK(f != nullptr, "image file '", path, "' cannot be opened: ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) bytes.insert(bytes.end(), buf, buf + n);
  MOESEG_CHECK(!std::ferror(f.get()), "image file '", path, "': read error");
  MOESEG_CHECK(!bytes.empty(), "image file '", path, "' is empty");
  return bytes;
}

// stb accepts a PNG whose IEND chunk is missing (a file cut after the last IDAT); a truncated
// download must not pass as a good image, so a PNG has to contain its IEND chunk (searched from
// the end, so that bytes appended after IEND, which some writers leave, are tolerated).
void check_png_complete(const std::vector<uint8_t>& bytes, const std::string& path) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), sig, 8) != 0) return;   // not a PNG
  static const uint8_t iend[4] = {'I', 'E', 'N', 'D'};
  auto it = std::find_end(bytes.begin() + 8, bytes.end(), iend, iend + 4);
  MOESEG_CHECK(it != bytes.end(), "image file '", path, "' is truncated or corrupt (PNG without an IEND chunk, ",
               bytes.size(), " bytes)");
}

void write_to_vector(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

Image read_image(const std::string& path, int channels) {
  MOESEG_CHECK(channels == 0 || channels == 1 || channels == 3, "read_image('", path, "'): channels must be 0, 1 or 3, got ",
               channels);
  std::vector<uint8_t> bytes = read_file_bytes(path);
  check_png_complete(bytes, path);
  int w = 0, h = 0, c = 0;
  uint8_t* p = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &c, channels);
  MOESEG_CHECK(p != nullptr, "image file '", path, "' cannot be decoded (", stbi_failure_reason(), "; ", bytes.size(),
               " bytes): unreadable, truncated or not an image");
  Image img;
  img.height = h;
  img.width = w;
  img.channels = channels == 0 ? c : channels;
  img.pixels.assign(p, p + static_cast<size_t>(w) * h * img.channels);
  stbi_image_free(p);
  return img;
}

void check_label_matches_image(const Image& img, const std::string& image_path, const Image& lab,
                               const std::string& label_path, const char* dataset) {
  MOESEG_CHECK(img.height == lab.height && img.width == lab.width, dataset, ": image '", image_path, "' is ", img.width,
               "x", img.height, " but its label '", label_path, "' is ", lab.width, "x", lab.height);
}

Image read_gray_label(const std::string& path) {
  Image img = read_image(path, 0);
  MOESEG_CHECK(img.channels == 1, "label file '", path, "' has ", img.channels,
               " channels; a class-index label must be an 8-bit single-channel (grayscale) image");
  return img;
}

std::vector<uint8_t> encode_png(const Image& img, PngMode mode) {
  MOESEG_CHECK(img.channels == 1 || img.channels == 3 || img.channels == 4, "encode_png: ", img.channels,
               " channels (1, 3 or 4 expected)");
  MOESEG_CHECK(img.height > 0 && img.width > 0 && img.pixels.size() == static_cast<size_t>(img.height) * img.width * img.channels,
               "encode_png: image ", img.height, "x", img.width, "x", img.channels, " has ", img.pixels.size(), " bytes");
  if (mode != PngMode::Compressed) return encode_png_own(img, mode == PngMode::Fast);
  std::vector<uint8_t> out;
  out.reserve(img.pixels.size() / 2);
  int ok = stbi_write_png_to_func(write_to_vector, &out, img.width, img.height, img.channels, img.pixels.data(),
                                  img.width * img.channels);
  MOESEG_CHECK(ok != 0, "encode_png: stb_image_write failed for a ", img.height, "x", img.width, " image");
  return out;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  MOESEG_CHECK(f != nullptr, "cannot write '", path, "': ", std::strerror(errno));
  MOESEG_CHECK(std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size(), "cannot write '", path, "': ",
               std::strerror(errno));
  MOESEG_CHECK(std::fclose(f.release()) == 0, "cannot write '", path, "': close failed");
}

void write_png(const std::string& path, const Image& img, PngMode mode) { write_file(path, encode_png(img, mode)); }

Tensor image_to_tensor(const Image& img) {
  MOESEG_CHECK(img.channels == 3, "image_to_tensor: RGB image expected, got ", img.channels, " channels");
  const int64_t hw = static_cast<int64_t>(img.height) * img.width;
  Tensor t = Tensor::empty({3, img.height, img.width}, DType::Float32);
  float* out = t.data<float>();
  const uint8_t* in = img.pixels.data();
  for (int64_t i = 0; i < hw; ++i)
    for (int c = 0; c < 3; ++c) out[c * hw + i] = in[i * 3 + c] * (1.0f / 255.0f);
  return t;
}

Image tensor_to_image(const Tensor& t) {
  MOESEG_CHECK(t.dim() == 3 && t.size(0) == 3 && t.dtype() == DType::Float32, "tensor_to_image: float32 [3,H,W] expected, got ",
               t.str());
  Tensor c = t.contiguous();
  const int h = static_cast<int>(c.size(1)), w = static_cast<int>(c.size(2));
  const int64_t hw = static_cast<int64_t>(h) * w;
  Image img(h, w, 3);
  const float* in = c.data<float>();
  for (int64_t i = 0; i < hw; ++i)
    for (int ch = 0; ch < 3; ++ch) {
      float v = in[ch * hw + i] * 255.0f + 0.5f;
      img.pixels[i * 3 + ch] = static_cast<uint8_t>(v < 0.f ? 0.f : v > 255.f ? 255.f : v);
    }
  return img;
}

Tensor gray_to_label_tensor(const Image& img) {
  MOESEG_CHECK(img.channels == 1, "gray_to_label_tensor: single-channel image expected, got ", img.channels, " channels");
  Tensor t = Tensor::empty({img.height, img.width}, DType::Int64);
  int64_t* out = t.data<int64_t>();
  for (size_t i = 0; i < img.pixels.size(); ++i) out[i] = img.pixels[i];
  return t;
}

}  // namespace moeseg::data
