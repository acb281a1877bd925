// Overflow-checked sizes and finiteness checks (see value_checks.h). Finiteness is read from
// the bit patterns (exponent all ones), the same for float32/64/16 and bfloat16, so no
// floating-point exception or conversion is involved.
#include "core/value_checks.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

namespace moeseg {

ShapeBytes checked_shape_bytes(const Shape& shape, size_t elem_size, const std::string& what) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    MOESEG_CHECK(d >= 0, what, ": shape ", shape_str(shape), " has a negative dimension");
    MOESEG_CHECK(checked_mul_u64(n, static_cast<uint64_t>(d), n) &&
                     n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                 what, ": shape ", shape_str(shape), " has more elements than fit in 64 bits (element count overflows)");
  }
  uint64_t bytes = 0;
  MOESEG_CHECK(checked_mul_u64(n, elem_size, bytes) && bytes <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
               what, ": shape ", shape_str(shape), " of ", elem_size, "-byte elements needs more than 2^63 bytes (size overflows)");
  return {static_cast<int64_t>(n), bytes};
}

namespace {

template <typename Bits>
int64_t scan(const Bits* p, int64_t n, Bits exp_mask, int64_t* first) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    if ((p[i] & exp_mask) == exp_mask) {
      if (count++ == 0 && first) *first = i;
    }
  return count;
}

double value_at(const Tensor& c, int64_t i) {
  const void* base = c.raw_data();
  switch (c.dtype()) {
    case DType::Float32: return static_cast<const float*>(base)[i];
    case DType::Float64: return static_cast<const double*>(base)[i];
    case DType::Float16: {
      const uint16_t h = static_cast<const uint16_t*>(base)[i];
      return (h & 0x03ff) ? NAN : ((h & 0x8000) ? -INFINITY : INFINITY);
    }
    case DType::BFloat16: {
      const uint16_t h = static_cast<const uint16_t*>(base)[i];
      return (h & 0x007f) ? NAN : ((h & 0x8000) ? -INFINITY : INFINITY);
    }
    default: return 0;
  }
}

}  // namespace

int64_t count_non_finite(const Tensor& t, int64_t* first_index, double* first_value) {
  if (!t.defined() || !is_floating(t.dtype()) || t.numel() == 0) return 0;
  const Tensor c = t.detach().to(Device{}).contiguous();
  const int64_t n = c.numel();
  int64_t first = -1, count = 0;
  switch (c.dtype()) {
    case DType::Float32: count = scan(static_cast<const uint32_t*>(c.raw_data()), n, uint32_t{0x7f800000u}, &first); break;
    case DType::Float64:
      count = scan(static_cast<const uint64_t*>(c.raw_data()), n, uint64_t{0x7ff0000000000000ull}, &first);
      break;
    case DType::Float16: count = scan(static_cast<const uint16_t*>(c.raw_data()), n, uint16_t{0x7c00}, &first); break;
    case DType::BFloat16: count = scan(static_cast<const uint16_t*>(c.raw_data()), n, uint16_t{0x7f80}, &first); break;
    default: break;
  }
  if (count && first_index) *first_index = first;
  if (count && first_value) *first_value = value_at(c, first);
  return count;
}

std::string non_finite_summary(const Tensor& t) {
  int64_t first = -1;
  double v = 0;
  const int64_t n = count_non_finite(t, &first, &v);
  if (n == 0) return "";
  std::ostringstream os;
  os << n << " of " << t.numel() << " values are not finite (first: " << v << " at flat index " << first << ")";
  return os.str();
}

void check_all_finite(const Tensor& t, const std::string& what) {
  const std::string s = non_finite_summary(t);
  MOESEG_CHECK(s.empty(), what, ": ", s);
}

std::string printable(const std::string& s, size_t max_len) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_len) {
      out += "...(" + std::to_string(s.size()) + " bytes)";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string non_finite_loss_hint(const Tensor& inputs, const std::vector<std::pair<std::string, Tensor>>& params) {
  const std::string in = non_finite_summary(inputs);
  if (!in.empty()) return "(the input batch is not finite: " + in + "; check the data)";
  for (const auto& [name, p] : params) {
    const std::string s = non_finite_summary(p);
    if (!s.empty())
      return "(parameter '" + name + "' is not finite after the step: " + s +
             "; inputs were finite, so training diverged: lower train.optimizer.lr or set train.grad_clip)";
  }
  return "(inputs and weights are finite: the loss itself overflowed; lower train.optimizer.lr or set train.grad_clip)";
}

}  // namespace moeseg
