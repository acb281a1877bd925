// NumPy .npy files (format versions 1.0, 2.0 and 3.0): load_npy / save_npy for float32, float64,
// int64, int32 and uint8 arrays, little-endian, C order. It is how images, labels and feature
// maps move between moeseg and Python tooling (np.load / np.save) without a dependency.
// Fortran-order arrays, big-endian data and other dtypes are refused with an error naming the
// file and what was found. Tested by tests/core/test_npy.cpp.
#pragma once
#include <string>

#include "core/tensor.h"

namespace moeseg {

// Reads a whole .npy file into a contiguous CPU tensor of the matching dtype. A shape whose
// byte size overflows, a dimension that does not fit in 64 bits, a non-tuple shape, truncated or
// trailing data and a path that is not a regular file are refused naming the file.
Tensor load_npy(const std::string& path);
// The same from bytes in memory; `path` only names the source in errors (fuzzing, tests).
Tensor parse_npy(const std::string& bytes, const std::string& path);
// Writes a tensor (any layout, any device; float16/bfloat16 refused) as a version-1.0 .npy file,
// atomically (temporary file + rename).
void save_npy(const std::string& path, const Tensor& t);

}  // namespace moeseg
