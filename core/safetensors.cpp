// safetensors I/O. Dtype codes follow the format's names: F32 F64 I32 I64 U8 F16 BF16.
#include "core/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/value_checks.h"

namespace moeseg {

namespace {

const char* st_code(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
    case DType::UInt8: return "U8";
    case DType::Float16: return "F16";
    case DType::BFloat16: return "BF16";
  }
  return "?";
}

DType from_code(const std::string& c, const std::string& path, const std::string& name) {
  if (c == "F32") return DType::Float32;
  if (c == "F64") return DType::Float64;
  if (c == "I32") return DType::Int32;
  if (c == "I64") return DType::Int64;
  if (c == "U8") return DType::UInt8;
  if (c == "F16") return DType::Float16;
  if (c == "BF16") return DType::BFloat16;
  MOESEG_FAIL(path, ": tensor '", name, "' has unsupported dtype ", printable(c));
}

}  // namespace

const Tensor& TensorFile::get(const std::string& name, const std::string& file) const {
  auto it = tensors.find(name);
  MOESEG_CHECK(it != tensors.end(), file.empty() ? std::string("tensor file") : file, ": no tensor named '", name, "'");
  return it->second;
}

namespace {

// The largest header the format allows (the reference implementation's limit: 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t json_index(const nlohmann::json& v, const std::string& path, const std::string& name, const char* key) {
  MOESEG_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), path, ": tensor '", name,
               "': '", key, "' must hold non-negative integers, got ", v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return v.get<uint64_t>();
}

struct Span {
  uint64_t begin, end;
  std::string name;
};

}  // namespace

TensorFile parse_safetensors(const std::string& bytes, const std::string& path) {
  MOESEG_CHECK(bytes.size() >= 8, path, ": truncated (", bytes.size(), " bytes, no header length)");
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  MOESEG_CHECK(header_len <= bytes.size() - 8, path, ": header length ", header_len, " exceeds file size ", bytes.size());
  MOESEG_CHECK(header_len <= kMaxHeaderBytes, path, ": header length ", header_len, " exceeds the format's limit of ",
               kMaxHeaderBytes, " bytes");
  nlohmann::json header;
  // Duplicate top-level names are refused (the format forbids them; JSON parsers keep the last).
  std::string duplicate;
  std::set<std::string> seen;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string() &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len), on_event);
  } catch (const std::exception& e) {
    MOESEG_FAIL(path, ": header is not valid JSON (", e.what(), ")");
  }
  MOESEG_CHECK(header.is_object(), path, ": header must be a JSON object {name: {dtype, shape, data_offsets}}, got ",
               header.type_name());
  MOESEG_CHECK(duplicate.empty(), path, ": header names tensor '", printable(duplicate), "' more than once");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = bytes.size() - data_start;
  TensorFile f;
  std::vector<Span> spans;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      MOESEG_CHECK(info.is_object(), path, ": '__metadata__' must be an object of strings, got ", info.type_name());
      for (auto& [k, v] : info.items()) f.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    const std::string name_shown = printable(name);
    MOESEG_CHECK(info.is_object(), path, ": tensor '", name_shown, "' must be an object {dtype, shape, data_offsets}, got ",
                 info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    MOESEG_CHECK(info.contains("dtype") && info.contains("shape") && info.contains("data_offsets"), path,
                 ": tensor '", name_shown, "' lacks dtype, shape or data_offsets");
    const nlohmann::json& jd = info.at("dtype");
    MOESEG_CHECK(jd.is_string(), path, ": tensor '", name_shown, "': 'dtype' must be a string such as \"F32\", got ", jd.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    const DType dt = from_code(jd.get<std::string>(), path, name_shown);
    const nlohmann::json& js = info.at("shape");
    MOESEG_CHECK(js.is_array(), path, ": tensor '", name_shown, "': 'shape' must be a list of non-negative integers, got ",
                 js.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    Shape shape;
    for (const auto& d : js) {
      const uint64_t v = json_index(d, path, name_shown, "shape");
      MOESEG_CHECK(v <= static_cast<uint64_t>(INT64_MAX), path, ": tensor '", name_shown, "': dimension ", v, " is too large");
      shape.push_back(static_cast<int64_t>(v));
    }
    const nlohmann::json& jo = info.at("data_offsets");
    MOESEG_CHECK(jo.is_array() && jo.size() == 2, path, ": tensor '", name_shown,
                 "': 'data_offsets' must be [begin, end], got ", jo.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    const uint64_t b = json_index(jo[0], path, name_shown, "data_offsets"), e = json_index(jo[1], path, name_shown, "data_offsets");
    MOESEG_CHECK(b <= e && e <= data_size, path, ": tensor '", name_shown, "' has data offsets [", b, ", ", e,
                 "] outside the ", data_size, "-byte data section (truncated?)");
    const ShapeBytes sb = checked_shape_bytes(shape, dtype_size(dt), path + ": tensor '" + name_shown + "' (" + dtype_name(dt) + ")");
    MOESEG_CHECK(e - b == sb.nbytes, path, ": tensor '", name_shown, "' has ", e - b, " bytes but shape ", shape_str(shape),
                 " of ", dtype_name(dt), " needs ", sb.nbytes);
    spans.push_back({b, e, name_shown});
    Tensor t = Tensor::empty(shape, dt);
    if (sb.nbytes) std::memcpy(t.raw_data(), bytes.data() + data_start + b, sb.nbytes);
    f.tensors[name] = t;
  }
  // The tensors must tile the data section: no overlap (two names aliasing one buffer), no hole
  // and nothing after the last tensor (the format forbids both, so that a file has one meaning).
  std::sort(spans.begin(), spans.end(),
            [](const Span& x, const Span& y) { return x.begin != y.begin ? x.begin < y.begin : x.end < y.end; });
  uint64_t at = 0;
  const Span* prev = nullptr;
  for (const Span& s : spans) {
    MOESEG_CHECK(s.begin >= at, path, ": tensors '", prev ? prev->name : "", "' [", prev ? prev->begin : 0, ", ",
                 prev ? prev->end : 0, "] and '", s.name, "' [", s.begin, ", ", s.end, "] overlap in the data section");
    MOESEG_CHECK(s.begin == at, path, ": bytes [", at, ", ", s.begin, ") of the data section belong to no tensor (a hole before '",
                 s.name, "')");
    at = s.end;
    prev = &s;
  }
  MOESEG_CHECK(at == data_size, path, ": ", data_size - at, " bytes after the last tensor",
               prev ? " ('" + prev->name + "')" : std::string(), " belong to no tensor (data section is ", data_size,
               " bytes)");
  return f;
}

std::string read_file_bytes(const std::string& path) {
  std::error_code ec;
  MOESEG_CHECK(std::filesystem::exists(path, ec), path, ": cannot open file (it does not exist)");
  MOESEG_CHECK(std::filesystem::is_regular_file(path, ec), path, ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  MOESEG_CHECK(in.good(), path, ": cannot open file");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MOESEG_CHECK(!in.bad(), path, ": read error");
  return bytes;
}

TensorFile load_safetensors(const std::string& path) { return parse_safetensors(read_file_bytes(path), path); }

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    MOESEG_CHECK(out.good(), path, ": cannot open ", tmp, " for writing");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    MOESEG_CHECK(out.good(), path, ": write failed (disk full?)");
  }
  MOESEG_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename ", tmp, " into place");
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> ordered;
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {   // std::map: sorted names, a stable file for a given content
    check_defined(t, "save_safetensors", name.c_str());
    Tensor c = t.detach().to(Device{}).contiguous();
    uint64_t nb = c.numel() * dtype_size(c.dtype());
    header[name] = {{"dtype", st_code(c.dtype())}, {"shape", c.sizes()}, {"data_offsets", {offset, offset + nb}}};
    offset += nb;
    ordered.push_back(c);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h.push_back(' ');   // align data to 8 bytes
  std::string bytes(8, '\0');
  uint64_t hl = h.size();
  std::memcpy(bytes.data(), &hl, 8);
  bytes += h;
  for (auto& c : ordered) bytes.append(static_cast<const char*>(c.raw_data()), c.numel() * dtype_size(c.dtype()));
  write_file_atomic(path, bytes);
}

}  // namespace moeseg
