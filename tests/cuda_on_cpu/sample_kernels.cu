// Sample kernels for the CUDA-on-CPU runtime tests, written once for both compilers:
// test_runtime.cpp #includes this file (host compiler + runtime), and the nvcc check in
// planted/CMakeLists.txt compiles it for sm_80/sm_90 (`nvcc -std=c++20 -arch=sm_80 -c`).
// They use only kernels/device_helpers.cuh: no raw warp intrinsics, no literal warp width.
#include "kernels/device_helpers.cuh"

namespace moeseg::coc_samples {

using namespace moeseg::dev;

__global__ void vector_add(const float* a, const float* b, float* c, int n) {
  const long long i = global_index_x();
  if (i < n) c[i] = a[i] + b[i];
}

// Tiled shared-memory tree reduction: one partial sum per block. BLOCK need not be a power of
// two (96): the tree runs over the next power of two and skips partners past the tile.
template <int BLOCK>
__global__ void reduce_tiled(const float* in, float* partial, int n) {
  __shared__ float tile[BLOCK];
  const int t = static_cast<int>(threadIdx.x);
  float acc = 0.f;
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) acc += in[i];
  tile[t] = acc;
  sync_threads();
  int pow2 = 1;
  while (pow2 < BLOCK) pow2 *= 2;
  for (int s = pow2 / 2; s > 0; s /= 2) {
    if (t < s && t + s < BLOCK) tile[t] += tile[t + s];
    sync_threads();
  }
  if (t == 0) partial[blockIdx.x] = tile[0];
}

// Warp-shuffle reduction through block_reduce_sum (any block size). Also reduces the max and
// the sum a second time back to back, to exercise the reuse of block_reduce's scratch.
template <class T>
__global__ void reduce_shuffle(const T* in, T* partial_sum, T* partial_max, T* partial_sum2, long long n) {
  T acc = 0, mx = T(-1e9);
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) {
    acc += in[i];
    mx = in[i] > mx ? in[i] : mx;
  }
  const T s = block_reduce_sum(acc);
  const T m = block_reduce_max(mx);
  const T s2 = block_reduce_sum(acc);
  if (linear_thread_id() == 0) {
    partial_sum[blockIdx.x] = s;
    partial_max[blockIdx.x] = m;
    partial_sum2[blockIdx.x] = s2;
  }
}

// Per-thread results of the warp primitives, lane by lane. The mask is the lanes that exist in
// the warp (a partial last warp when the block size is not a multiple of kWarpSize).
// out has kProbeFields entries per thread.
constexpr int kProbeFields = 12;
__global__ void warp_probe(unsigned* out) {
  const unsigned tid = linear_thread_id();
  const unsigned mask = warp_lanes_mask();
  const int lane = lane_id();
  const unsigned v = 1000u * static_cast<unsigned>(warp_id()) + static_cast<unsigned>(lane);
  unsigned* o = out + static_cast<size_t>(tid) * kProbeFields;
  o[0] = warp_shfl_idx(mask, v, (lane + 3) % kWarpSize);  // may name an absent lane
  o[1] = warp_shfl_xor(mask, v, 1);
  o[2] = warp_shfl_xor(mask, v, 16);
  o[3] = warp_shfl_down(mask, v, 5u);
  o[4] = warp_shfl_up(mask, v, 2u);
  o[5] = warp_shfl_idx(mask, v, 2, 8);                   // width 8: lane 2 of each segment
  o[6] = warp_shfl_down(mask, v, 3u, 8);                 // stays inside the 8-lane segment
  o[7] = warp_ballot(mask, lane % 3 == 0);
  o[8] = warp_any(mask, lane == 7) ? 1u : 0u;
  o[9] = warp_all(mask, lane < 40) ? 1u : 0u;
  o[10] = warp_all(mask, lane != 4) ? 1u : 0u;
  // Two disjoint half-warp groups, each with its own mask, at the same time.
  const unsigned half = lane < kWarpSize / 2 ? (mask & 0x0000ffffu) : (mask & 0xffff0000u);
  o[11] = warp_shfl_idx(half, v, lane < kWarpSize / 2 ? 0 : kWarpSize / 2);
}

// Atomics from every thread of every block.
__global__ void atomics_all(int* counter, float* fsum, double* dsum, int* imax, unsigned long long* usum) {
  const long long g = global_index_x();
  atomic_add(counter, 1);
  atomic_add(fsum, static_cast<float>(g % 7));
  atomic_add(dsum, 0.5 * static_cast<double>(g));
  atomic_max(imax, static_cast<int>((g * 7919) % 100003));
  atomic_add(usum, static_cast<unsigned long long>(g));
}

// Dynamic shared memory: each block reverses its segment through shared memory.
__global__ void reverse_segments(const float* in, float* out, int n) {
  MOESEG_DYNAMIC_SHARED(float, buf);
  const int t = static_cast<int>(threadIdx.x);
  const int b = static_cast<int>(blockDim.x);
  const long long base = static_cast<long long>(blockIdx.x) * b;
  const int len = static_cast<int>(n - base < b ? n - base : b);
  if (t < len) buf[t] = in[base + t];
  sync_threads();
  if (t < len) out[base + t] = buf[len - 1 - t];
}

// 3-D grid and block: every element is written once with its own coordinates.
__global__ void index3d(int* out, int nx, int ny, int nz) {
  const int x = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int y = static_cast<int>(blockIdx.y * blockDim.y + threadIdx.y);
  const int z = static_cast<int>(blockIdx.z * blockDim.z + threadIdx.z);
  if (x < nx && y < ny && z < nz) out[(z * ny + y) * nx + x] += 1 + x + 100 * y + 10000 * z;
}

}  // namespace moeseg::coc_samples

namespace moeseg::coc_samples {

// Launches every sample kernel once. The CPU tests do not call it: it is here so that nvcc
// instantiates the template kernels (the compile check prints their ptxas lines) and so that
// both compilers check MOESEG_LAUNCH, including the pointer form a template kernel with commas
// in its arguments needs.
void launch_all_samples(float* f, int* i, double* d, unsigned* u, unsigned long long* ull, int n,
                        cudaStream_t stream) {
  MOESEG_LAUNCH(vector_add, ceil_div(n, 256), 256, 0, stream)(f, f, f, n);
  MOESEG_LAUNCH(reduce_tiled<32>, 4, 32, 0, stream)(f, f, n);
  MOESEG_LAUNCH(reduce_tiled<96>, 4, 96, 0, stream)(f, f, n);
  MOESEG_LAUNCH(reduce_tiled<256>, 4, 256, 0, stream)(f, f, n);
  auto* reduce_f = &reduce_shuffle<float>;
  MOESEG_LAUNCH(reduce_f, 4, 96, 0, stream)(f, f, f, f, static_cast<long long>(n));
  MOESEG_LAUNCH(reduce_shuffle<int>, 4, 50, 0, stream)(i, i, i, i, static_cast<long long>(n));
  MOESEG_LAUNCH(reduce_shuffle<double>, 4, 1000, 0, stream)(d, d, d, d, static_cast<long long>(n));
  MOESEG_LAUNCH(warp_probe, 1, 50, 0, stream)(u);
  MOESEG_LAUNCH(atomics_all, 4, 96, 0, stream)(i, f, d, i, ull);
  MOESEG_LAUNCH(reverse_segments, 4, 64, 64 * sizeof(float), stream)(f, f, n);
  MOESEG_LAUNCH(index3d, dim3(3, 2, 2), dim3(16, 4, 2), 0, stream)(i, n, n, n);
}

}  // namespace moeseg::coc_samples
