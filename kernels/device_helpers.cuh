// The one header every kernel (.cu) includes. Under nvcc it maps to real CUDA; under the host
// compiler it pulls in the CUDA-on-CPU runtime (kernels/cuda_on_cpu/runtime.h), so the same
// source runs on the CPU under ThreadSanitizer/AddressSanitizer (see docs in runtime.h).
//
// Rules for kernels (they are what makes the CPU run faithful):
//  * every warp primitive goes through the helpers below (warp_shfl_*, warp_ballot, warp_any,
//    warp_all, warp_sync, warp_reduce_*, block_reduce_*): no inline PTX, no legacy non-_sync
//    shuffles, no reliance on implicit warp lock-step;
//  * the warp width is kWarpSize, nowhere a literal 32;
//  * atomics via atomic_add / atomic_max / atomic_cas; barriers via sync_threads();
//  * dynamic shared memory via MOESEG_DYNAMIC_SHARED(T, name), launches via
//    MOESEG_LAUNCH(kernel, grid, block, smem, stream)(args...);
//  * every thread of a block reaches every sync_threads()/block_reduce_*() (no early return
//    before them), and every lane named in a warp mask calls the same primitive.
// Tests: tests/cuda_on_cpu/ (test_cuda_on_cpu; nvcc compile check in planted/CMakeLists.txt).
#pragma once

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define MOESEG_DEVICE __device__ __forceinline__
#define MOESEG_HOST_DEVICE __host__ __device__ __forceinline__
// A template kernel with commas in its arguments is launched through a pointer:
//   auto* k = &my_kernel<float, 256>;  MOESEG_LAUNCH(k, grid, block, 0, stream)(args...);
#define MOESEG_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
// One byte array for every kernel: CUDA rejects two `extern __shared__` declarations of one
// name with different types, so the typed pointer is made from a common untyped one.
#define MOESEG_DYNAMIC_SHARED(T, name)                                  \
  extern __shared__ __align__(16) unsigned char moeseg_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(moeseg_dynamic_smem_)
#else
#include "kernels/cuda_on_cpu/runtime.h"
#define MOESEG_DEVICE inline
#define MOESEG_HOST_DEVICE inline
#define MOESEG_DYNAMIC_SHARED(T, name) T* name = ::moeseg::cuda_on_cpu::dynamic_shared<T>()
#endif

namespace moeseg::dev {

inline constexpr int kWarpSize = 32;
inline constexpr unsigned kFullWarpMask = 0xffffffffu;

// ---- index helpers -----------------------------------------------------------------------------
template <class T>
MOESEG_HOST_DEVICE constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}
MOESEG_DEVICE int popc(unsigned x) { return __popc(x); }

// Threads of a block are numbered x fastest, then y, then z; warps are consecutive runs of
// kWarpSize of those numbers (as on the GPU).
MOESEG_DEVICE unsigned block_thread_count() { return blockDim.x * blockDim.y * blockDim.z; }
MOESEG_DEVICE unsigned linear_thread_id() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
MOESEG_DEVICE int lane_id() { return static_cast<int>(linear_thread_id() % kWarpSize); }
MOESEG_DEVICE int warp_id() { return static_cast<int>(linear_thread_id() / kWarpSize); }
MOESEG_DEVICE int num_warps() { return static_cast<int>(ceil_div(block_thread_count(), unsigned(kWarpSize))); }
// Lanes that exist in the calling thread's warp: all 32 except in a partial last warp.
MOESEG_DEVICE unsigned warp_lanes_mask() {
  const unsigned first = static_cast<unsigned>(warp_id()) * kWarpSize;
  const unsigned n = block_thread_count() - first;
  return n >= unsigned(kWarpSize) ? kFullWarpMask : (1u << n) - 1u;
}
// Global 1-D index and grid stride along x, in 64 bits (grids of > 2^31 elements exist).
MOESEG_DEVICE long long global_index_x() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}
MOESEG_DEVICE long long grid_stride_x() { return static_cast<long long>(gridDim.x) * blockDim.x; }

// ---- barriers ----------------------------------------------------------------------------------
MOESEG_DEVICE void sync_threads() { __syncthreads(); }
MOESEG_DEVICE void warp_sync(unsigned mask) { __syncwarp(mask); }

// ---- warp primitives: every lane named in `mask` must call the same one with the same mask ----
// A lane reading from a lane that is not in `mask` gets an undefined value on the GPU; on the CPU
// it gets all-ones bytes (NaN, -1), so a reduction that uses it shows up in a test.
template <class T>
MOESEG_DEVICE T warp_shfl_idx(unsigned mask, T v, int src_lane, int width = kWarpSize) {
  return __shfl_sync(mask, v, src_lane, width);
}
template <class T>
MOESEG_DEVICE T warp_shfl_xor(unsigned mask, T v, int lane_mask, int width = kWarpSize) {
  return __shfl_xor_sync(mask, v, lane_mask, width);
}
template <class T>
MOESEG_DEVICE T warp_shfl_down(unsigned mask, T v, unsigned delta, int width = kWarpSize) {
  return __shfl_down_sync(mask, v, delta, width);
}
template <class T>
MOESEG_DEVICE T warp_shfl_up(unsigned mask, T v, unsigned delta, int width = kWarpSize) {
  return __shfl_up_sync(mask, v, delta, width);
}
MOESEG_DEVICE unsigned warp_ballot(unsigned mask, bool pred) { return __ballot_sync(mask, pred); }
MOESEG_DEVICE bool warp_any(unsigned mask, bool pred) { return __any_sync(mask, pred) != 0; }
MOESEG_DEVICE bool warp_all(unsigned mask, bool pred) { return __all_sync(mask, pred) != 0; }

// ---- reductions ----------------------------------------------------------------------------------
struct SumOp {
  template <class T>
  MOESEG_HOST_DEVICE T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <class T>
  MOESEG_HOST_DEVICE T operator()(T a, T b) const { return a > b ? a : b; }
};

// Reduces v over lanes [0, n) of the calling warp; every existing lane of the warp must call,
// lanes >= n only pass values along. Tree down to lane 0 (absent lanes are skipped, never read
// as a value), then a broadcast from lane 0.
template <class T, class Op>
MOESEG_DEVICE T warp_reduce_first_n(T v, int n, Op op) {
  const unsigned mask = warp_lanes_mask();
  const int lane = lane_id();
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const T other = warp_shfl_down(mask, v, static_cast<unsigned>(offset));
    if (lane + offset < n) v = op(v, other);
  }
  return warp_shfl_idx(mask, v, 0);
}

// Reduces v over the existing lanes of the calling warp; every one of them gets the result and
// every one of them must call. A full warp uses the xor butterfly; a partial last warp (block
// size not a multiple of kWarpSize) uses warp_reduce_first_n. The order of operations is fixed
// by the source, so a CPU run and a GPU run of this code combine values in the same order.
template <class T, class Op>
MOESEG_DEVICE T warp_reduce(T v, Op op) {
  const unsigned mask = warp_lanes_mask();
  if (mask == kFullWarpMask) {
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = op(v, warp_shfl_xor(mask, v, offset));
    return v;
  }
  return warp_reduce_first_n(v, popc(mask), op);
}
template <class T>
MOESEG_DEVICE T warp_reduce_sum(T v) {
  return warp_reduce(v, SumOp{});
}
template <class T>
MOESEG_DEVICE T warp_reduce_max(T v) {
  return warp_reduce(v, MaxOp{});
}

// Reduces v over the whole block (any shape, <= 1024 threads); every thread gets the result and
// every thread must call. Scratch is one __shared__ array per (T, Op) instantiation, reused by
// consecutive calls without a third barrier: call k+1 writes scratch[warp] only after call k's
// second barrier, which comes after warp 0 read scratch[lane]; and it writes scratch[kWarpSize]
// only after its own first barrier, which every thread reaches after reading call k's result.
// The back-to-back test in tests/cuda_on_cpu runs under ThreadSanitizer to check exactly this.
template <class T, class Op>
MOESEG_DEVICE T block_reduce(T v, Op op) {
  __shared__ T scratch[kWarpSize + 1];
  const int lane = lane_id(), warp = warp_id(), nwarps = num_warps();
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  sync_threads();
  if (warp == 0) {
    T x = scratch[lane < nwarps ? lane : 0];
    x = warp_reduce_first_n(x, nwarps, op);
    if (lane == 0) scratch[kWarpSize] = x;
  }
  sync_threads();
  return scratch[kWarpSize];
}
template <class T>
MOESEG_DEVICE T block_reduce_sum(T v) {
  return block_reduce(v, SumOp{});
}
template <class T>
MOESEG_DEVICE T block_reduce_max(T v) {
  return block_reduce(v, MaxOp{});
}

// ---- atomics (relaxed, device scope) --------------------------------------------------------
MOESEG_DEVICE float atomic_add(float* p, float v) { return atomicAdd(p, v); }
MOESEG_DEVICE double atomic_add(double* p, double v) { return atomicAdd(p, v); }
MOESEG_DEVICE int atomic_add(int* p, int v) { return atomicAdd(p, v); }
MOESEG_DEVICE unsigned atomic_add(unsigned* p, unsigned v) { return atomicAdd(p, v); }
MOESEG_DEVICE unsigned long long atomic_add(unsigned long long* p, unsigned long long v) {
  return atomicAdd(p, v);
}
MOESEG_DEVICE int atomic_max(int* p, int v) { return atomicMax(p, v); }
MOESEG_DEVICE unsigned atomic_max(unsigned* p, unsigned v) { return atomicMax(p, v); }
MOESEG_DEVICE int atomic_cas(int* p, int compare, int v) { return atomicCAS(p, compare, v); }
MOESEG_DEVICE unsigned atomic_cas(unsigned* p, unsigned compare, unsigned v) {
  return atomicCAS(p, compare, v);
}
// float max through the int ordering of IEEE floats (no native float atomicMax in CUDA);
// NaN inputs are not supported.
MOESEG_DEVICE float atomic_max(float* p, float v) {
  return v >= 0.f ? __int_as_float(atomicMax(reinterpret_cast<int*>(p), __float_as_int(v)))
                  : __uint_as_float(atomicMin(reinterpret_cast<unsigned*>(p), __float_as_uint(v)));
}

}  // namespace moeseg::dev
