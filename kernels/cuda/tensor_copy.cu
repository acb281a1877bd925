// fill and strided copy of raw elements (1, 2, 4 or 8 bytes, any dtype of that size) on up to
// kMaxCopyDims dims: what Tensor::fill_, copy_ and contiguous() need on the GPU. Tested through
// CUDA-on-CPU against the CPU tensor core (Tensor::contiguous / copy_ / fill_):
// tests/cuda_kernels/test_tensor_copy.cpp.
//
// The host side first coalesces the two layouts (drops size-1 dims, merges a dim into the next
// when both layouts step through them as one), so a contiguous-to-contiguous copy or a fill of a
// contiguous view becomes one flat loop without index arithmetic, and a transposed copy keeps only
// the dims that really differ. The strided kernel turns the row-major logical index into two
// offsets with one div/mod per remaining dim; one thread per element, writes coalesced when dst
// is contiguous. Purely memory-bound: the floor is bytes / bandwidth (2 * n * elem_size).
#include <string>

#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kCopyBlock = 256;

struct CopyGeom {
  int ndim;
  long long sizes[kMaxCopyDims];
  long long dst_strides[kMaxCopyDims];
  long long src_strides[kMaxCopyDims];
};

template <class T>
__global__ void __launch_bounds__(kCopyBlock) fill_kernel(T* dst, long long n, T v) {
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) dst[i] = v;
}

template <class T>
__global__ void __launch_bounds__(kCopyBlock) fill_strided_kernel(T* dst, CopyGeom g, long long n, T v) {
  for (long long t = global_index_x(); t < n; t += grid_stride_x()) {
    long long rem = t, off = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const long long i = rem % g.sizes[d];
      rem /= g.sizes[d];
      off += i * g.dst_strides[d];
    }
    dst[off] = v;
  }
}

template <class T>
__global__ void __launch_bounds__(kCopyBlock) copy_flat_kernel(T* dst, const T* src, long long n) {
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) dst[i] = src[i];
}

template <class T>
__global__ void __launch_bounds__(kCopyBlock) strided_copy_kernel(T* dst, const T* src, CopyGeom g, long long n) {
  for (long long t = global_index_x(); t < n; t += grid_stride_x()) {
    long long rem = t, od = 0, os = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const long long i = rem % g.sizes[d];
      rem /= g.sizes[d];
      od += i * g.dst_strides[d];
      os += i * g.src_strides[d];
    }
    dst[od] = src[os];
  }
}

inline void check_layout(const char* op, const StridedLayout& l, const char* which) {
  MOESEG_CHECK(l.ndim >= 0 && l.ndim <= kMaxCopyDims, op, ": ", which, " has ", l.ndim, " dims (at most ",
               kMaxCopyDims, ")");
  for (int d = 0; d < l.ndim; ++d)
    MOESEG_CHECK(l.sizes[d] >= 0, op, ": ", which, " size ", l.sizes[d], " of dim ", d, " is negative");
}

inline long long layout_numel(const StridedLayout& l) {
  long long n = 1;
  for (int d = 0; d < l.ndim; ++d) n *= l.sizes[d];
  return n;
}

inline void check_dst_strides(const char* op, const StridedLayout& l) {
  for (int d = 0; d < l.ndim; ++d)
    MOESEG_CHECK(l.sizes[d] <= 1 || l.strides[d] != 0, op, ": destination dim ", d, " (size ", l.sizes[d],
                 ") has stride 0: several elements would be written to one address");
}

// Drops size-1 dims and merges dim d into d + 1 where both layouts have stride[d] ==
// stride[d + 1] * size[d + 1]; the element order (row-major over the sizes) is unchanged.
inline CopyGeom coalesce(const StridedLayout& dst, const StridedLayout* src) {
  CopyGeom g{};
  g.ndim = 0;
  for (int d = 0; d < dst.ndim; ++d) {
    if (dst.sizes[d] == 1) continue;
    const long long sd = dst.strides[d], ss = src ? src->strides[d] : 0;
    if (g.ndim > 0) {
      const int last = g.ndim - 1;
      // The previous kept dim (outer) merges into this one (inner) when it steps by exactly
      // this dim's whole extent in both layouts.
      if (g.dst_strides[last] == sd * dst.sizes[d] && g.src_strides[last] == ss * dst.sizes[d]) {
        g.sizes[last] *= dst.sizes[d];
        g.dst_strides[last] = sd;
        g.src_strides[last] = ss;
        continue;
      }
    }
    g.sizes[g.ndim] = dst.sizes[d];
    g.dst_strides[g.ndim] = sd;
    g.src_strides[g.ndim] = ss;
    ++g.ndim;
  }
  return g;
}

template <class T>
void launch_fill(void* dst, const CopyGeom* g, long long n, uint64_t bits, cudaStream_t stream) {
  const T v = static_cast<T>(bits);
  if (!g || (g->ndim == 0) || (g->ndim == 1 && g->dst_strides[0] == 1)) {
    auto* k = &fill_kernel<T>;
    MOESEG_LAUNCH(k, grid_for(n, kCopyBlock), kCopyBlock, 0, stream)(static_cast<T*>(dst), n, v);
  } else {
    auto* k = &fill_strided_kernel<T>;
    MOESEG_LAUNCH(k, grid_for(n, kCopyBlock), kCopyBlock, 0, stream)(static_cast<T*>(dst), *g, n, v);
  }
}

template <class T>
void launch_copy(void* dst, const void* src, const CopyGeom& g, long long n, cudaStream_t stream) {
  if (g.ndim == 0 || (g.ndim == 1 && g.dst_strides[0] == 1 && g.src_strides[0] == 1)) {
    auto* k = &copy_flat_kernel<T>;
    MOESEG_LAUNCH(k, grid_for(n, kCopyBlock), kCopyBlock, 0, stream)(static_cast<T*>(dst), static_cast<const T*>(src), n);
  } else {
    auto* k = &strided_copy_kernel<T>;
    MOESEG_LAUNCH(k, grid_for(n, kCopyBlock), kCopyBlock, 0, stream)(static_cast<T*>(dst), static_cast<const T*>(src),
                                                                     g, n);
  }
}

inline void check_elem_size(const char* op, int elem_size) {
  MOESEG_CHECK(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8, op, ": element size ",
               elem_size, " must be 1, 2, 4 or 8 bytes");
}

inline void dispatch_fill(void* dst, const CopyGeom* g, long long n, int elem_size, uint64_t bits,
                          cudaStream_t stream) {
  switch (elem_size) {
    case 1: launch_fill<uint8_t>(dst, g, n, bits, stream); break;
    case 2: launch_fill<uint16_t>(dst, g, n, bits, stream); break;
    case 4: launch_fill<uint32_t>(dst, g, n, bits, stream); break;
    default: launch_fill<unsigned long long>(dst, g, n, bits, stream); break;
  }
}

}  // namespace detail

void fill(void* dst, int64_t n, int elem_size, uint64_t value_bits, cudaStream_t stream) {
  using namespace detail;
  check_elem_size("fill", elem_size);
  MOESEG_CHECK(n >= 0, "fill: n=", n, " is negative");
  if (n == 0) return;
  dispatch_fill(dst, nullptr, n, elem_size, value_bits, stream);
  check_launch("fill");
}

void fill_strided(void* dst, const StridedLayout& dst_layout, int elem_size, uint64_t value_bits,
                  cudaStream_t stream) {
  using namespace detail;
  check_elem_size("fill_strided", elem_size);
  check_layout("fill_strided", dst_layout, "destination");
  check_dst_strides("fill_strided", dst_layout);
  const long long n = layout_numel(dst_layout);
  if (n == 0) return;
  const CopyGeom g = coalesce(dst_layout, nullptr);
  dispatch_fill(dst, &g, n, elem_size, value_bits, stream);
  check_launch("fill_strided");
}

void strided_copy(void* dst, const StridedLayout& dst_layout, const void* src, const StridedLayout& src_layout,
                  int elem_size, cudaStream_t stream) {
  using namespace detail;
  check_elem_size("strided_copy", elem_size);
  check_layout("strided_copy", dst_layout, "destination");
  check_layout("strided_copy", src_layout, "source");
  bool same = dst_layout.ndim == src_layout.ndim;
  for (int d = 0; same && d < dst_layout.ndim; ++d) same = dst_layout.sizes[d] == src_layout.sizes[d];
  if (!same) {
    std::string a, b;
    for (int d = 0; d < dst_layout.ndim; ++d) a += (d ? ", " : "") + std::to_string(dst_layout.sizes[d]);
    for (int d = 0; d < src_layout.ndim; ++d) b += (d ? ", " : "") + std::to_string(src_layout.sizes[d]);
    MOESEG_CHECK(false, "strided_copy: destination sizes [", a, "] differ from source sizes [", b, "]");
  }
  check_dst_strides("strided_copy", dst_layout);
  const long long n = layout_numel(dst_layout);
  if (n == 0) return;
  const CopyGeom g = coalesce(dst_layout, &src_layout);
  switch (elem_size) {
    case 1: launch_copy<uint8_t>(dst, src, g, n, stream); break;
    case 2: launch_copy<uint16_t>(dst, src, g, n, stream); break;
    case 4: launch_copy<uint32_t>(dst, src, g, n, stream); break;
    default: launch_copy<unsigned long long>(dst, src, g, n, stream); break;
  }
  check_launch("strided_copy");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
