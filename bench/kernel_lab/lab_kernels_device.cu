// The GPU build of the kernel lab's own kernels: one CUDA translation unit including each
// bench/kernel_lab/*_naive.cu (which this directory compiles as C++ for CUDA-on-CPU; one source
// can have one language per directory), compiled by nvcc into namespace moeseg::lab::cuda.
// Built only when the build has CUDA (bench/kernel_lab/CMakeLists.txt).
#ifndef __CUDACC__
#error "lab_kernels_device.cu is for nvcc only"
#endif

#include "bench/kernel_lab/conv2d_naive.cu"
#include "bench/kernel_lab/cross_entropy_naive.cu"
#include "bench/kernel_lab/frru_naive.cu"
#include "bench/kernel_lab/gate_combine_naive.cu"
