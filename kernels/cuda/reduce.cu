// Reductions built on block_reduce (kernels/device_helpers.cuh): the sum of a buffer and the
// row-wise max / argmax of a [rows, cols] matrix (first maximal index on ties, as torch.argmax
// and the CPU backend's argmax). Tested through CUDA-on-CPU against kernels/reduce.h:
// tests/cuda_kernels/test_reduce.cpp.
//
// sum_all: two levels, no atomics: a capped grid of blocks each reduces a grid-stride slice into
// one double partial, then one block sums the partials in a fixed order, so the result depends
// only on n (deterministic). Memory-bound: 4 bytes per element read once (a [2, 38, 480, 640]
// tensor: 93 MB, 28 us at 3.35 TB/s); double accumulation costs nothing at that rate on an H100.
// rowwise_max_argmax: one block per row (grid-stride over rows past 65535 is not needed: rows go
// in gridDim.x, up to 2^31-1); the (value, index) pair travels through the warp shuffles as one
// 64-bit key (see pack_key). Rows of a few columns waste most of a block; it is meant for rows of >= 64.
#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kSumBlock = 256;
constexpr int kSumMaxBlocks = 256;
constexpr int kArgmaxBlock = 128;

inline int sum_blocks(long long n) { return grid_for(n, kSumBlock, kSumMaxBlocks); }

__global__ void __launch_bounds__(kSumBlock) sum_partial_kernel(const float* x, long long n, double* partial) {
  double acc = 0.0;
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) acc += x[i];
  acc = block_reduce_sum(acc);
  if (linear_thread_id() == 0) partial[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kSumBlock) sum_final_kernel(const double* partial, int blocks, float* out) {
  double acc = 0.0;
  for (int j = static_cast<int>(linear_thread_id()); j < blocks; j += static_cast<int>(blockDim.x)) acc += partial[j];
  acc = block_reduce_sum(acc);
  if (linear_thread_id() == 0) out[0] = static_cast<float>(acc);
}

// (value, index) packed into one 64-bit key whose unsigned order is "larger value, then smaller
// index": the float's bits made monotone (flip all bits of negatives, the sign bit of positives)
// in the high word, ~index in the low word. A plain max of keys is then the first maximum, and
// it moves through the warp shuffles as one 64-bit value (nvcc's __shfl_sync takes no structs).
// max is commutative and associative, so the reduction order does not change the answer.
// NaN rows are not supported (a NaN key orders above or below every number by its sign bit).
MOESEG_DEVICE unsigned long long pack_key(float v, long long i) {
  const unsigned b = __float_as_uint(v);
  const unsigned mono = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return (static_cast<unsigned long long>(mono) << 32) | (0xffffffffu - static_cast<unsigned>(i));
}
MOESEG_DEVICE float key_value(unsigned long long k) {
  const unsigned mono = static_cast<unsigned>(k >> 32);
  return __uint_as_float((mono & 0x80000000u) ? (mono & 0x7fffffffu) : ~mono);
}
MOESEG_DEVICE long long key_index(unsigned long long k) {
  return static_cast<long long>(0xffffffffu - static_cast<unsigned>(k & 0xffffffffu));
}

__global__ void __launch_bounds__(kArgmaxBlock)
rowwise_max_argmax_kernel(const float* x, long long cols, float* max_out, int64_t* argmax_out) {
  const long long row = blockIdx.x;
  const float* r = x + row * cols;
  const int tid = static_cast<int>(linear_thread_id());
  // Key 0 is below every real element's key (its low word would be index 2^32-1 >= cols).
  unsigned long long best = 0;
  for (long long c = tid; c < cols; c += blockDim.x) {
    const unsigned long long k = pack_key(r[c], c);
    best = k > best ? k : best;
  }
  best = block_reduce_max(best);
  if (tid == 0) {
    max_out[row] = key_value(best);
    argmax_out[row] = key_index(best);
  }
}

}  // namespace detail

size_t sum_workspace_floats(int64_t n) { return static_cast<size_t>(detail::sum_blocks(n)) * 2; }

void sum_all(const float* x, int64_t n, float* out, float* workspace, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(n >= 1, "sum_all: n=", n, " must be >= 1");
  MOESEG_CHECK(is_aligned16(workspace), "sum_all: workspace must be 16-byte aligned");
  const int blocks = sum_blocks(n);
  double* partial = reinterpret_cast<double*>(workspace);
  MOESEG_LAUNCH(sum_partial_kernel, blocks, kSumBlock, 0, stream)(x, static_cast<long long>(n), partial);
  check_launch("sum_all (partials)");
  MOESEG_LAUNCH(sum_final_kernel, 1, kSumBlock, 0, stream)(partial, blocks, out);
  check_launch("sum_all (final)");
}

void rowwise_max_argmax(const float* x, int64_t rows, int64_t cols, float* max_out, int64_t* argmax_out,
                        cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(rows >= 1 && cols >= 1 && rows < (1ll << 31) && cols < (1ll << 32) - 1, "rowwise_max_argmax: rows=", rows,
               " cols=", cols, " must be in [1, 2^31)");
  MOESEG_LAUNCH(rowwise_max_argmax_kernel, static_cast<unsigned>(rows), kArgmaxBlock, 0, stream)(
      x, static_cast<long long>(cols), max_out, argmax_out);
  check_launch("rowwise_max_argmax");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
