// Planted bug #1 for the checker of the checkers: a shared-memory block reduction with the
// __syncthreads() between filling the tile and reading it left out. Built with
// -fsanitize=thread, ThreadSanitizer must report "data race" (ctest: coc_planted_missing_sync_*
// in CMakeLists.txt here). With -DPLANTED_FIX=1 the barrier is there and the same program must
// run clean under ThreadSanitizer and AddressSanitizer. Exit code: 0 when the sums match the CPU.
#include <cstdio>
#include <vector>

#include "kernels/device_helpers.cuh"

#ifndef PLANTED_FIX
#define PLANTED_FIX 0
#endif

constexpr int kBlock = 64;

__global__ void block_sum(const float* in, float* out, int n) {
  __shared__ float tile[kBlock];
  const int t = static_cast<int>(threadIdx.x);
  const long long i = moeseg::dev::global_index_x();
  tile[t] = i < n ? in[i] : 0.f;
#if PLANTED_FIX
  moeseg::dev::sync_threads();
#endif
  // BUG (unless PLANTED_FIX): thread t reads tile[t + s], written by another thread above,
  // with no barrier in between.
  for (int s = kBlock / 2; s > 0; s /= 2) {
    if (t < s) tile[t] += tile[t + s];
    moeseg::dev::sync_threads();
  }
  if (t == 0) out[blockIdx.x] = tile[0];
}

int main() {
  const int n = 1000, grid = (n + kBlock - 1) / kBlock;
  std::vector<float> in(n), out(grid);
  for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i % 13);
  float *d_in = nullptr, *d_out = nullptr;
  cudaMalloc(&d_in, n * sizeof(float));
  cudaMalloc(&d_out, grid * sizeof(float));
  cudaMemcpy(d_in, in.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  MOESEG_LAUNCH(block_sum, grid, kBlock, 0, nullptr)(d_in, d_out, n);
  cudaMemcpy(out.data(), d_out, grid * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_in);
  cudaFree(d_out);
  int bad = 0;
  for (int b = 0; b < grid; ++b) {
    float expect = 0.f;
    for (int i = b * kBlock; i < n && i < (b + 1) * kBlock; ++i) expect += in[i];
    bad += out[b] != expect;
  }
  std::printf("missing_syncthreads (fix=%d): %d of %d block sums differ from the CPU\n", PLANTED_FIX, bad, grid);
  return bad == 0 ? 0 : 1;
}
