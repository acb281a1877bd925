// Memory for tensors: one caching allocator per device. Freed blocks are kept in per-size free
// lists and handed out again, so training steps that allocate the same shapes every iteration
// stop paying for malloc/free (and, on CUDA, for cudaMalloc's implicit synchronisation).
// Device backends (CUDA, later) register themselves through DeviceBackend; the CPU one is built in.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "core/device.h"

namespace moeseg {

// What a device offers to the tensor core: raw memory and copies. Kernels live in kernels/.
struct DeviceBackend {
  virtual ~DeviceBackend() = default;
  virtual void* raw_alloc(size_t nbytes) = 0;   // throws moeseg::Error on failure
  virtual void raw_free(void* p) = 0;
  // Copies nbytes between (possibly different) devices; one side is this backend's device.
  virtual void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) = 0;
  virtual void memset_zero(void* p, size_t nbytes) = 0;
};

struct AllocatorStats {
  size_t allocated_bytes = 0;       // in live tensors
  size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes
  size_t cached_bytes = 0;          // held in free lists
  size_t raw_allocs = 0;            // calls that reached the backend
};

class CachingAllocator {
 public:
  explicit CachingAllocator(DeviceBackend* backend) : backend_(backend) {}
  ~CachingAllocator();
  void* allocate(size_t nbytes);
  void release(void* p, size_t nbytes);
  void empty_cache();
  AllocatorStats stats() const;
  void reset_peak();
  DeviceBackend* backend() const { return backend_; }

  // Requests are rounded up so that nearby sizes share a free list.
  static size_t round_size(size_t nbytes);

 private:
  DeviceBackend* backend_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

// The allocator of a device; throws if the device has no backend (e.g. a CPU-only build asked for CUDA).
CachingAllocator& allocator_for(Device d);
DeviceBackend& backend_for(Device d);
void register_device_backend(DeviceType t, DeviceBackend* backend);
bool device_available(DeviceType t);

}  // namespace moeseg
