// Picks the kernel table of the CUDA device in use (see kernels/gpu_kernels.h).
#include "kernels/gpu_kernels.h"

#include <cstdlib>
#include <string>

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

namespace {
std::string& conv_impl_storage() {
  static std::string impl = [] {
    const char* v = std::getenv("MOESEG_CONV");
    return std::string(v && *v ? v : "ours");
  }();
  return impl;
}
}  // namespace

const std::string& conv2d_impl() {
  const std::string& v = conv_impl_storage();
  MOESEG_CHECK(v == "ours" || v == "cudnn", "MOESEG_CONV: unknown conv2d implementation '", v,
               "' (expected ours or cudnn)");
  return v;
}

void set_conv2d_impl(const std::string& name) {
  MOESEG_CHECK(name == "ours" || name == "cudnn", "set_conv2d_impl: unknown implementation '", name,
               "' (expected ours or cudnn)");
  conv_impl_storage() = name;
}

}  // namespace moeseg
