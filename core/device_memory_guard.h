// Guarded memory for the emulated CUDA device: host code cannot touch it.
//
// On a GPU, host code that dereferences a device pointer crashes; on the emulated device
// (core/cuda_emulation.h) device memory used to be ordinary host memory, so such a bug passed
// every test and waited for the first real GPU. Here every emulated device allocation is carved
// out of one reserved address range (the arena) whose pages are PROT_NONE except while device
// work runs: a kernel launch of the CUDA-on-CPU runtime, a device copy or a device fill, each
// wrapped in a DeviceAccessScope. A host access outside a scope faults; the SIGSEGV handler
// installed here recognises an arena address and reports, before aborting, the address, the
// allocation it falls in (size, offset, and the tensor's shape when the tensor layer labelled
// it) and a backtrace. Faults elsewhere go on to the handler that was installed before.
//
// Cost: two mprotect calls per scope over the arena's used span (the kernel's work is
// proportional to the resident pages), which is small next to an emulated kernel.
// MOESEG_CUDA_GUARD=0 turns the guard off (plain host memory, as before), e.g. to poke at device
// buffers from gdb. Tests: tests/device/test_device_memory_guard.cpp (the planted host read and
// write must be reported; device work inside scopes must not be).
#pragma once
#include <cstddef>
#include <string>

namespace moeseg {

// Whether emulated device memory is guarded in this process (MOESEG_CUDA_GUARD, read once).
bool device_memory_guard_enabled();

// Memory of the emulated device: 256-byte aligned, inaccessible to the host outside scopes
// (plain aligned host memory when the guard is off). Throws moeseg::Error when the arena is full.
void* guarded_device_alloc(size_t nbytes);
void guarded_device_free(void* p);
// True when p lies inside the arena (whether or not it is live).
bool is_guarded_device_pointer(const void* p);
// Attaches a description (e.g. "float32 [2, 3, 8, 8]") to the live allocation holding p; the
// fault report prints it. No-op for pointers outside the arena.
void label_guarded_device_memory(const void* p, const std::string& label);

// Device work in progress: while at least one scope is alive (on any thread) the arena is
// readable and writable. Nests.
class DeviceAccessScope {
 public:
  DeviceAccessScope();
  ~DeviceAccessScope();
  DeviceAccessScope(const DeviceAccessScope&) = delete;
  DeviceAccessScope& operator=(const DeviceAccessScope&) = delete;
};

// Plain functions for callers that cannot hold an RAII object across a C boundary (the
// CUDA-on-CPU runtime's launch hooks).
void device_access_begin();
void device_access_end();

}  // namespace moeseg
