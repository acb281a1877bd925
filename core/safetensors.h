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

// Throws moeseg::Error naming the file (and the tensor) on a missing or non-regular file, a
// truncated header or data, a header that is not an object of {dtype: string, shape: [uint...],
// data_offsets: [begin, end]}, an unknown dtype, a shape whose size overflows, offsets that do
// not match the shape, and offsets that overlap, leave holes or do not end at the end of the
// file (the format requires the tensors to tile the data section exactly).
TensorFile load_safetensors(const std::string& path);
// The same from bytes in memory; `path` only names the source in errors (fuzzing, tests).
TensorFile parse_safetensors(const std::string& bytes, const std::string& path);
// Writes to path + ".tmp" and renames, so an interrupted write never leaves a half file.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes bytes to path atomically (temporary file + rename).
void write_file_atomic(const std::string& path, const std::string& bytes);
// The whole file as bytes; errors name the path (missing, not a regular file, unreadable).
std::string read_file_bytes(const std::string& path);

}  // namespace moeseg
