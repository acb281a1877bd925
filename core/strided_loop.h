// Iteration over two or three strided views of the same logical shape, with the innermost
// dimension as a plain loop (so the compiler vectorises it when strides are 1). Dimensions that
// are contiguous in every operand are merged first, so a contiguous tensor is one flat loop.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

template <size_t N>
struct StridedLoop {
  Shape sizes;                              // merged dims, outermost first
  std::array<Shape, N> strides;             // per operand, in elements

  StridedLoop(const Shape& shape, const std::array<Shape, N>& st) {
    // Drop size-1 dims, then merge dim d into d+1 when stride[d] == stride[d+1]*size[d+1] for all.
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      if (!sizes.empty()) {
        bool mergeable = true;
        for (size_t k = 0; k < N; ++k)
          if (strides[k].back() != st[k][d] * shape[d]) { mergeable = false; break; }
        if (mergeable) {
          sizes.back() *= shape[d];
          for (size_t k = 0; k < N; ++k) strides[k].back() = st[k][d];
          continue;
        }
      }
      sizes.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(st[k][d]);
    }
    if (sizes.empty()) {
      sizes.push_back(1);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(0);
    }
  }

  // fn(offsets array of the row start, inner length, inner strides array) once per inner row.
  template <typename Fn>
  void for_each_row(std::array<int64_t, N> base, Fn&& fn) const {
    const int64_t nd = static_cast<int64_t>(sizes.size());
    const int64_t inner = sizes[nd - 1];
    std::array<int64_t, N> inner_stride;
    for (size_t k = 0; k < N; ++k) inner_stride[k] = strides[k][nd - 1];
    int64_t rows = 1;
    for (int64_t d = 0; d + 1 < nd; ++d) rows *= sizes[d];
    std::vector<int64_t> idx(nd > 1 ? nd - 1 : 0, 0);
    std::array<int64_t, N> off = base;
    for (int64_t r = 0; r < rows; ++r) {
      fn(off, inner, inner_stride);
      for (int64_t d = nd - 2; d >= 0; --d) {   // odometer increment of the outer index
        idx[d]++;
        for (size_t k = 0; k < N; ++k) off[k] += strides[k][d];
        if (idx[d] < sizes[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= strides[k][d] * sizes[d];
        idx[d] = 0;
      }
    }
  }
};

}  // namespace moeseg
