// Shared pieces of the kernels in kernels/cuda/*.cu (not a public header: include
// cuda_kernels.cuh for the launchers): 16-byte vector loads that work under both compilers,
// the launch-error check, and the block sizes.
#pragma once
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/device_helpers.cuh"

// `#pragma unroll` for nvcc only (g++ warns about the unknown pragma).
#if defined(__CUDACC__)
#define MOESEG_UNROLL _Pragma("unroll")
#else
#define MOESEG_UNROLL
#endif

namespace moeseg::MOESEG_KERNEL_NS::detail {

using namespace moeseg::dev;

// Four floats in one 16-byte access. A 16-byte-aligned struct (not CUDA's float4, which the
// CUDA-on-CPU runtime does not define) makes nvcc emit ld.global.v4.f32 / st.global.v4.f32;
// callers guarantee the alignment (checked on the host with is_aligned16).
struct alignas(16) F4 {
  float x, y, z, w;
};
MOESEG_DEVICE F4 load4(const float* p, long long v) { return reinterpret_cast<const F4*>(p)[v]; }
MOESEG_DEVICE void store4(float* p, long long v, F4 a) { reinterpret_cast<F4*>(p)[v] = a; }
MOESEG_DEVICE float get(const F4& a, int k) { return k == 0 ? a.x : k == 1 ? a.y : k == 2 ? a.z : a.w; }

inline bool is_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Capped 1-D grid for grid-stride loops: enough blocks to fill an H100 (132 SMs x a few blocks)
// without launching millions of tiny ones.
inline int grid_for(long long work_items, int block, int cap = 1024) {
  long long g = (work_items + block - 1) / block;
  if (g < 1) g = 1;
  return static_cast<int>(g < cap ? g : cap);
}

// After every launch (DESIGN.md): a launch error is a moeseg::Error naming the kernel.
inline void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  MOESEG_CHECK(err == cudaSuccess, what, ": launch failed: ", cudaGetErrorString(err));
}

}  // namespace moeseg::MOESEG_KERNEL_NS::detail

namespace moeseg::MOESEG_KERNEL_NS::detail {

// Arithmetic that must round exactly like the CPU backend's (which g++ compiles in ISO mode,
// without FMA contraction): nvcc would contract a * b + c into one FMA, which can move a source
// index across an integer (upsampling) or change a sum's last bit. The _rn intrinsics are never
// contracted; the host compiler does not contract either.
#if defined(__CUDACC__)
MOESEG_DEVICE float fmul_rn(float a, float b) { return __fmul_rn(a, b); }
MOESEG_DEVICE float fadd_rn(float a, float b) { return __fadd_rn(a, b); }
MOESEG_DEVICE double dmul_rn(double a, double b) { return __dmul_rn(a, b); }
MOESEG_DEVICE double dadd_rn(double a, double b) { return __dadd_rn(a, b); }
#else
MOESEG_DEVICE float fmul_rn(float a, float b) { return a * b; }
MOESEG_DEVICE float fadd_rn(float a, float b) { return a + b; }
MOESEG_DEVICE double dmul_rn(double a, double b) { return a * b; }
MOESEG_DEVICE double dadd_rn(double a, double b) { return a + b; }
#endif

}  // namespace moeseg::MOESEG_KERNEL_NS::detail
