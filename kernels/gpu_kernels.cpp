// Picks the kernel table of the CUDA device in use (see kernels/gpu_kernels.h).
#include "kernels/gpu_kernels.h"

#include "core/allocator.h"
#include "core/cuda_emulation.h"
#include "core/error.h"

namespace moeseg {

const GpuKernels& gpu_kernels() {
  MOESEG_CHECK(device_available(DeviceType::CUDA), "gpu_kernels: no CUDA device (no GPU, and CUDA is not emulated)");
  if (cuda_emulated()) return coc_kernel_table();
#ifdef MOESEG_WITH_CUDA
  return cuda_kernel_table();
#else
  MOESEG_FAIL("gpu_kernels: a CUDA backend is registered but this build has no CUDA kernels");
#endif
}

}  // namespace moeseg
