// Planted bug #2 for the checker of the checkers: an off-by-one bounds check (`i <= n`), so the
// thread with i == n reads and writes one element past the end of cudaMalloc'd buffers (the
// CUDA-on-CPU cudaMalloc allocates exactly the bytes asked for). Built with
// -fsanitize=address, AddressSanitizer must report a heap-buffer-overflow (ctest:
// coc_planted_oob_* in CMakeLists.txt here). With -DPLANTED_FIX=1 the check is `i < n` and the
// same program must run clean under AddressSanitizer and ThreadSanitizer.
#include <cstdio>
#include <vector>

#include "kernels/device_helpers.cuh"

#ifndef PLANTED_FIX
#define PLANTED_FIX 0
#endif

__global__ void scale(const float* in, float* out, int n, float a) {
  const long long i = moeseg::dev::global_index_x();
#if PLANTED_FIX
  if (i < n)
#else
  if (i <= n)  // BUG: one past the end
#endif
    out[i] = a * in[i];
}

int main() {
  const int n = 1000, block = 256, grid = (n + block - 1) / block;  // 1024 threads for 1000 elements
  std::vector<float> in(n), out(n);
  for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i);
  float *d_in = nullptr, *d_out = nullptr;
  cudaMalloc(&d_in, n * sizeof(float));
  cudaMalloc(&d_out, n * sizeof(float));
  cudaMemcpy(d_in, in.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  MOESEG_LAUNCH(scale, grid, block, 0, nullptr)(d_in, d_out, n, 2.f);
  cudaMemcpy(out.data(), d_out, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_in);
  cudaFree(d_out);
  int bad = 0;
  for (int i = 0; i < n; ++i) bad += out[i] != 2.f * in[i];
  std::printf("oob_index (fix=%d): %d of %d elements differ from the CPU\n", PLANTED_FIX, bad, n);
  return bad == 0 ? 0 : 1;
}
