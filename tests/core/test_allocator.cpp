// The caching allocator reuses freed blocks and tracks peak memory; the device probe falls back
// to the CPU with a notice instead of failing when CUDA is not usable.
#include <doctest/doctest.h>

#include "core/allocator.h"
#include "core/device_probe.h"
#include "core/tensor.h"

using namespace moeseg;

TEST_CASE("freed tensor memory is reused without reaching the backend") {
  auto& alloc = allocator_for(Device{});
  size_t raw_before;
  void* first;
  {
    Tensor a = Tensor::empty({1000, 37});
    first = a.raw_data();
  }
  raw_before = alloc.stats().raw_allocs;
  Tensor b = Tensor::empty({1000, 37});
  CHECK(b.raw_data() == first);
  CHECK(alloc.stats().raw_allocs == raw_before);
  alloc.reset_peak();
  size_t base = alloc.stats().allocated_bytes;
  { Tensor c = Tensor::empty({1 << 20}); }
  CHECK(alloc.stats().peak_allocated_bytes >= base + (4u << 20));
  CHECK(alloc.stats().allocated_bytes == base);
}

TEST_CASE("size classes bound the waste") {
  for (size_t n : {1ul, 63ul, 64ul, 4097ul, 100000ul, 12345678ul}) {
    size_t r = CachingAllocator::round_size(n);
    CHECK(r >= n);
    CHECK(r <= n + n / 8 + 64);
  }
}

TEST_CASE("asking for CUDA without a usable GPU runs on the CPU") {
  if (cuda_usable()) return;   // a machine with a GPU: nothing to check here
  Device d = resolve_device("cuda");
  CHECK(d.is_cpu());
  CHECK(resolve_device("cpu").is_cpu());
  CHECK_THROWS_AS(resolve_device("tpu"), Error);
}
