// The kernel lab's two halves as seen from its main (kernel_lab.cpp): the CUDA-on-CPU validation
// (lab_coc.cpp, always built) and the GPU validation + timing (lab_gpu.cpp, only in builds with
// CUDA: MOESEG_KERNEL_LAB_GPU).
#pragma once
#include <string>

namespace moeseg::lab {

// Each returns the number of (problem, version) checks that failed.
int validate_on_cuda_on_cpu();

#ifdef MOESEG_KERNEL_LAB_GPU
// Empty when there is no usable GPU (no device, no driver); else the device's name.
std::string gpu_name();
struct GpuOptions {
  int repeats = 20;          // timed launches per version (median reported)
  bool baselines = true;     // cuDNN / cuBLAS on the same shapes
  std::string only;          // "conv", "gate", "xent", "frru" or "" (all)
};
int validate_and_time_on_gpu(const GpuOptions& opt);
#endif

}  // namespace moeseg::lab
