// CUDA-on-CPU runtime: lets the same .cu kernel source be compiled by the host compiler (g++)
// and run on the CPU, so every kernel can be checked against the CPU backend under
// ThreadSanitizer / AddressSanitizer, and stepped through with gdb.
//
// Execution model (see runtime.cpp for the synchronisation details):
//  * one OS thread per CUDA thread of a block, taken from a process-wide pool that grows to the
//    largest block launched (<= 1024) and is reused by every block of every launch;
//  * the blocks of a grid run one after another on those threads (blockIdx.x fastest). That is
//    what makes `__shared__` == `static` correct: only one block is ever live, and the block-end
//    handoff orders block b's shared-memory accesses before block b+1's;
//  * __syncthreads() is a real barrier; warp primitives are a per-warp exchange + barrier among
//    the lanes named in the mask, with CUDA's 32-lane semantics (partial warps at the block tail,
//    sub-warp widths, out-of-range sources);
//  * launches are synchronous; misuse the hardware would hang on or silently get wrong (a thread
//    leaving the kernel while others wait at __syncthreads, a shuffle naming an exited lane,
//    mismatched masks, deadlock) is detected and thrown as moeseg::cuda_on_cpu::KernelError.
//
// Kernels do not include this file directly: they include kernels/device_helpers.cuh, which
// picks the real CUDA runtime under nvcc and this file under the host compiler, and they launch
// with MOESEG_LAUNCH(kernel, grid, block, smem, stream)(args...).
// Tests: tests/cuda_on_cpu/ (test_cuda_on_cpu, plus the planted-bug sanitizer programs).
#pragma once

#if defined(__CUDACC__)
#error "kernels/cuda_on_cpu/runtime.h is the host-compiler stand-in for CUDA; include kernels/device_helpers.cuh"
#endif

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace moeseg::cuda_on_cpu {

// ---- built-in types and variables ------------------------------------------------------------
// Kept in our namespace (and exported to the global one below) so that a binary linking both
// this runtime and libcudart never sees two different definitions of the same mangled name.
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 u) : x(u.x), y(u.y), z(u.z) {}
  constexpr unsigned long long count() const { return 1ull * x * y * z; }
};

// Per OS thread, i.e. per emulated CUDA thread: set by the worker before each block.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
inline constexpr int warpSize = 32;

// ---- errors ----------------------------------------------------------------------------------
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorLaunchFailure = 719,
};
using cudaError_t = cudaError;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

struct CUstream_st;  // never defined: every launch runs to completion before it returns
using cudaStream_t = CUstream_st*;

// Thrown by launch() when the kernel misused a synchronisation primitive (or threw), or the
// launch configuration is invalid. The message names the kernel, block and thread at fault.
// The same failure is also recorded for cudaGetLastError().
class KernelError : public std::runtime_error {
 public:
  KernelError(cudaError_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

// ---- memory and error shims (host memory; enough to run kernel tests) -------------------------
// cudaMalloc returns 256-byte-aligned memory of exactly the requested size (so ASAN sees an
// overflow by one element) filled with 0xFF bytes (NaN as float, -1 as int), so a kernel that
// reads memory it never wrote gives an answer a test will notice.
cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaGetLastError();   // returns and clears the last error
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
// Raises the dynamic shared-memory limit of one kernel above the default 48 KiB, as on a GPU.
cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value);
template <class... A>
cudaError_t cudaFuncSetAttribute(void (*kernel)(A...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// Number of cudaMalloc blocks not yet freed (tests use it to check for leaks).
size_t live_allocations();

// Called around every kernel launch and every cudaMemcpy / cudaMemset: the emulated CUDA device
// opens its guarded memory to device work there (core/device_memory_guard.h). Null: no hooks
// (the kernel tests, whose memory is this file's cudaMalloc).
using DeviceWorkHook = void (*)();
void set_device_work_hooks(DeviceWorkHook begin, DeviceWorkHook end);

// ---- device-side primitives (callable only from a kernel running under launch()) -------------
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
unsigned __ballot_sync(unsigned mask, int predicate);
int __any_sync(unsigned mask, int predicate);
int __all_sync(unsigned mask, int predicate);
void __threadfence();
void __threadfence_block();

namespace detail {
enum class ShflMode { Idx, Up, Down, Xor };
// One warp exchange: every lane of `mask` contributes `bits`; returns the bits of the lane this
// lane reads from, or all-ones bytes when that lane is not taking part (undefined on a GPU).
uint64_t warp_shuffle(unsigned mask, uint64_t bits, ShflMode mode, int arg, int width);
void* dynamic_shared_memory();
}  // namespace detail

template <class T>
T shfl_impl(unsigned mask, T var, detail::ShflMode mode, int arg, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp shuffles move at most 8 bytes of a trivially copyable type");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = detail::warp_shuffle(mask, bits, mode, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  return shfl_impl(mask, var, detail::ShflMode::Idx, src_lane, width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return shfl_impl(mask, var, detail::ShflMode::Up, static_cast<int>(delta), width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return shfl_impl(mask, var, detail::ShflMode::Down, static_cast<int>(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return shfl_impl(mask, var, detail::ShflMode::Xor, lane_mask, width);
}

// Start of the launch's dynamic shared memory (extern __shared__). Kernels spell it
// MOESEG_DYNAMIC_SHARED(T, name). Poisoned with 0xFF bytes at the start of every block.
template <class T>
T* dynamic_shared() {
  return static_cast<T*>(detail::dynamic_shared_memory());
}

// ---- atomics: std::atomic_ref, relaxed like CUDA's device-scope atomics -----------------------
// Relaxed on purpose: a CUDA atomic orders nothing else, so ThreadSanitizer must not see an
// ordering that the GPU would not give either.
template <class T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed);
}
template <class T>
T atomicSub(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_sub(v, std::memory_order_relaxed);
}
template <class T>
T atomicExch(T* p, T v) {
  return std::atomic_ref<T>(*p).exchange(v, std::memory_order_relaxed);
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
  std::atomic_ref<T>(*p).compare_exchange_strong(compare, v, std::memory_order_relaxed);
  return compare;  // the old value, whether or not the swap happened
}
template <class T>
T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (old < v && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (v < old && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <class T>
T atomicOr(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_or(v, std::memory_order_relaxed);
}
template <class T>
T atomicAnd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_and(v, std::memory_order_relaxed);
}

// ---- a few intrinsics kernels commonly use ----------------------------------------------------
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
// __expf, __logf, __powf: glibc already declares them (same as expf/logf/powf).
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float f) { int x; std::memcpy(&x, &f, 4); return x; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned x; std::memcpy(&x, &f, 4); return x; }

// ---- launch ----------------------------------------------------------------------------------
namespace detail {
// Type-erased launch: runs body(payload) once per thread per block. Throws KernelError.
void launch_erased(const char* name, const void* kernel_id, dim3 grid, dim3 block,
                   size_t shared_bytes, void (*body)(const void*), const void* payload);
}  // namespace detail

// Runs kernel over grid x block on the CPU and returns when every block has finished.
// Arguments are converted to the kernel's parameter types once, like a CUDA launch copies them
// into parameter space; every thread then calls the kernel with its own copy.
template <class... P, class... A>
void launch_named(const char* name, void (*kernel)(P...), dim3 grid, dim3 block,
                  size_t shared_bytes, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  struct Payload {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> params;
  };
  const Payload payload{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
  auto body = [](const void* p) {
    const auto* pl = static_cast<const Payload*>(p);
    std::apply(pl->kernel, pl->params);
  };
  detail::launch_erased(name, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes,
                        body, &payload);
}

template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes, A&&... args) {
  launch_named("kernel", kernel, grid, block, shared_bytes, std::forward<A>(args)...);
}

// What MOESEG_LAUNCH(kernel, grid, block, smem, stream) expands to: an object whose call
// operator takes the kernel arguments, so `MOESEG_LAUNCH(k, g, b, s, st)(x, y)` reads like
// `k<<<g, b, s, st>>>(x, y)`.
template <class... P>
struct Launcher {
  const char* name;
  void (*kernel)(P...);
  dim3 grid, block;
  size_t shared_bytes;
  template <class... A>
  void operator()(A&&... args) const {
    launch_named(name, kernel, grid, block, shared_bytes, std::forward<A>(args)...);
  }
};
template <class... P>
Launcher<P...> make_launcher(const char* name, void (*kernel)(P...), dim3 grid, dim3 block,
                             size_t shared_bytes, cudaStream_t /*stream: launches are synchronous*/) {
  return Launcher<P...>{name, kernel, grid, block, shared_bytes};
}

}  // namespace moeseg::cuda_on_cpu

// ---- the CUDA spelling, in the global namespace, for .cu sources compiled by the host compiler -
using moeseg::cuda_on_cpu::dim3;
using moeseg::cuda_on_cpu::uint3;
using moeseg::cuda_on_cpu::threadIdx;
using moeseg::cuda_on_cpu::blockIdx;
using moeseg::cuda_on_cpu::blockDim;
using moeseg::cuda_on_cpu::gridDim;
using moeseg::cuda_on_cpu::warpSize;
using moeseg::cuda_on_cpu::cudaError_t;
using moeseg::cuda_on_cpu::cudaStream_t;
using enum moeseg::cuda_on_cpu::cudaError;
using enum moeseg::cuda_on_cpu::cudaMemcpyKind;
using enum moeseg::cuda_on_cpu::cudaFuncAttribute;
using moeseg::cuda_on_cpu::cudaMalloc;
using moeseg::cuda_on_cpu::cudaFree;
using moeseg::cuda_on_cpu::cudaMallocHost;
using moeseg::cuda_on_cpu::cudaFreeHost;
using moeseg::cuda_on_cpu::cudaMemcpy;
using moeseg::cuda_on_cpu::cudaMemcpyAsync;
using moeseg::cuda_on_cpu::cudaMemset;
using moeseg::cuda_on_cpu::cudaMemsetAsync;
using moeseg::cuda_on_cpu::cudaDeviceSynchronize;
using moeseg::cuda_on_cpu::cudaStreamSynchronize;
using moeseg::cuda_on_cpu::cudaGetLastError;
using moeseg::cuda_on_cpu::cudaPeekAtLastError;
using moeseg::cuda_on_cpu::cudaGetErrorString;
using moeseg::cuda_on_cpu::cudaFuncSetAttribute;
using moeseg::cuda_on_cpu::__syncthreads;
using moeseg::cuda_on_cpu::__syncwarp;
using moeseg::cuda_on_cpu::__ballot_sync;
using moeseg::cuda_on_cpu::__any_sync;
using moeseg::cuda_on_cpu::__all_sync;
using moeseg::cuda_on_cpu::__threadfence;
using moeseg::cuda_on_cpu::__threadfence_block;
using moeseg::cuda_on_cpu::__shfl_sync;
using moeseg::cuda_on_cpu::__shfl_up_sync;
using moeseg::cuda_on_cpu::__shfl_down_sync;
using moeseg::cuda_on_cpu::__shfl_xor_sync;
using moeseg::cuda_on_cpu::atomicAdd;
using moeseg::cuda_on_cpu::atomicSub;
using moeseg::cuda_on_cpu::atomicExch;
using moeseg::cuda_on_cpu::atomicCAS;
using moeseg::cuda_on_cpu::atomicMax;
using moeseg::cuda_on_cpu::atomicMin;
using moeseg::cuda_on_cpu::atomicOr;
using moeseg::cuda_on_cpu::atomicAnd;
using moeseg::cuda_on_cpu::__popc;
using moeseg::cuda_on_cpu::__popcll;
using moeseg::cuda_on_cpu::__ffs;
using moeseg::cuda_on_cpu::__clz;
using moeseg::cuda_on_cpu::__ldg;
using moeseg::cuda_on_cpu::rsqrtf;
using moeseg::cuda_on_cpu::rsqrt;
using moeseg::cuda_on_cpu::__fdividef;
using moeseg::cuda_on_cpu::__saturatef;
using moeseg::cuda_on_cpu::__int_as_float;
using moeseg::cuda_on_cpu::__float_as_int;
using moeseg::cuda_on_cpu::__uint_as_float;
using moeseg::cuda_on_cpu::__float_as_uint;

// Function qualifiers are no-ops on the host. `__shared__` becomes `static`: storage shared by
// all threads, which is exactly one block's shared memory because blocks run one at a time
// (CUDA forbids initialisers on __shared__, so there is no static-init guard to race on).
// `extern __shared__` cannot be mapped this way (it would read `extern static`): kernels use
// MOESEG_DYNAMIC_SHARED from device_helpers.cuh instead, and the compiler rejects the CUDA form.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// (no __noinline__: libstdc++ spells __attribute__((__noinline__)) itself)
#define __shared__ static
#define __constant__
#define __managed__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

// Launch syntax written once for both compilers (device_helpers.cuh has the nvcc branch).
// A template kernel whose arguments contain commas is launched through a pointer:
//   auto* k = &my_kernel<float, 256>;  MOESEG_LAUNCH(k, grid, block, 0, stream)(args...);
#define MOESEG_LAUNCH(kernel, grid, block, smem, stream) \
  ::moeseg::cuda_on_cpu::make_launcher(#kernel, (kernel), (grid), (block), (smem), (stream))
