// Planted bug #3: an out-of-bounds index into a static __shared__ array (a stencil reading
// tile[t + 1] without a bounds check). On the host `__shared__` is a static array, which
// AddressSanitizer guards like any global: it must report a global-buffer-overflow
// (ctest: coc_planted_oob_shared_*). With -DPLANTED_FIX=1 the neighbour index is clamped.
#include <cstdio>
#include <vector>

#include "kernels/device_helpers.cuh"

#ifndef PLANTED_FIX
#define PLANTED_FIX 0
#endif

constexpr int kBlock = 32;

__global__ void forward_diff(const float* in, float* out, int n) {
  __shared__ float tile[kBlock];
  const int t = static_cast<int>(threadIdx.x);
  const long long i = moeseg::dev::global_index_x();
  tile[t] = i < n ? in[i] : 0.f;
  moeseg::dev::sync_threads();
#if PLANTED_FIX
  const float next = t + 1 < kBlock ? tile[t + 1] : tile[t];
#else
  const float next = tile[t + 1];  // BUG: t == kBlock - 1 reads past the tile
#endif
  if (i < n) out[i] = next - tile[t];
}

int main() {
  const int n = 64, grid = n / kBlock;
  std::vector<float> in(n), out(n);
  for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i * i);
  float *d_in = nullptr, *d_out = nullptr;
  cudaMalloc(&d_in, n * sizeof(float));
  cudaMalloc(&d_out, n * sizeof(float));
  cudaMemcpy(d_in, in.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  MOESEG_LAUNCH(forward_diff, grid, kBlock, 0, nullptr)(d_in, d_out, n);
  cudaMemcpy(out.data(), d_out, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_in);
  cudaFree(d_out);
  int bad = 0;
  for (int i = 0; i < n; ++i) {
    const bool last = i % kBlock == kBlock - 1;
    bad += out[i] != (last ? 0.f : in[i + 1] - in[i]);
  }
  std::printf("oob_shared (fix=%d): %d of %d elements differ from the CPU\n", PLANTED_FIX, bad, n);
  return bad == 0 ? 0 : 1;
}
