// stb_image / stb_image_write behind the data layer's Image type. This is the one translation
// unit that instantiates the stb implementations.
// Files are read into memory with our own fread so that an unreadable file and a truncated one
// give distinct messages; stb decodes from memory. stb's failure reason is thread-local in
// v2.27 (STBI_THREAD_LOCAL), so concurrent loader threads do not clobber each other's errors.
//
// Hostile input. stb trusts its input more than a reader of downloaded datasets may: v2.27
// decodes a truncated PPM into uninitialised heap memory, fills a cut JPEG or BMP with zeros,
// and never checks PNG CRCs or the zlib Adler-32. So before stb sees a file we
//   - decide its format from the magic bytes (PNG, JPEG, BMP, binary PNM; stb is built with
//     only these four) and refuse content that does not match the extension,
//   - walk its structure: every PNG chunk present with a correct CRC-32, IHDR first, IEND at
//     the end, the IDAT stream inflating to exactly the bytes IHDR's size needs and matching its
//     Adler-32; JPEG segments complete up to the scan and an end-of-image marker after it; BMP
//     and PNM pixel data as long as the header says (PNM exactly; 8-bit only),
//   - check the declared width x height against a pixel budget (max_image_pixels()) before
//     anything is allocated,
// and after stb we check that it decoded the size the header declared.
#include "data/image_io.h"

#include "data/png_checksums.h"

#include "data/png_encode.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace moeseg::data {

namespace {

std::atomic<int64_t> g_max_pixels{kDefaultMaxImagePixels};

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  MOESEG_CHECK(!std::filesystem::exists(path, ec) || std::filesystem::is_regular_file(path, ec), "image file '", path,
               "' is not a regular file");
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

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | uint32_t{p[1]}; }
uint32_t le16(const uint8_t* p) { return uint32_t{p[0]} | (uint32_t{p[1]} << 8); }
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::PNG: return "PNG";
    case ImageFormat::JPEG: return "JPEG";
    case ImageFormat::BMP: return "BMP";
    case ImageFormat::PNM: return "PNM (binary PGM/PPM)";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext;
}

// The pixel budget, checked on the header's numbers before any buffer is sized from them.
void check_dimensions(int64_t w, int64_t h, const std::string& path, const char* fmt) {
  MOESEG_CHECK(w >= 1 && h >= 1, "image file '", path, "': ", fmt, " header declares a ", w, "x", h,
               " image (width and height must be positive)");
  const int64_t budget = max_image_pixels();
  MOESEG_CHECK(w <= INT_MAX / 16 && h <= INT_MAX / 16 && w * h <= budget, "image file '", path, "': ", fmt,
               " header declares ", w, "x", h, " pixels, over the budget of ", budget,
               " pixels (data::set_max_image_pixels raises it)");
}

// ---- PNG: chunk walk, CRC-32, IDAT inflate to the exact size, Adler-32 -------------------------


// Bytes of filtered scanlines (one filter byte per row) of a w x h image at bpp bits per pixel.
uint64_t png_raw_bytes(uint64_t w, uint64_t h, uint64_t bpp) { return w && h ? h * ((w * bpp + 7) / 8 + 1) : 0; }

void verify_png(const std::vector<uint8_t>& bytes, const std::string& path, int64_t& width, int64_t& height) {
  const size_t n = bytes.size();
  size_t pos = 8;
  bool have_ihdr = false, have_iend = false;
  uint32_t bit_depth = 0, colour = 0, interlace = 0;
  std::vector<uint8_t> idat;
  while (pos < n) {
    MOESEG_CHECK(n - pos >= 12, "image file '", path, "' is truncated (PNG chunk at offset ", pos, " is cut short: ",
                 n - pos, " bytes left of a chunk's 12-byte frame)");
    const uint32_t len = be32(&bytes[pos]);
    MOESEG_CHECK(len <= 0x7FFFFFFFu, "image file '", path, "' is corrupt (PNG chunk at offset ", pos, " declares ", len,
                 " bytes)");
    MOESEG_CHECK(n - pos - 12 >= len, "image file '", path, "' is truncated (PNG chunk at offset ", pos, " declares ", len,
                 " data bytes, ", n - pos - 12, " are left)");
    const uint8_t* type = &bytes[pos + 4];
    const std::string name(reinterpret_cast<const char*>(type), 4);
    for (char ch : name)
      MOESEG_CHECK(std::isalpha(static_cast<unsigned char>(ch)), "image file '", path, "' is corrupt (PNG chunk at offset ",
                   pos, " has a type that is not four letters)");
    const uint8_t* data = type + 4;
    const uint32_t stored = be32(data + len), actual = crc32_update(0, type, size_t{len} + 4);
    if (stored != actual) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "CRC 0x%08x but its bytes give 0x%08x", stored, actual);
      MOESEG_FAIL("image file '", path, "' is corrupt (PNG chunk '", name, "' at offset ", pos, " has ", buf, ")");
    }
    MOESEG_CHECK(have_ihdr || name == "IHDR", "image file '", path, "' is corrupt (PNG starts with chunk '", name,
                 "', not IHDR)");
    if (name == "IHDR") {
      MOESEG_CHECK(!have_ihdr && len == 13, "image file '", path, "' is corrupt (PNG IHDR chunk repeated or not 13 bytes)");
      have_ihdr = true;
      width = be32(data);
      height = be32(data + 4);
      bit_depth = data[8];
      colour = data[9];
      interlace = data[12];
      const bool ok_depth = (colour == 0 && (bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8 || bit_depth == 16)) ||
                            (colour == 3 && (bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8)) ||
                            ((colour == 2 || colour == 4 || colour == 6) && (bit_depth == 8 || bit_depth == 16));
      MOESEG_CHECK(ok_depth && data[10] == 0 && data[11] == 0 && interlace <= 1, "image file '", path,
                   "' is corrupt (PNG IHDR: colour type ", colour, ", bit depth ", bit_depth, ", compression ",
                   int{data[10]}, ", filter ", int{data[11]}, ", interlace ", interlace, " is not a valid combination)");
      check_dimensions(width, height, path, "PNG");
    } else if (name == "IDAT") {
      idat.insert(idat.end(), data, data + len);
    } else if (name == "IEND") {
      have_iend = true;
      break;   // bytes after IEND, which some writers leave, are ignored (stb ignores them too)
    }
    pos += size_t{len} + 12;
  }
  MOESEG_CHECK(have_iend, "image file '", path, "' is truncated or corrupt (PNG without an IEND chunk, ", n, " bytes)");
  MOESEG_CHECK(!idat.empty(), "image file '", path, "' is corrupt (PNG without image data: no IDAT chunk)");

  const uint64_t channels = colour == 0 || colour == 3 ? 1 : colour == 4 ? 2 : colour == 2 ? 3 : 4;
  const uint64_t bpp = channels * bit_depth, w = static_cast<uint64_t>(width), h = static_cast<uint64_t>(height);
  uint64_t expected = 0;
  if (interlace == 0) {
    expected = png_raw_bytes(w, h, bpp);
  } else {   // Adam7: seven passes, each a sub-image of its own rows
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; ++p)
      expected += png_raw_bytes((w + dx[p] - 1 - x0[p]) / dx[p], (h + dy[p] - 1 - y0[p]) / dy[p], bpp);
  }
  MOESEG_CHECK(expected < static_cast<uint64_t>(INT_MAX) && idat.size() < static_cast<size_t>(INT_MAX), "image file '",
               path, "': PNG of ", width, "x", height, " needs ", expected, " bytes of scanlines, more than the decoder handles");
  // Into a buffer one byte larger than needed: a stream that inflates to more does not fit and
  // fails, so a small file cannot balloon into a huge allocation (a zlib bomb).
  std::vector<char> raw(expected + 1);
  const int got = stbi_zlib_decode_buffer(raw.data(), static_cast<int>(raw.size()), reinterpret_cast<const char*>(idat.data()),
                                          static_cast<int>(idat.size()));
  MOESEG_CHECK(got >= 0, "image file '", path, "' is corrupt (PNG image data does not inflate to the ", expected,
               " bytes a ", width, "x", height, " image needs: ", stbi_failure_reason(), ")");
  MOESEG_CHECK(static_cast<uint64_t>(got) == expected, "image file '", path, "' is truncated or corrupt (PNG image data inflates to ",
               got, " bytes, a ", width, "x", height, " image needs ", expected, ")");
  MOESEG_CHECK(idat.size() >= 6, "image file '", path, "' is corrupt (PNG image data too short for a zlib stream)");
  const uint32_t stored = be32(&idat[idat.size() - 4]), actual = adler32(reinterpret_cast<const uint8_t*>(raw.data()), expected);
  if (stored != actual) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "Adler-32 0x%08x but the inflated data gives 0x%08x", stored, actual);
    MOESEG_FAIL("image file '", path, "' is corrupt (PNG image data stream has ", buf, ")");
  }
}

// ---- JPEG: every segment complete, Huffman tables sane, an end-of-image marker -----------------

// stb_image 2.27 writes past its Huffman size table when a DHT's 16 code counts add up to more
// than 256 (found by tests/fuzz image; fixed in stb 2.28), so the tables are checked here.
void verify_jpeg_dht(const std::vector<uint8_t>& b, size_t p, size_t end, const std::string& path) {
  while (p < end) {
    MOESEG_CHECK(end - p >= 17, "image file '", path, "' is corrupt (JPEG Huffman table at offset ", p, " is cut short)");
    const int tc = b[p] >> 4, th = b[p] & 15;
    size_t n = 0;
    for (int i = 1; i <= 16; ++i) n += b[p + i];
    MOESEG_CHECK(tc <= 1 && th <= 3 && n <= 256 && end - p - 17 >= n, "image file '", path,
                 "' is corrupt (JPEG Huffman table at offset ", p, ": class ", tc, ", id ", th, ", ", n,
                 " codes; at most 256 codes of class 0-1, id 0-3, within the segment)");
    p += 17 + n;
  }
}

void verify_jpeg(const std::vector<uint8_t>& bytes, const std::string& path, int64_t& width, int64_t& height) {
  const size_t n = bytes.size();
  size_t pos = 2;
  bool have_sof = false, in_scan = false;
  while (true) {
    if (in_scan) {   // entropy-coded data: 0xFF is escaped as FF 00; FF D0-D7 are restart markers
      while (pos + 1 < n && !(bytes[pos] == 0xFF && bytes[pos + 1] != 0x00 && !(bytes[pos + 1] >= 0xD0 && bytes[pos + 1] <= 0xD7)))
        ++pos;
    }
    MOESEG_CHECK(pos + 1 < n, "image file '", path, "' is truncated (JPEG without its end-of-image marker, ", n, " bytes)");
    MOESEG_CHECK(bytes[pos] == 0xFF, "image file '", path, "' is corrupt (JPEG marker expected at offset ", pos, ")");
    while (pos + 2 < n && bytes[pos + 1] == 0xFF) ++pos;   // fill bytes
    const uint8_t m = bytes[pos + 1];
    if (m == 0xD9) {
      MOESEG_CHECK(in_scan, "image file '", path, "' is corrupt (JPEG ends before its image data)");
      return;   // bytes after the end marker (some cameras append data) are ignored, as stb does
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {   // markers without a length
      pos += 2;
      continue;
    }
    MOESEG_CHECK(m != 0xD8 && m != 0x00 && m != 0xFF, "image file '", path, "' is corrupt (JPEG marker 0x", std::hex, int{m},
                 std::dec, " at offset ", pos, ")");
    MOESEG_CHECK(pos + 4 <= n, "image file '", path, "' is truncated (JPEG segment at offset ", pos, " is cut short)");
    const size_t len = be16(&bytes[pos + 2]);
    MOESEG_CHECK(len >= 2 && pos + 2 + len <= n, "image file '", path, "' is truncated or corrupt (JPEG segment 0x", std::hex,
                 int{m}, std::dec, " at offset ", pos, " declares ", len, " bytes, ", n - pos - 2, " are left)");
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      MOESEG_CHECK(!have_sof && len >= 8, "image file '", path, "' is corrupt (JPEG frame header repeated or of ", len,
                   " bytes)");
      height = be16(&bytes[pos + 5]);
      width = be16(&bytes[pos + 7]);
      check_dimensions(width, height, path, "JPEG");
      have_sof = true;
    }
    if (m == 0xC4) verify_jpeg_dht(bytes, pos + 4, pos + 2 + len, path);
    if (m == 0xDA) MOESEG_CHECK(have_sof, "image file '", path, "' is corrupt (JPEG scan before any frame header)");
    in_scan = in_scan || m == 0xDA;
    pos += 2 + len;
  }
}

// ---- BMP: the pixel array must be in the file --------------------------------------------------

void verify_bmp(const std::vector<uint8_t>& bytes, const std::string& path, int64_t& width, int64_t& height) {
  const size_t n = bytes.size();
  MOESEG_CHECK(n >= 26, "image file '", path, "' is truncated (BMP of ", n, " bytes has no complete header)");
  const uint32_t offset = le32(&bytes[10]), dib = le32(&bytes[14]);
  uint32_t bpp = 0, compression = 0;
  int64_t h = 0;
  if (dib == 12) {
    width = le16(&bytes[18]);
    h = le16(&bytes[20]);
    bpp = le16(&bytes[24]);
  } else {
    MOESEG_CHECK(dib == 40 || dib == 52 || dib == 56 || dib == 108 || dib == 124, "image file '", path,
                 "' is corrupt or unsupported (BMP info header of ", dib, " bytes)");
    MOESEG_CHECK(n >= 14 + size_t{dib}, "image file '", path, "' is truncated (BMP header cut short)");
    width = static_cast<int32_t>(le32(&bytes[18]));
    h = static_cast<int32_t>(le32(&bytes[22]));
    bpp = le16(&bytes[28]);
    compression = le32(&bytes[30]);
  }
  height = h < 0 ? -h : h;   // negative: rows stored top-down
  check_dimensions(width, height, path, "BMP");
  MOESEG_CHECK(bpp == 1 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32, "image file '", path,
               "' is corrupt or unsupported (BMP with ", bpp, " bits per pixel)");
  if (compression == 0 || compression == 3 || compression == 6) {   // uncompressed rows (bit fields)
    const uint64_t stride = (static_cast<uint64_t>(width) * bpp + 31) / 32 * 4;
    const uint64_t need = uint64_t{offset} + stride * static_cast<uint64_t>(height);
    MOESEG_CHECK(need <= n, "image file '", path, "' is truncated (BMP pixel data of ", width, "x", height, " at ", bpp,
                 " bits needs ", need, " bytes, the file has ", n, ")");
  }   // other compressions: stb refuses them
}

// ---- PNM (P5 gray, P6 RGB): header tokens as stb reads them, then exactly the pixel bytes -------

void verify_pnm(const std::vector<uint8_t>& bytes, const std::string& path, int64_t& width, int64_t& height) {
  const size_t n = bytes.size();
  size_t pos = 2;
  auto is_space = [](uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  auto number = [&](const char* what) {
    // At least one whitespace (and comments) before each header number, as the format says.
    MOESEG_CHECK(pos < n && is_space(bytes[pos]), "image file '", path, "' is corrupt or truncated (PNM header: no space before the ",
                 what, ")");
    while (pos < n) {
      while (pos < n && is_space(bytes[pos])) ++pos;
      if (pos < n && bytes[pos] == '#') {
        while (pos < n && bytes[pos] != '\n' && bytes[pos] != '\r') ++pos;
        continue;
      }
      break;
    }
    int64_t v = 0;
    const size_t start = pos;
    while (pos < n && bytes[pos] >= '0' && bytes[pos] <= '9') {
      v = v * 10 + (bytes[pos] - '0');
      MOESEG_CHECK(v <= INT_MAX, "image file '", path, "' is corrupt (PNM header ", what, " does not fit in 31 bits)");
      ++pos;
    }
    MOESEG_CHECK(pos > start, "image file '", path, "' is corrupt or truncated (PNM header has no ", what, ")");
    return v;
  };
  width = number("width");
  height = number("height");
  const int64_t maxval = number("maximum value");
  // stb_image 2.27 converts 16-bit PNM channels with its 8-bit routine and reads past the end of
  // the buffer (found by tests/fuzz image), so 16-bit PNM is refused.
  MOESEG_CHECK(maxval >= 1 && maxval <= 255, "image file '", path, "': PNM maximum value ", maxval,
               (maxval > 255 && maxval <= 65535 ? " (16-bit samples) is not supported" : " is outside [1, 255]"),
               "; 8-bit PGM/PPM are read");
  MOESEG_CHECK(pos < n && is_space(bytes[pos]), "image file '", path, "' is truncated (PNM header not followed by pixels)");
  ++pos;   // exactly one whitespace byte separates the header from the pixels
  check_dimensions(width, height, path, "PNM");
  const uint64_t need = static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * (bytes[1] == '5' ? 1 : 3);
  MOESEG_CHECK(n - pos >= need, "image file '", path, "' is truncated (PNM header says ", width, "x", height, ", needing ", need,
               " bytes of pixels; the file has ", n - pos, ")");
  MOESEG_CHECK(n - pos == need, "image file '", path, "' has ", n - pos - need, " bytes after its ", width, "x", height,
               " PNM pixels (corrupt, or several images in one file)");
}

void write_to_vector(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

int64_t max_image_pixels() { return g_max_pixels.load(std::memory_order_relaxed); }

void set_max_image_pixels(int64_t n) {
  MOESEG_CHECK(n >= 1, "set_max_image_pixels: budget must be positive, got ", n);
  g_max_pixels.store(n, std::memory_order_relaxed);
}

ImageFormat sniff_image_format(const std::vector<uint8_t>& b) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (b.size() >= 8 && std::memcmp(b.data(), png, 8) == 0) return ImageFormat::PNG;
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::JPEG;
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return ImageFormat::BMP;
  if (b.size() >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return ImageFormat::PNM;
  return ImageFormat::Unknown;
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& path, int channels) {
  MOESEG_CHECK(channels == 0 || channels == 1 || channels == 3, "read_image('", path, "'): channels must be 0, 1 or 3, got ",
               channels);
  MOESEG_CHECK(!bytes.empty(), "image file '", path, "' is empty");
  const ImageFormat fmt = sniff_image_format(bytes);
  MOESEG_CHECK(fmt != ImageFormat::Unknown, "image file '", path, "' cannot be decoded (", bytes.size(),
               " bytes): not an image in a supported format (PNG, JPEG, BMP, binary PGM/PPM)");
  // The extension, when it names an image format, must name this one.
  const std::string ext = lower_extension(path);
  ImageFormat by_ext = ImageFormat::Unknown;
  bool image_ext = true;
  if (ext == ".png") by_ext = ImageFormat::PNG;
  else if (ext == ".jpg" || ext == ".jpeg" || ext == ".jpe" || ext == ".jfif") by_ext = ImageFormat::JPEG;
  else if (ext == ".bmp" || ext == ".dib") by_ext = ImageFormat::BMP;
  else if (ext == ".ppm" || ext == ".pgm" || ext == ".pnm") by_ext = ImageFormat::PNM;
  else image_ext = ext == ".gif" || ext == ".tga" || ext == ".tif" || ext == ".tiff" || ext == ".webp" || ext == ".psd" ||
                   ext == ".hdr" || ext == ".pic";
  MOESEG_CHECK(!image_ext || by_ext == fmt, "image file '", path, "' holds ", format_name(fmt), " data but its extension '", ext,
               "' says ", by_ext == ImageFormat::Unknown ? ext.substr(1) : format_name(by_ext), " (renamed or corrupt file)");
  MOESEG_CHECK(fmt != ImageFormat::PNM || ((ext != ".ppm" || bytes[1] == '6') && (ext != ".pgm" || bytes[1] == '5')),
               "image file '", path, "' holds a P", static_cast<char>(bytes[1]), " image but its extension is '", ext, "'");
  MOESEG_CHECK(bytes.size() < static_cast<size_t>(INT_MAX), "image file '", path, "' is too large (", bytes.size(), " bytes)");
  int64_t hw = 0, hh = 0;
  switch (fmt) {
    case ImageFormat::PNG: verify_png(bytes, path, hw, hh); break;
    case ImageFormat::JPEG: verify_jpeg(bytes, path, hw, hh); break;
    case ImageFormat::BMP: verify_bmp(bytes, path, hw, hh); break;
    case ImageFormat::PNM: verify_pnm(bytes, path, hw, hh); break;
    case ImageFormat::Unknown: break;
  }
  int w = 0, h = 0, c = 0;
  uint8_t* p = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &c, channels);
  MOESEG_CHECK(p != nullptr, "image file '", path, "' cannot be decoded (", stbi_failure_reason(), "; ", bytes.size(),
               " bytes): unreadable, truncated or not an image");
  std::unique_ptr<uint8_t, void (*)(void*)> owned(p, &stbi_image_free);
  MOESEG_CHECK(w == hw && h == hh, "image file '", path, "': ", format_name(fmt), " header declares ", hw, "x", hh,
               " but the decoder produced ", w, "x", h);
  Image img;
  img.height = h;
  img.width = w;
  img.channels = channels == 0 ? c : channels;
  img.pixels.assign(p, p + static_cast<size_t>(w) * h * img.channels);
  return img;
}

Image read_image(const std::string& path, int channels) {
  MOESEG_CHECK(channels == 0 || channels == 1 || channels == 3, "read_image('", path, "'): channels must be 0, 1 or 3, got ",
               channels);
  return decode_image(read_file_bytes(path), path, channels);
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
