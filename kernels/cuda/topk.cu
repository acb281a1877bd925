// Top-k along the last dim (kernels/reduce.h topk with dim = -1, largest or smallest): sorted
// values and int64 indices, the CPU's stable order (ties: lower index first; -0 == +0; NaN above
// every number), and the backward scatter of the value gradients. Tested through CUDA-on-CPU
// against the CPU op and its autograd: tests/cuda_kernels/test_topk.cpp.
//
// Forward: one warp per row, k selection rounds. Every element becomes a 64-bit key whose
// unsigned order is the CPU's rank order (see topk_key), unique per row because the index is in
// the low word; round j takes the warp max of the keys below round j-1's key. Exact, deterministic
// and atomic-free; O(k * cols / 32) per row, which suits the MoE gates it is for (cols = experts,
// k <= a few) and rows of a few thousand. A radix select would be the tool for k in the hundreds.
// Backward: one thread per element of grad_x gathers over the row's k indices (the CPU's += in k
// order, so even repeated indices give the same float sum).
#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kTopkBlock = 128;   // 4 rows per block
constexpr int kTopkBackwardBlock = 256;

// High word: the value made monotone as unsigned (flip every bit of a negative, the sign bit of a
// positive), with -0 read as +0 and every NaN as 0xffffffff, above +inf (0xff800000); inverted
// for smallest, which puts NaN at 0 (last). Low word: 0xfffffffe - index, so of equal values the
// lower index has the larger key. Every real key is > 0 (index < 2^31) and < ~0ull.
MOESEG_DEVICE unsigned long long topk_key(float v, long long i, bool largest) {
  unsigned mono;
  if (v != v) {
    mono = 0xffffffffu;
  } else {
    const unsigned b = v == 0.f ? 0u : __float_as_uint(v);
    mono = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  }
  if (!largest) mono = ~mono;
  return (static_cast<unsigned long long>(mono) << 32) | (0xfffffffeu - static_cast<unsigned>(i));
}

__global__ void __launch_bounds__(kTopkBlock)
topk_forward_kernel(const float* x, long long rows, long long cols, int k, bool largest, float* values,
                    int64_t* indices) {
  const long long warps_total = grid_stride_x() / kWarpSize;
  const int lane = lane_id();
  // Warp-uniform loop: every lane of a warp runs the same rows and rounds (warp_reduce below).
  for (long long row = global_index_x() / kWarpSize; row < rows; row += warps_total) {
    const float* xr = x + row * cols;
    unsigned long long prev = ~0ull;
    for (int j = 0; j < k; ++j) {
      unsigned long long best = 0;   // below every real key
      for (long long c = lane; c < cols; c += kWarpSize) {
        const unsigned long long key = topk_key(xr[c], c, largest);
        if (key < prev && key > best) best = key;
      }
      best = warp_reduce_max(best);
      prev = best;
      if (lane == 0) {
        const long long c = static_cast<long long>(0xfffffffeu - static_cast<unsigned>(best & 0xffffffffu));
        values[row * k + j] = xr[c];
        indices[row * k + j] = c;
      }
    }
  }
}

__global__ void __launch_bounds__(kTopkBackwardBlock)
topk_backward_kernel(const float* gv, const int64_t* idx, long long rows, long long cols, int k, float* gx) {
  const long long total = rows * cols;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long row = t / cols, c = t - row * cols;
    const float* g = gv + row * k;
    const int64_t* ir = idx + row * k;
    float acc = 0.f;
    for (int j = 0; j < k; ++j)
      if (ir[j] == c) acc += g[j];
    gx[t] = acc;
  }
}

inline void topk_check(const char* op, int64_t rows, int64_t cols, int k) {
  MOESEG_CHECK(rows >= 1 && cols >= 1 && cols < (1ll << 31), op, ": input [", rows, ", ", cols,
               "] must be non-empty with fewer than 2^31 columns");
  MOESEG_CHECK(k >= 1 && k <= cols, op, ": k=", k, " out of range for input [", rows, ", ", cols, "]");
}

}  // namespace detail

void topk_forward(const float* x, int64_t rows, int64_t cols, int k, bool largest, float* values, int64_t* indices,
                  cudaStream_t stream) {
  using namespace detail;
  topk_check("topk_forward", rows, cols, k);
  const int rows_per_block = kTopkBlock / kWarpSize;
  MOESEG_LAUNCH(topk_forward_kernel, grid_for(rows, rows_per_block, 4096), kTopkBlock, 0, stream)(
      x, static_cast<long long>(rows), static_cast<long long>(cols), k, largest, values, indices);
  check_launch("topk_forward");
}

void topk_backward(const float* grad_values, const int64_t* indices, int64_t rows, int64_t cols, int k,
                   float* grad_x, cudaStream_t stream) {
  using namespace detail;
  topk_check("topk_backward", rows, cols, k);
  MOESEG_LAUNCH(topk_backward_kernel, grid_for(rows * cols, kTopkBackwardBlock), kTopkBackwardBlock, 0, stream)(
      grad_values, indices, static_cast<long long>(rows), static_cast<long long>(cols), k, grad_x);
  check_launch("topk_backward");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
