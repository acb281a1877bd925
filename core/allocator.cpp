// CPU backend memory (64-byte aligned for AVX-512 loads) and the size-bucketed caching allocator.
#include "core/allocator.h"

#include "core/threading.h"

#include <cstdlib>
#include <cstring>
#include <memory>

namespace moeseg {

namespace {

struct CpuBackend final : DeviceBackend {
  void* raw_alloc(size_t nbytes) override {
    void* p = std::aligned_alloc(64, (nbytes + 63) / 64 * 64);
    MOESEG_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", nbytes, " bytes");
    return p;
  }
  void raw_free(void* p) override { std::free(p); }
  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) override {
    MOESEG_CHECK(dst_dev.is_cpu() && src_dev.is_cpu(), "cpu backend: copy ", src_dev.str(), " -> ",
                 dst_dev.str(), " needs the CUDA backend");
    if (nbytes) std::memcpy(dst, src, nbytes);
  }
  void memset_zero(void* p, size_t nbytes) override {
    if (nbytes) std::memset(p, 0, nbytes);
  }
};

struct Registry {
  std::unique_ptr<CpuBackend> cpu_backend = std::make_unique<CpuBackend>();
  std::unique_ptr<CachingAllocator> cpu = std::make_unique<CachingAllocator>(cpu_backend.get());
  DeviceBackend* cuda_backend = nullptr;
  std::unique_ptr<CachingAllocator> cuda;
};

Registry& registry() {
  static Registry* r = [] {
    configure_cpu_threads();   // every computation allocates first: the threading policy is set here
    return new Registry();     // leaked on purpose: tensors may die during static destruction
  }();
  return *r;
}

}  // namespace

CachingAllocator::~CachingAllocator() { empty_cache(); }

size_t CachingAllocator::round_size(size_t nbytes) {
  if (nbytes == 0) return 64;
  if (nbytes <= 4096) return (nbytes + 63) / 64 * 64;
  // Above 4 KiB: round to 1/8 of the largest power of two not above the size (at most 12.5% waste).
  size_t p = 1;
  while (p * 2 <= nbytes) p <<= 1;
  size_t step = p / 8;
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  size_t size = round_size(nbytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
      stats_.allocated_bytes += size;
      if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
      return p;
    }
  }
  void* p = backend_->raw_alloc(size);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.raw_allocs++;
  stats_.allocated_bytes += size;
  if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
  return p;
}

void CachingAllocator::release(void* p, size_t nbytes) {
  if (!p) return;
  size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  free_[size].push_back(p);
  stats_.allocated_bytes -= size;
  stats_.cached_bytes += size;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, list] : free_)
    for (void* p : list) backend_->raw_free(p);
  free_.clear();
  stats_.cached_bytes = 0;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

void register_device_backend(DeviceType t, DeviceBackend* backend) {
  MOESEG_CHECK(t == DeviceType::CUDA, "register_device_backend: only CUDA can be registered");
  auto& r = registry();
  r.cuda_backend = backend;
  r.cuda = std::make_unique<CachingAllocator>(backend);
}

bool device_available(DeviceType t) { return t == DeviceType::CPU || registry().cuda_backend != nullptr; }

CachingAllocator& allocator_for(Device d) {
  auto& r = registry();
  if (d.is_cpu()) return *r.cpu;
  MOESEG_CHECK(r.cuda != nullptr, "device ", d.str(), " is not available (no CUDA backend in this build or no GPU)");
  return *r.cuda;
}

DeviceBackend& backend_for(Device d) { return *allocator_for(d).backend(); }

}  // namespace moeseg
