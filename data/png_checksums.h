// The two checksums of the PNG format: CRC-32 (ISO 3309, over each chunk's type and data) and
// zlib's Adler-32 (over the inflated image data). One definition for the PNG writer
// (data/png_encode.cpp) and the reader's integrity checks (data/image_io.cpp).
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace moeseg::data {

// CRC-32 of p[0, n) continuing from `crc` (0 to start).
inline uint32_t crc32_update(uint32_t crc, const uint8_t* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

inline uint32_t adler32(const uint8_t* p, size_t n) {
  uint32_t a = 1, b = 0;
  while (n > 0) {
    const size_t block = std::min<size_t>(n, 5552);   // the largest run before b can overflow
    for (size_t i = 0; i < block; ++i) {
      a += p[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
    p += block;
    n -= block;
  }
  return (b << 16) | a;
}

}  // namespace moeseg::data
