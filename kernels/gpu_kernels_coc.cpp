// The CUDA-on-CPU kernel table: kernels/cuda/*.cu built by the host compiler (library
// moeseg_cuda_kernels_coc), used by the emulated CUDA device (core/cuda_emulation.h). Building
// the table also hooks the runtime's launches and memory operations to the device memory guard
// (core/device_memory_guard.h), so that kernels may touch the emulated device memory and host
// code may not.
#include "core/device_memory_guard.h"
#include "kernels/gpu_kernel_table.h"

namespace moeseg {

const GpuKernels& coc_kernel_table() {
  static const GpuKernels table = [] {
    cuda_on_cpu::set_device_work_hooks(&device_access_begin, &device_access_end);
    return coc::make_gpu_kernel_table("cuda-on-cpu");
  }();
  return table;
}

}  // namespace moeseg
