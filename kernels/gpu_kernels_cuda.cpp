// The GPU kernel table: kernels/cuda/*.cu built by nvcc (library moeseg_cuda_kernels). Compiled
// to nothing in builds without CUDA (the file is globbed into every build).
#ifdef MOESEG_WITH_CUDA
#define MOESEG_CUDA_KERNELS_DEVICE 1
#include "kernels/gpu_kernel_table.h"

namespace moeseg {

const GpuKernels& cuda_kernel_table() {
  static const GpuKernels table = [] {
    GpuKernels t = cuda::make_gpu_kernel_table("cuda");
    add_vendor_kernels(t);
    return t;
  }();
  return table;
}

}  // namespace moeseg
#endif  // MOESEG_WITH_CUDA
