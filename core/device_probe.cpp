// CUDA availability probe. Only this file (and the CUDA backend, later) includes the CUDA runtime.
#include "core/device_probe.h"

#include "core/allocator.h"
#include "core/cuda_emulation.h"

#include <cstdio>

#ifdef MOESEG_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace moeseg {

bool built_with_cuda() {
#ifdef MOESEG_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_usable(std::string* why) {
#ifdef MOESEG_WITH_CUDA
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    if (why) *why = err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device";
    return false;
  }
  return true;
#else
  if (why) *why = "this build has no CUDA backend (configure with -DMOESEG_CUDA=ON on a machine with nvcc)";
  return false;
#endif
}

Device resolve_device(const std::string& requested) {
  Device d = Device::parse(requested);
  if (d.is_cpu()) return d;
  std::string why;
  if (cuda_emulated()) {
    static bool said = false;
    if (!said)
      std::fprintf(stderr, "moeseg: %s is emulated: no GPU is used, the CUDA kernels run on the CPU through "
                   "CUDA-on-CPU (MOESEG_CUDA_EMULATE; slow, for testing)\n", requested.c_str());
    said = true;
    return d;
  }
  if (!cuda_usable(&why) || !device_available(DeviceType::CUDA)) {
    if (why.empty()) why = "the CUDA kernels are not part of this build yet";
    std::fprintf(stderr, "moeseg: %s requested but not usable (%s); running on the CPU\n", requested.c_str(), why.c_str());
    return Device{};
  }
  return d;
}

}  // namespace moeseg
