// The CUDA-on-CPU kernel table: kernels/cuda/*.cu built by the host compiler (library
// moeseg_cuda_kernels_coc), used by the emulated CUDA device (core/cuda_emulation.h).
#include "kernels/gpu_kernel_table.h"

namespace moeseg {

const GpuKernels& coc_kernel_table() {
  static const GpuKernels table = coc::make_gpu_kernel_table("cuda-on-cpu");
  return table;
}

}  // namespace moeseg
