// CUDA DeviceBackend and its start-up registration (see core/cuda_backend.h for the design:
// default stream per device, registration only when a GPU is usable). Host code only — compiled by
// the host compiler against the CUDA runtime API; the kernels live in kernels/cuda/.
// The whole file is guarded so that a build without CUDA that globs it compiles it to nothing
// (the top CMakeLists.txt also leaves it out of such builds).
#ifdef MOESEG_WITH_CUDA
#include "core/cuda_backend.h"

#include "core/cuda_check.h"
#include "core/device_probe.h"

extern "C" {
int moeseg_cuda_backend_anchor = 0;
}

namespace moeseg {

namespace {

class CudaBackend final : public DeviceBackend {
 public:
  void* raw_alloc(size_t nbytes) override {
    void* p = nullptr;
    // cudaMalloc returns 256-byte aligned memory: enough for every vector access in the kernels.
    // On out-of-memory the caller (CachingAllocator) sees a moeseg::Error naming cudaMalloc.
    CUDA_CHECK(cudaMalloc(&p, nbytes));
    return p;
  }

  void raw_free(void* p) override {
    if (!p) return;
    const cudaError_t e = cudaFree(p);
    // During process exit the runtime may already be torn down; the memory goes with the context
    // then, and throwing from a destructor path would only turn a clean exit into std::terminate.
    if (e == cudaErrorCudartUnloading) return;
    CUDA_CHECK(e);
  }

  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) override {
    if (nbytes == 0) return;
    MOESEG_CHECK(dst != nullptr && src != nullptr, "cuda backend: copy ", src_dev.str(), " -> ", dst_dev.str(),
                 " of ", nbytes, " bytes with a null pointer");
    if (dst_dev.is_cuda() && src_dev.is_cuda() && dst_dev.index != src_dev.index) {
      // Different GPUs: cudaMemcpyPeer goes over NVLink/PCIe directly or stages through the host.
      CUDA_CHECK(cudaMemcpyPeer(dst, dst_dev.index, src, src_dev.index, nbytes));
      return;
    }
    // Explicit kinds (not cudaMemcpyDefault) so a pointer on the wrong side fails loudly with
    // cudaErrorInvalidValue instead of being copied the way UVA guesses.
    cudaMemcpyKind kind = cudaMemcpyHostToHost;
    if (src_dev.is_cpu() && dst_dev.is_cuda()) kind = cudaMemcpyHostToDevice;
    else if (src_dev.is_cuda() && dst_dev.is_cpu()) kind = cudaMemcpyDeviceToHost;
    else if (src_dev.is_cuda() && dst_dev.is_cuda()) kind = cudaMemcpyDeviceToDevice;
    // Synchronous with respect to the host for pageable memory, and ordered after earlier work on
    // the default stream — exactly what Tensor::to(cpu) needs before it returns.
    CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
  }

  void memset_zero(void* p, size_t nbytes) override {
    if (nbytes == 0) return;
    CUDA_CHECK(cudaMemset(p, 0, nbytes));
  }
};

CudaBackend& backend_instance() {
  // Leaked like the allocator registry: tensors may be released during static destruction.
  static CudaBackend* b = new CudaBackend();
  return *b;
}

// Start-up registration. On a GPU-less machine cuda_usable() asks cudaGetDeviceCount once, gets an
// error (no driver / no device) and nothing is registered.
[[maybe_unused]] const bool g_registered_at_startup = register_cuda_backend_if_usable();

}  // namespace

bool register_cuda_backend_if_usable() {
  if (device_available(DeviceType::CUDA)) return true;
  if (!cuda_usable()) return false;
  register_device_backend(DeviceType::CUDA, &backend_instance());
  return true;
}

DeviceBackend& cuda_backend() { return backend_instance(); }

cudaStream_t cuda_stream(Device d) {
  MOESEG_CHECK(d.is_cuda(), "cuda_stream: ", d.str(), " is not a CUDA device");
  return nullptr;  // the default stream (see cuda_backend.h)
}

}  // namespace moeseg
#endif  // MOESEG_WITH_CUDA
