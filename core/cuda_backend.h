// The CUDA DeviceBackend (core/allocator.h): device memory through cudaMalloc / cudaFree, copies
// through cudaMemcpy, zeroing through cudaMemset, every call checked with CUDA_CHECK.
// It registers itself for DeviceType::CUDA at program start-up (a static initializer in
// cuda_backend.cpp), and only when cuda_usable(): on a machine without a GPU (or driver) nothing
// is registered, allocator_for(cuda) throws, and resolve_device("cuda") prints its one-line
// notice and returns the CPU — a CUDA build behaves like a CPU build there.
// Compiled only when the build has CUDA (MOESEG_HAVE_CUDA in CMake, MOESEG_WITH_CUDA in code).
// Tests: tests/core/test_cuda_backend.cpp.
//
// Streams: one stream per device, and for now that stream is the legacy default stream (nullptr).
// Kernel launchers take a cudaStream_t and callers pass cuda_stream(device); because the copies
// here are synchronous cudaMemcpy on the same default stream, a D2H copy after a kernel sees its
// result without an explicit synchronise. Moving to non-blocking streams later means: copies become
// cudaMemcpyAsync on cuda_stream(dev) (+ a stream sync for D2H into pageable memory) and the
// caching allocator must record the stream a block was last used on before reusing it.
//
// Devices: one backend serves DeviceType::CUDA; it allocates on the current device (device 0
// unless the caller set another). Per-index allocators for multi-GPU are not done yet.
#pragma once
#include <cuda_runtime_api.h>

#include "core/allocator.h"
#include "core/device.h"

namespace moeseg {

// Registers the CUDA backend when cuda_usable() and none is registered yet; returns whether a CUDA
// backend is registered afterwards. Runs once at start-up; calling it again is harmless.
bool register_cuda_backend_if_usable();

// The CUDA backend object (also usable directly in tests; it works only where a GPU does).
DeviceBackend& cuda_backend();

// The stream work for `d` is issued on: the default stream for now (see above).
cudaStream_t cuda_stream(Device d);

}  // namespace moeseg

// Referenced from the link line (top CMakeLists.txt: LINKER:--undefined=...) so that the linker
// pulls cuda_backend.o out of the static moeseg_lib even though no code calls into it: without
// that the start-up registration would silently be dropped from every binary.
extern "C" int moeseg_cuda_backend_anchor;
