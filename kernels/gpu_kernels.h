// The CUDA kernels an op can call, as one table of launchers (kernels/cuda/cuda_kernels.cuh has
// their contracts). Two tables exist, built from the same .cu sources: the nvcc-built kernels for
// a real GPU and the CUDA-on-CPU build for the emulated device (core/cuda_emulation.h). An op on a
// CUDA tensor asks gpu_kernels() for the table of the device in use and never knows which it got:
// this is the one place where "which CUDA" is decided.
// The launchers take raw device pointers and run on the device's stream (the default stream).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace moeseg {

struct GpuConv2dShape {   // same fields as cuda_kernels.cuh's Conv2dShape
  int n, c_in, h_in, w_in, c_out, kh, kw;
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

struct GpuStridedLayout {   // same fields as cuda_kernels.cuh's StridedLayout
  int ndim = 0;
  int64_t sizes[8] = {};
  int64_t strides[8] = {};
};

// Limits of the uncertainty_measures.cu launchers (= cuda_kernels.cuh's kUncertaintyMaxMembers,
// kCalibrationThresholds, kCalibrationMaxBins; gpu_kernel_table.h checks they agree).
constexpr int kGpuUncertaintyMaxMembers = 16;
constexpr int kGpuCalibrationThresholds = 50;
constexpr int kGpuCalibrationMaxBins = 32;

struct GpuKernels {
  const char* name;   // "cuda" (nvcc) or "cuda-on-cpu"

  // elementwise.cu
  void (*relu_forward)(const float* x, float* y, int64_t n);
  void (*relu_backward)(const float* grad_y, const float* x, float* grad_x, int64_t n);
  void (*add_forward)(const float* a, const float* b, float* out, int64_t n);
  void (*mul_forward)(const float* a, const float* b, float* out, int64_t n);
  void (*sgd_step)(float* param, const float* grad, float* momentum_buffer, int64_t n, double lr, double momentum,
                   double dampening, double weight_decay, bool nesterov, bool first_step);
  void (*adam_step)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq,
                    int64_t n, int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    bool decoupled);

  // reduce.cu
  size_t (*sum_workspace_floats)(int64_t n);
  void (*sum_all)(const float* x, int64_t n, float* out, float* workspace);
  void (*rowwise_max_argmax)(const float* x, int64_t rows, int64_t cols, float* max_out, int64_t* argmax_out);

  // cross_entropy.cu (reduction: 0 none, 1 sum, 2 mean)
  size_t (*cross_entropy_workspace_floats)(int N, int C, int64_t HW);
  void (*cross_entropy_forward)(const float* logits, const int64_t* target, const float* class_weights,
                                int64_t ignore_index, int N, int C, int64_t HW, float* lse, float* loss_per_pixel,
                                float* result, float* workspace);
  void (*cross_entropy_backward)(const float* logits, const int64_t* target, const float* class_weights,
                                 int64_t ignore_index, int N, int C, int64_t HW, const float* lse,
                                 const float* result, const float* grad_output, int reduction, float* grad_logits);

  // conv2d_implicit_gemm.cu
  void (*conv2d_forward)(const GpuConv2dShape& s, const float* x, const float* w, const float* bias, bool fuse_relu,
                         float* y);
  void (*conv2d_backward_data)(const GpuConv2dShape& s, const float* dy, const float* w, float* dx);
  size_t (*conv2d_backward_weight_workspace_floats)(const GpuConv2dShape& s);
  void (*conv2d_backward_weight)(const GpuConv2dShape& s, const float* x, const float* dy, float* dw, float* dbias,
                                 float* workspace);

  // gate_softmax_combine.cu
  void (*gate_softmax_combine_forward)(const float* gate_logits, const float* const* expert_logits, float* out,
                                       float* weights, int B, int G, int C, int64_t HW, int E);
  size_t (*gate_softmax_combine_backward_workspace_floats)(int B, int C, int64_t HW, int E);
  void (*gate_softmax_combine_backward)(const float* grad_out, const float* weights,
                                        const float* const* expert_logits, float* grad_gate_logits,
                                        float* const* grad_expert_logits, float* workspace, int B, int G, int C,
                                        int64_t HW, int E);

  // batch_norm.cu (weight/bias nullable; running stats nullable in training)
  size_t (*batch_norm_workspace_floats)(int N, int C, int64_t HW);
  void (*batch_norm_forward_training)(const float* x, const float* weight, const float* bias, float* running_mean,
                                      float* running_var, float* y, float* save_mean, float* save_invstd,
                                      float* workspace, int N, int C, int64_t HW, double momentum, double eps);
  void (*batch_norm_forward_eval)(const float* x, const float* weight, const float* bias, const float* running_mean,
                                  const float* running_var, float* y, float* save_mean, float* save_invstd,
                                  float* workspace, int N, int C, int64_t HW, double eps);
  void (*batch_norm_backward)(const float* grad_y, const float* x, const float* weight, const float* save_mean,
                              const float* save_invstd, bool training, float* grad_x, float* grad_weight,
                              float* grad_bias, float* workspace, int N, int C, int64_t HW);

  // pooling.cu
  void (*max_pool2d_forward)(const float* x, float* y, int64_t* indices, int N, int C, int H, int W, int kernel,
                             int stride, int padding);
  void (*max_pool2d_backward)(const float* grad_y, const int64_t* indices, float* grad_x, int N, int C, int H, int W,
                              int kernel, int stride, int padding);
  void (*avg_pool2d_forward)(const float* x, float* y, int N, int C, int H, int W, int kernel, int stride,
                             int padding);
  void (*avg_pool2d_backward)(const float* grad_y, float* grad_x, int N, int C, int H, int W, int kernel, int stride,
                              int padding);
  void (*adaptive_avg_pool2d_forward)(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w);
  void (*adaptive_avg_pool2d_backward)(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                       int out_w);

  // upsample.cu
  void (*upsample_bilinear2d_forward)(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w,
                                      bool align_corners);
  void (*upsample_bilinear2d_backward)(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                       int out_w, bool align_corners);
  void (*upsample_nearest2d_forward)(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w);
  void (*upsample_nearest2d_backward)(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                      int out_w);

  // topk.cu (rows of a contiguous [rows, cols])
  void (*topk_forward)(const float* x, int64_t rows, int64_t cols, int k, bool largest, float* values,
                       int64_t* indices);
  void (*topk_backward)(const float* grad_values, const int64_t* indices, int64_t rows, int64_t cols, int k,
                        float* grad_x);

  // tensor_copy.cu (any element size 1/2/4/8; value_bits holds the element's bytes)
  void (*fill_strided)(void* dst, const GpuStridedLayout& dst_layout, int elem_size, uint64_t value_bits);
  void (*strided_copy)(void* dst, const GpuStridedLayout& dst_layout, const void* src,
                       const GpuStridedLayout& src_layout, int elem_size);

  // frru.cu
  void (*frru_pool_concat_forward)(const float* y, const float* z, float* out, int64_t* indices, int N, int Cy, int h,
                                   int w, int Cz, int H, int W, int factor);
  void (*frru_pool_concat_backward)(const float* grad_out, const int64_t* indices, float* grad_y, float* grad_z,
                                    int N, int Cy, int h, int w, int Cz, int H, int W, int factor);
  size_t (*frru_conv1x1_upsample_add_forward_workspace_floats)(int N, int Cz, int h, int w);
  void (*frru_conv1x1_upsample_add_forward)(const float* y_out, const float* weight, const float* bias,
                                            const float* z_in, float* z_out, float* workspace, int N, int Cy, int h,
                                            int w, int Cz, int H, int W);
  size_t (*frru_conv1x1_upsample_add_backward_workspace_floats)(int N, int Cy, int h, int w, int Cz);
  void (*frru_conv1x1_upsample_add_backward)(const float* grad_z_out, const float* y_out, const float* weight,
                                             float* grad_y_out, float* grad_weight, float* grad_bias,
                                             float* workspace, int N, int Cy, int h, int w, int Cz, int H, int W);

  // uncertainty_measures.cu (maths and slot layout in cuda_kernels.cuh; results in double)
  void (*class_softmax)(const float* logits, float* probs, int N, int C, int64_t HW);
  void (*uncertainty_pixel_maps)(const float* const* member_probs, int M, const float* gate, int G, int N, int C,
                                 int64_t HW, double* mean_probs, int64_t* predicted, double* predictive_entropy,
                                 double* mutual_information, double* std_at_class);
  size_t (*gate_entropy_workspace_floats)(int N, int G);
  void (*gate_entropy_map)(const float* gate, const int64_t* predicted, int N, int G, int E, int64_t HW,
                           int reduction, double* out, float* workspace);
  size_t (*divide_by_max_workspace_floats)(int64_t n);
  void (*divide_by_max)(const double* x, int64_t n, double* out, float* workspace);
  void (*divide_by)(const double* x, int64_t n, double divisor, double* out);
  int (*calibration_result_slots)(int bins);
  size_t (*calibration_workspace_floats)(int N, int64_t HW, int bins);
  void (*calibration_histogram)(const double* mean_probs, const int64_t* labels, const double* uncertainty,
                                int64_t ignore_index, int N, int C, int64_t HW, int bins, unsigned char* status,
                                double* result, float* workspace);

  // moe_dispatch.cu (kernels/moe_dispatch.h has the maths; int64 plan arrays on the device;
  // capacity <= 0: none; order has room for T*k entries, the first offsets[N] are written)
  size_t (*moe_routing_plan_workspace_elems)(int64_t tokens, int k, int N);
  void (*moe_routing_plan)(const int64_t* idx, int64_t tokens, int k, int N, int64_t capacity, int64_t* requested,
                           int64_t* counts, int64_t* offsets, int64_t* order, int64_t* position, int64_t* invalid,
                           int64_t* workspace);
  void (*moe_permute_rows)(const float* x, const int64_t* order, int64_t P, int k, int64_t D, float* xp);
  void (*moe_combine_rows)(const float* rows, const float* w, const int64_t* position, int64_t T, int k, int64_t D,
                           float* y);
  void (*moe_combine_backward)(const float* dy, const float* w, const float* yp, const int64_t* order,
                               const int64_t* position, int64_t T, int k, int64_t P, int64_t D, float* dyp,
                               float* dw);
  void (*moe_grouped_bias_fill)(const float* bias, const int64_t* offsets, int N, int64_t P, int64_t Do, float* yp);
  void (*moe_grouped_bias_backward)(const float* dy, const int64_t* offsets, int N, int64_t Do, float* db);
  void (*moe_grouped_gemm_forward)(const float* xp, const float* weight, const int64_t* offsets, int N, int64_t P,
                                   int64_t D, int64_t Do, float* yp);
  void (*moe_grouped_gemm_backward_data)(const float* dy, const float* weight, const int64_t* offsets, int N,
                                         int64_t P, int64_t D, int64_t Do, float* dxp);
  void (*moe_grouped_gemm_backward_weight)(const float* dy, const float* xp, const int64_t* offsets, int N, int64_t D,
                                           int64_t Do, float* dweight);

  // ---- vendor libraries: only in the GPU table (nullptr in the CUDA-on-CPU one) ----------------
  // cuBLAS, row-major: C[M,N] = alpha * op(A) op(B) + beta * C with op(X) = X or X^T; lda, ldb and
  // ldc are row-major leading dimensions (elements between rows). linear uses it on a GPU.
  void (*gemm)(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc);
  // cuDNN convolution (the switchable alternative to conv2d_implicit_gemm and the benchmark
  // baseline), float32 with FMA math (no TF32), same contracts as the conv2d_* entries above;
  // `workspace` is allocated by the caller from the *_workspace_bytes answer.
  size_t (*cudnn_conv2d_workspace_bytes)(const GpuConv2dShape& s);
  void (*cudnn_conv2d_forward)(const GpuConv2dShape& s, const float* x, const float* w, const float* bias,
                               float* y, void* workspace, size_t workspace_bytes);
  void (*cudnn_conv2d_backward_data)(const GpuConv2dShape& s, const float* dy, const float* w, float* dx,
                                     void* workspace, size_t workspace_bytes);
  void (*cudnn_conv2d_backward_weight)(const GpuConv2dShape& s, const float* x, const float* dy, float* dw,
                                       float* dbias, void* workspace, size_t workspace_bytes);
};

// The table of the CUDA device in use: the GPU's when one is registered, the CUDA-on-CPU one when
// CUDA is emulated. Throws when neither is (a CPU-only run asked for a CUDA kernel).
const GpuKernels& gpu_kernels();

// Scratch for a launcher's workspace: a float32 tensor of max(floats, 1) elements on `d` (at
// least one, so the pointer is valid when a launcher needs none).
inline Tensor gpu_workspace(size_t floats, Device d) {
  return Tensor::empty({std::max<int64_t>(static_cast<int64_t>(floats), 1)}, DType::Float32, d);
}

// Built by kernels/gpu_kernel_table.h, instantiated once per kernel build.
const GpuKernels& coc_kernel_table();
const GpuKernels& cuda_kernel_table();   // only in builds with CUDA
// Fills the vendor entries (kernels/gpu_vendor_cuda.cpp; cuDNN ones only when the build found it).
void add_vendor_kernels(GpuKernels& t);

// conv2d's implementation on a GPU: our implicit-GEMM kernels (default) or cuDNN, from
// MOESEG_CONV=ours|cudnn in the environment (parsed once, at the first conv2d_impl(); an unknown
// name throws naming the variable and the known names, at every call until fixed) or
// set_conv2d_impl(). The emulated device has no cuDNN and always runs ours.
enum class ConvBackend { Ours, Cudnn };
// `where` names the source, e.g. "environment variable MOESEG_CONV": an unknown name throws
// "<where> is 'cudnn8' (known: ours, cudnn)".
ConvBackend parse_conv_backend(const std::string& name, const std::string& where);
std::string to_string(ConvBackend b);   // "ours" | "cudnn"
ConvBackend conv2d_impl();
void set_conv2d_impl(ConvBackend b);

}  // namespace moeseg
