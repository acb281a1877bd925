// PNG container + two minimal deflate encoders (RFC 1950/1951): stored blocks, and one
// fixed-Huffman block whose matches only look one pixel left or one row up. Label images are
// large single-colour regions, so those two candidates find nearly every repetition; the
// encoder is a single greedy pass with no hash tables.
#include "data/png_encode.h"

#include "data/png_checksums.h"

#include <algorithm>
#include <array>

namespace moeseg::data {

namespace {


void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void put_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_be32(out, crc32_update(0, out.data() + start, out.size() - start));
}

void deflate_stored(const std::vector<uint8_t>& raw, std::vector<uint8_t>& z) {
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    z.push_back(pos + n == raw.size() ? 1 : 0);   // BFINAL, BTYPE = 00
    z.push_back(static_cast<uint8_t>(n));
    z.push_back(static_cast<uint8_t>(n >> 8));
    z.push_back(static_cast<uint8_t>(~n));
    z.push_back(static_cast<uint8_t>(~n >> 8));
    z.insert(z.end(), raw.begin() + static_cast<std::ptrdiff_t>(pos), raw.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < raw.size());
}

// LSB-first bit writer; Huffman codes are pushed bit-reversed as deflate requires.
struct BitWriter {
  std::vector<uint8_t>& out;
  uint64_t acc = 0;
  int nbits = 0;
  void put(uint32_t bits, int n) {
    acc |= static_cast<uint64_t>(bits) << nbits;
    nbits += n;
    while (nbits >= 8) {
      out.push_back(static_cast<uint8_t>(acc));
      acc >>= 8;
      nbits -= 8;
    }
  }
  void put_code(uint32_t code, int len) {   // MSB-first Huffman code
    uint32_t rev = 0;
    for (int i = 0; i < len; ++i) rev |= ((code >> i) & 1u) << (len - 1 - i);
    put(rev, len);
  }
  void flush() {
    if (nbits > 0) out.push_back(static_cast<uint8_t>(acc));
    acc = 0;
    nbits = 0;
  }
};

// Fixed literal/length code of symbol 0..287 (RFC 1951, 3.2.6).
void put_litlen(BitWriter& bw, int sym) {
  if (sym < 144) bw.put_code(0x30 + sym, 8);
  else if (sym < 256) bw.put_code(0x190 + (sym - 144), 9);
  else if (sym < 280) bw.put_code(sym - 256, 7);
  else bw.put_code(0xC0 + (sym - 280), 8);
}

void put_match(BitWriter& bw, int len, int dist) {
  static const int lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
  static const int lextra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
  static const int dbase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
  static const int dextra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
  int li = 28;
  while (lbase[li] > len) --li;
  put_litlen(bw, 257 + li);
  if (lextra[li]) bw.put(static_cast<uint32_t>(len - lbase[li]), lextra[li]);
  int di = 29;
  while (dbase[di] > dist) --di;
  bw.put_code(static_cast<uint32_t>(di), 5);
  if (dextra[di]) bw.put(static_cast<uint32_t>(dist - dbase[di]), dextra[di]);
}

void deflate_fast(const std::vector<uint8_t>& raw, int pixel, int row, std::vector<uint8_t>& z) {
  BitWriter bw{z};
  bw.put(1, 1);   // BFINAL
  bw.put(1, 2);   // BTYPE = 01, fixed Huffman
  const size_t n = raw.size();
  const int cands[2] = {pixel, row <= 32768 ? row : 0};
  size_t i = 0;
  while (i < n) {
    int best_len = 0, best_dist = 0;
    for (int d : cands) {
      if (d <= 0 || i < static_cast<size_t>(d)) continue;
      const size_t max_len = std::min<size_t>(258, n - i);
      size_t l = 0;
      while (l < max_len && raw[i + l] == raw[i + l - d]) ++l;
      if (static_cast<int>(l) > best_len) {
        best_len = static_cast<int>(l);
        best_dist = d;
      }
    }
    if (best_len >= 3) {
      put_match(bw, best_len, best_dist);
      i += static_cast<size_t>(best_len);
    } else {
      put_litlen(bw, raw[i]);
      ++i;
    }
  }
  put_litlen(bw, 256);   // end of block
  bw.flush();
}

}  // namespace

std::vector<uint8_t> encode_png_own(const Image& img, bool fast) {
  const size_t row = static_cast<size_t>(img.width) * img.channels;
  std::vector<uint8_t> raw;
  raw.reserve((row + 1) * img.height);
  for (int y = 0; y < img.height; ++y) {
    raw.push_back(0);   // filter: none
    raw.insert(raw.end(), img.pixels.begin() + static_cast<std::ptrdiff_t>(y * row),
               img.pixels.begin() + static_cast<std::ptrdiff_t>((y + 1) * row));
  }
  std::vector<uint8_t> z = {0x78, 0x01};   // zlib header: deflate, 32K window
  if (fast) deflate_fast(raw, img.channels, static_cast<int>(row + 1), z);
  else deflate_stored(raw, z);
  put_be32(z, adler32(raw.data(), raw.size()));
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, static_cast<uint32_t>(img.width));
  put_be32(ihdr, static_cast<uint32_t>(img.height));
  const uint8_t colour_type = img.channels == 1 ? 0 : img.channels == 3 ? 2 : img.channels == 2 ? 4 : 6;
  ihdr.insert(ihdr.end(), {8, colour_type, 0, 0, 0});
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", {});
  return out;
}

}  // namespace moeseg::data
