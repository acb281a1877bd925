// Image files in and out: PNG/JPEG (and what else stb_image reads) into 8-bit interleaved
// pixels, PNG out. Every failure throws moeseg::Error naming the file.
// Conversions to the tensors the models see live here too ([3,H,W] float in [0,1]).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg::data {

// 8-bit pixels, row-major, channels interleaved (HWC).
struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int h, int w, int c) : height(h), width(w), channels(c), pixels(static_cast<size_t>(h) * w * c, 0) {}
  uint8_t* at(int y, int x) { return pixels.data() + (static_cast<size_t>(y) * width + x) * channels; }
  const uint8_t* at(int y, int x) const { return pixels.data() + (static_cast<size_t>(y) * width + x) * channels; }
};

// The largest width x height a file may declare (2^28: 16384 x 16384); checked on the header
// before anything is allocated. Process-wide; set_max_image_pixels changes it (fuzzing, tests,
// huge aerial images).
constexpr int64_t kDefaultMaxImagePixels = int64_t{1} << 28;
int64_t max_image_pixels();
void set_max_image_pixels(int64_t pixels);

// The formats read: PNG, JPEG, BMP and binary PNM (P5 gray / P6 RGB), told apart by their magic
// bytes, never by the file name.
enum class ImageFormat { PNG, JPEG, BMP, PNM, Unknown };
ImageFormat sniff_image_format(const std::vector<uint8_t>& bytes);

// Reads an image file. `channels` = 0 keeps what the file holds (1 gray, 2 gray+alpha, 3, 4),
// 1 forces grayscale, 3 forces RGB (alpha dropped, gray replicated). Throws naming the path and
// the reason for missing, unreadable, truncated or corrupt files: content that does not match
// the extension, a PNG chunk with a wrong CRC or image data with a wrong Adler-32 or size, a
// JPEG without its end marker, BMP/PNM pixel data shorter than the header says, a declared size
// over max_image_pixels().
Image read_image(const std::string& path, int channels = 0);
// The same from bytes in memory; `path` names the file in errors and its extension is checked
// against the content (fuzzing, tests).
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& path, int channels = 0);

// Reads a file that must hold a single-channel 8-bit image (class-index labels); an RGB file is
// an error naming the path: silently converting colours to luminance would corrupt the labels.
Image read_gray_label(const std::string& path);

// Throws naming both files when an image and its label differ in size; `dataset` prefixes the
// message (e.g. "CamVid").
void check_label_matches_image(const Image& image, const std::string& image_path, const Image& label,
                               const std::string& label_path, const char* dataset);

// Deflate effort of a PNG: Compressed uses stb_image_write (smallest files, ~7 ms for a noisy
// 240x320 photo, ~3 ms for a flat label); Fast is our run-length deflate (matches one pixel to
// the left or one row up only: flat label images shrink ~50x at a fraction of a millisecond);
// Stored writes uncompressed deflate blocks. Camera images with sensor noise barely compress
// (216 KB vs 230 KB raw at 240x320), so the synthetic generator stores them and writes labels Fast.
enum class PngMode { Compressed, Fast, Stored };

// Writes a PNG (1, 3 or 4 channels); throws naming the path when it cannot be written.
void write_png(const std::string& path, const Image& img, PngMode mode = PngMode::Compressed);
// The PNG bytes without touching the disk (tests and determinism checks).
std::vector<uint8_t> encode_png(const Image& img, PngMode mode = PngMode::Compressed);
// Writes bytes to a file; throws naming the path.
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);

// RGB Image -> float32 [3,H,W] in [0,1] (the reference divides by 255, no mean/std).
Tensor image_to_tensor(const Image& img);
// float32 [3,H,W] in [0,1] -> RGB Image (values clamped, rounded).
Image tensor_to_image(const Tensor& t);
// Single-channel Image -> int64 [H,W] of the raw values.
Tensor gray_to_label_tensor(const Image& img);

}  // namespace moeseg::data
