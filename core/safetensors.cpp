// safetensors I/O. Dtype codes follow the format's names: F32 F64 I32 I64 U8 F16 BF16.
#include "core/safetensors.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

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
  MOESEG_FAIL(path, ": tensor '", name, "' has unsupported dtype ", c);
}

}  // namespace

const Tensor& TensorFile::get(const std::string& name, const std::string& file) const {
  auto it = tensors.find(name);
  MOESEG_CHECK(it != tensors.end(), file.empty() ? std::string("tensor file") : file, ": no tensor named '", name, "'");
  return it->second;
}

TensorFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MOESEG_CHECK(in.good(), path, ": cannot open file");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MOESEG_CHECK(bytes.size() >= 8, path, ": truncated (", bytes.size(), " bytes, no header length)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  MOESEG_CHECK(header_len <= bytes.size() - 8, path, ": header length ", header_len, " exceeds file size ", bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, header_len));
  } catch (const std::exception& e) {
    MOESEG_FAIL(path, ": header is not valid JSON (", e.what(), ")");
  }
  const size_t data_start = 8 + header_len;
  const size_t data_size = bytes.size() - data_start;
  TensorFile f;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      for (auto& [k, v] : info.items()) f.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    MOESEG_CHECK(info.contains("dtype") && info.contains("shape") && info.contains("data_offsets"), path,
                 ": tensor '", name, "' lacks dtype, shape or data_offsets");
    DType dt = from_code(info["dtype"].get<std::string>(), path, name);
    Shape shape = info["shape"].get<Shape>();
    auto offs = info["data_offsets"].get<std::vector<uint64_t>>();
    MOESEG_CHECK(offs.size() == 2 && offs[0] <= offs[1] && offs[1] <= data_size, path, ": tensor '", name,
                 "' has data offsets outside the file (truncated?)");
    const uint64_t expected = shape_numel(shape) * dtype_size(dt);
    MOESEG_CHECK(offs[1] - offs[0] == expected, path, ": tensor '", name, "' has ", offs[1] - offs[0],
                 " bytes but shape ", shape_str(shape), " of ", dtype_name(dt), " needs ", expected);
    Tensor t = Tensor::empty(shape, dt);
    if (expected) std::memcpy(t.raw_data(), bytes.data() + data_start + offs[0], expected);
    f.tensors[name] = t;
  }
  return f;
}

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
