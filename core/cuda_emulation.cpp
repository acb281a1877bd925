// The emulated CUDA device (see core/cuda_emulation.h): guarded host memory handed out as
// "device" memory (core/device_memory_guard.h), copies as memcpy inside a device-access scope. The kernels that run on it are chosen in kernels/gpu_kernels.cpp.
#include "core/cuda_emulation.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/allocator.h"
#include "core/device_memory_guard.h"
#include "core/device_probe.h"
#include "core/error.h"

namespace moeseg {

namespace {

class EmulatedCudaBackend final : public DeviceBackend {
 public:
  void* raw_alloc(size_t nbytes) override {
    // 256 bytes like cudaMalloc, so kernels' vector paths see the same alignment as on a GPU;
    // pages the host cannot touch outside device work (core/device_memory_guard.h).
    return guarded_device_alloc(nbytes);
  }
  void raw_free(void* p) override { guarded_device_free(p); }
  void copy(void* dst, Device, const void* src, Device, size_t nbytes) override {
    DeviceAccessScope device_work;
    if (nbytes) std::memcpy(dst, src, nbytes);
  }
  void memset_zero(void* p, size_t nbytes) override {
    DeviceAccessScope device_work;
    if (nbytes) std::memset(p, 0, nbytes);
  }
};

bool g_emulated = false;

bool env_requests_emulation() {
  const char* v = std::getenv("MOESEG_CUDA_EMULATE");
  return v && *v && std::strcmp(v, "0") != 0;
}

// Start-up registration when the environment asks for it. On a machine with a usable GPU the
// request is ignored (enable_cuda_emulation checks cuda_usable(), not only what is registered,
// because static initialisers of different files run in an unspecified order).
[[maybe_unused]] const bool g_registered_at_startup = env_requests_emulation() && enable_cuda_emulation();

}  // namespace

bool enable_cuda_emulation() {
  if (g_emulated) return true;
  if (device_available(DeviceType::CUDA) || cuda_usable()) return false;   // a real GPU is there
  static EmulatedCudaBackend* backend = new EmulatedCudaBackend();   // leaked like the registry
  register_device_backend(DeviceType::CUDA, backend);
  g_emulated = true;
  return true;
}

bool cuda_emulated() { return g_emulated; }

}  // namespace moeseg
