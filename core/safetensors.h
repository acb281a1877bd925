// Reading and writing the safetensors format (8-byte little-endian header length, a JSON header
// mapping names to {dtype, shape, data_offsets}, then raw little-endian data). It is how weights
// move between moeseg and PyTorch and how the committed PyTorch fixtures are stored.
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace moeseg {

struct TensorFile {
  std::map<std::string, Tensor> tensors;          // name -> CPU tensor
  std::map<std::string, std::string> metadata;    // the optional "__metadata__" string map

  const Tensor& get(const std::string& name, const std::string& file_for_errors = "") const;
  bool has(const std::string& name) const { return tensors.count(name) != 0; }
};

// Throws moeseg::Error naming the file on a missing file, a truncated header or data, an unknown
// dtype or offsets that do not match the shape.
TensorFile load_safetensors(const std::string& path);
// Writes to path + ".tmp" and renames, so an interrupted write never leaves a half file.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes bytes to path atomically (temporary file + rename).
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace moeseg
