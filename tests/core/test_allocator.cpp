// The caching allocator reuses freed blocks (on the CPU and on a CUDA device) and tracks peak
// memory; the device probe falls back to the CPU instead of failing when CUDA is not usable, and
// gives the emulated device or the GPU when there is one.
#include <doctest/doctest.h>

#include "core/allocator.h"
#include "core/cuda_emulation.h"
#include "core/device_probe.h"
#include "core/tensor.h"
#include "support/skip.h"

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

// One branch per kind of machine; each says what "cuda" must resolve to there. (The notices on
// stderr are checked in test_cuda_backend.cpp and tests/device/.)
TEST_CASE("resolve_device: cuda is the GPU when usable, the emulated device when emulated, else the CPU") {
  const Device cuda{DeviceType::CUDA, 0};
  CHECK(resolve_device("cpu").is_cpu());
  CHECK_THROWS_AS(resolve_device("tpu"), Error);
  const Device d = resolve_device("cuda");
  if (cuda_emulated()) {
    CHECK_FALSE(cuda_usable());   // never emulated in front of a GPU
    CHECK(device_available(DeviceType::CUDA));
    CHECK(d == cuda);
  } else if (cuda_usable()) {
    CHECK(built_with_cuda());
    CHECK(device_available(DeviceType::CUDA));
    CHECK(d == cuda);
    CHECK(resolve_device("cuda:0") == cuda);
  } else {
    CHECK_FALSE(device_available(DeviceType::CUDA));
    CHECK(d.is_cpu());
    CHECK(resolve_device("cuda:1").is_cpu());
  }
}

// The device allocator caches like the CPU's: on the emulated device or a GPU.
TEST_CASE("the CUDA allocator reuses freed device blocks") {
  if (!device_available(DeviceType::CUDA)) {
    moeseg::testing::skip("no CUDA device (no usable GPU and MOESEG_CUDA_EMULATE unset)");
    return;
  }
  const Device cuda{DeviceType::CUDA, 0};
  auto& alloc = allocator_for(cuda);
  CHECK(&alloc != &allocator_for(Device{}));
  void* first;
  {
    Tensor a = Tensor::empty({1000, 37}, DType::Float32, cuda);
    first = a.raw_data();
  }
  const size_t raw_before = alloc.stats().raw_allocs;
  Tensor b = Tensor::empty({1000, 37}, DType::Float32, cuda);
  CHECK(b.raw_data() == first);
  CHECK(alloc.stats().raw_allocs == raw_before);
  CHECK(alloc.stats().allocated_bytes >= size_t(1000) * 37 * 4);
}
