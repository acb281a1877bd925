// The GPU build of the hand-written kernels: one CUDA-language translation unit that includes
// every kernels/cuda/*.cu, so nvcc compiles them into moeseg_cuda_kernels (namespace moeseg::cuda).
// Why a wrapper and not the .cu files themselves: kernels/cuda/CMakeLists.txt marks those files
// LANGUAGE CXX (directory-wide source property) for the CUDA-on-CPU build, and one source file can
// have only one language in one directory. Including them here gives nvcc its own compilation.
// Add a new kernel file to the list below and to MOESEG_CUDA_KERNEL_SOURCES (configure warns
// when a file of that list is missing here).
// Built only when MOESEG_HAVE_CUDA; the -Xptxas -v report lands in <build>/kernels/cuda/ptxas_moeseg_cuda_kernels.log.
#ifndef __CUDACC__
#error "cuda_kernels_device.cu is for nvcc only (the host-compiler build uses the .cu files directly)"
#endif

#include "kernels/cuda/gate_softmax_combine.cu"
#include "kernels/cuda/cross_entropy.cu"
#include "kernels/cuda/elementwise.cu"
#include "kernels/cuda/reduce.cu"
#include "kernels/cuda/conv2d_implicit_gemm.cu"
#include "kernels/cuda/batch_norm.cu"
#include "kernels/cuda/pooling.cu"
#include "kernels/cuda/upsample.cu"
#include "kernels/cuda/topk.cu"
#include "kernels/cuda/tensor_copy.cu"
#include "kernels/cuda/frru.cu"
#include "kernels/cuda/uncertainty_measures.cu"
#include "kernels/cuda/moe_dispatch.cu"
