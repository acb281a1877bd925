// .npy reader and writer. The header is a Python dict literal, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and ended by '\n' so that the data starts on a 64-byte boundary (numpy's
// writer does so since 1.x; we check only that the header parses). We parse exactly the three
// keys numpy writes rather than a general Python literal.
#include "core/npy.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/safetensors.h"
#include "core/value_checks.h"

namespace moeseg {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

DType dtype_from_descr(const std::string& d, const std::string& path) {
  MOESEG_CHECK(d.size() >= 2, path, ": npy dtype descriptor '", printable(d), "' is not understood");
  const char order = d[0];
  const std::string kind = d.substr(1);
  const bool single_byte = kind == "u1" || kind == "i1" || kind == "b1";
  MOESEG_CHECK(order == '<' || order == '|' || (order == '=' && single_byte), path, ": npy dtype '", printable(d),
               "' is not little-endian (big-endian data is not supported)");
  MOESEG_CHECK(order != '|' || single_byte, path, ": npy dtype descriptor '", printable(d), "' is not understood");
  if (kind == "f4") return DType::Float32;
  if (kind == "f8") return DType::Float64;
  if (kind == "i4") return DType::Int32;
  if (kind == "i8") return DType::Int64;
  if (kind == "u1") return DType::UInt8;
  MOESEG_FAIL(path, ": npy dtype '", printable(d), "' is not supported (float32, float64, int32, int64, uint8)");
}

const char* descr_of(DType t, const std::string& path) {
  switch (t) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::UInt8: return "|u1";
    default: MOESEG_FAIL(path, ": save_npy: dtype ", dtype_name(t), " is not supported (float32, float64, int32, int64, uint8)");
  }
}

// The value after 'key': in the header dict, as raw text up to the matching end.
std::string header_value(const std::string& h, const std::string& key, const std::string& path) {
  const std::string k1 = "'" + key + "'", k2 = "\"" + key + "\"";
  size_t p = h.find(k1);
  size_t klen = k1.size();
  if (p == std::string::npos) { p = h.find(k2); klen = k2.size(); }
  MOESEG_CHECK(p != std::string::npos, path, ": npy header has no '", key, "' entry: ", printable(h));
  p = h.find(':', p + klen);
  MOESEG_CHECK(p != std::string::npos, path, ": npy header entry '", key, "' has no value: ", printable(h));
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  MOESEG_CHECK(p < h.size(), path, ": npy header entry '", key, "' has no value: ", printable(h));
  size_t e;
  if (h[p] == '(') {
    e = h.find(')', p);
    MOESEG_CHECK(e != std::string::npos, path, ": npy header shape is not closed: ", printable(h));
    return h.substr(p, e - p + 1);
  }
  if (h[p] == '\'' || h[p] == '"') {
    e = h.find(h[p], p + 1);
    MOESEG_CHECK(e != std::string::npos, path, ": npy header string is not closed: ", printable(h));
    return h.substr(p + 1, e - p - 1);
  }
  e = h.find_first_of(",}", p);
  MOESEG_CHECK(e != std::string::npos, path, ": npy header entry '", key, "' is not terminated: ", printable(h));
  std::string v = h.substr(p, e - p);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

Shape parse_shape(const std::string& s, const std::string& path) {
  // A Python tuple of non-negative integers: "(2, 3)", "(5,)" or "()".
  MOESEG_CHECK(s.size() >= 2 && s.front() == '(' && s.back() == ')', path, ": npy header shape '", printable(s),
               "' is not a tuple of non-negative integers");
  Shape shape;
  size_t p = 1;
  const size_t end = s.size() - 1;
  bool need_comma = false;
  while (true) {
    while (p < end && s[p] == ' ') ++p;
    if (p >= end) break;
    if (need_comma) {
      MOESEG_CHECK(s[p] == ',', path, ": npy header shape '", printable(s), "' is not a tuple of non-negative integers");
      ++p;
      need_comma = false;
      continue;
    }
    size_t e = p;
    int64_t v = 0;
    while (e < end && s[e] >= '0' && s[e] <= '9') {
      MOESEG_CHECK(!__builtin_mul_overflow(v, int64_t{10}, &v) && !__builtin_add_overflow(v, int64_t{s[e] - '0'}, &v),
                   path, ": npy header shape '", printable(s), "' has a dimension that does not fit in 64 bits");
      ++e;
    }
    MOESEG_CHECK(e > p, path, ": npy header shape '", printable(s), "' is not a tuple of non-negative integers");
    shape.push_back(v);
    p = e;
    need_comma = true;
  }
  return shape;
}

}  // namespace

Tensor load_npy(const std::string& path) { return parse_npy(read_file_bytes(path), path); }

Tensor parse_npy(const std::string& bytes, const std::string& path) {
  MOESEG_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), kMagic, kMagicLen) == 0, path,
               ": not a .npy file (bad magic; expected \\x93NUMPY)");
  const int major = static_cast<unsigned char>(bytes[6]);
  MOESEG_CHECK(major >= 1 && major <= 3, path, ": npy format version ", major, ".",
               static_cast<int>(static_cast<unsigned char>(bytes[7])), " is not supported");
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else {
    MOESEG_CHECK(bytes.size() >= 12, path, ": truncated npy header");
    uint32_t len32 = 0;
    for (int i = 0; i < 4; ++i) len32 |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_len = len32;
    header_start = 12;
  }
  MOESEG_CHECK(header_start + header_len <= bytes.size(), path, ": truncated npy header (", header_len,
               " header bytes announced, file has ", bytes.size(), " bytes)");
  const std::string header = bytes.substr(header_start, header_len);
  const DType dtype = dtype_from_descr(header_value(header, "descr", path), path);
  const std::string fortran = header_value(header, "fortran_order", path);
  MOESEG_CHECK(fortran == "False", path, ": npy array is in Fortran order (fortran_order: ", printable(fortran),
               "); only C order is supported — save np.ascontiguousarray(a)");
  const Shape shape = parse_shape(header_value(header, "shape", path), path);

  const size_t data_start = header_start + header_len;
  const size_t nbytes = checked_shape_bytes(shape, dtype_size(dtype), path + ": npy " + dtype_name(dtype) + " array").nbytes;
  MOESEG_CHECK(bytes.size() - data_start >= nbytes, path, ": truncated npy data (", dtype_name(dtype), shape_str(shape),
               " needs ", nbytes, " bytes, file has ", bytes.size() - data_start, ")");
  MOESEG_CHECK(bytes.size() - data_start == nbytes, path, ": npy file has ", bytes.size() - data_start - nbytes,
               " trailing bytes after the ", dtype_name(dtype), shape_str(shape), " data");
  Tensor t = Tensor::empty(shape, dtype);
  if (nbytes) std::memcpy(t.raw_data(), bytes.data() + data_start, nbytes);
  return t;
}

void save_npy(const std::string& path, const Tensor& t) {
  check_defined(t, "save_npy", "t");
  const char* descr = descr_of(t.dtype(), path);
  const Tensor c = t.to(Device{}).contiguous();
  // Python tuple syntax: "()", "(5,)", "(2, 3)".
  std::string shape = "(";
  for (int64_t i = 0; i < c.dim(); ++i) shape += (i ? ", " : "") + std::to_string(c.size(i));
  if (c.dim() == 1) shape += ",";
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
  const size_t unpadded = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  MOESEG_CHECK(header.size() <= 65535, path, ": save_npy: header too long for format 1.0");
  std::string out(kMagic, kMagicLen);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out += header;
  if (c.numel() > 0)
    out.append(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
  write_file_atomic(path, out);
}

}  // namespace moeseg
