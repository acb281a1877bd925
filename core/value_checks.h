// Checks for values that come from outside (files, configs): element counts and byte sizes
// computed without overflow, and finiteness of floating-point tensors. The readers (safetensors,
// npy, images) size their buffers with checked_nbytes before allocating, and every weight load
// (Module::load_state_dict) refuses NaN/Inf with the tensor's name, so a hostile or corrupt file
// fails with a message instead of aborting in malloc or training on garbage.
// Tested by tests/badinput/test_badinput.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

// a * b, or false when it does not fit in uint64_t.
inline bool checked_mul_u64(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

// The element count and byte size of `shape` with elements of `elem_size` bytes. Throws
// moeseg::Error naming `what` (e.g. "file.safetensors: tensor 'w'") and the shape when a
// dimension is negative or the count or the size does not fit in int64_t.
struct ShapeBytes {
  int64_t numel = 0;
  uint64_t nbytes = 0;
};
ShapeBytes checked_shape_bytes(const Shape& shape, size_t elem_size, const std::string& what);

// How many elements of a floating-point tensor are NaN or +-Inf (0 for integer dtypes); any
// device and layout. first_index / first_value (optional) get the first such element in logical
// order.
int64_t count_non_finite(const Tensor& t, int64_t* first_index = nullptr, double* first_value = nullptr);

// "" when every element is finite, else e.g. "3 of 864 values are not finite (first: nan at
// flat index 17)".
std::string non_finite_summary(const Tensor& t);

// Throws moeseg::Error "<what>: 3 of 864 values are not finite (...)" unless every element is.
void check_all_finite(const Tensor& t, const std::string& what);

// Text from a file, made safe to put in a message: control bytes (a NUL would cut the message
// short in what(), a newline or escape would garble the terminal) become \xNN, and text longer
// than max_len is shortened with "...". Other bytes, UTF-8 included, are kept.
std::string printable(const std::string& s, size_t max_len = 200);

// For a NaN/Inf loss: names the non-finite input batch or parameters, else says the inputs and
// weights were finite, so the training diverged (lower the learning rate or clip gradients).
std::string non_finite_loss_hint(const Tensor& inputs, const std::vector<std::pair<std::string, Tensor>>& params);

}  // namespace moeseg
