// Host-side entry points of the hand-written CUDA kernels in kernels/cuda/*.cu. Every launcher
// takes raw device pointers, sizes and a stream, checks its arguments (moeseg::Error), picks the
// launch shape and launches; it never allocates or synchronises.
//
// Two compilations of the same sources (see kernels/cuda/CMakeLists.txt):
//   * nvcc            -> namespace moeseg::cuda      (real GPU kernels)
//   * host compiler   -> namespace moeseg::coc       (CUDA-on-CPU, kernels/cuda_on_cpu/runtime.h)
// so both can be linked into one binary without two definitions of one mangled name. Host code
// compiled by g++ that wants the GPU copies defines MOESEG_CUDA_KERNELS_DEVICE before including
// this header (it then needs cuda_runtime_api.h for cudaStream_t).
// Tests: tests/cuda_kernels/ (test_cuda_kernels, CUDA-on-CPU against the CPU backend).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__) || defined(MOESEG_CUDA_KERNELS_DEVICE)
#include <cuda_runtime_api.h>
#define MOESEG_KERNEL_NS cuda
#else
#include "kernels/cuda_on_cpu/runtime.h"
#define MOESEG_KERNEL_NS coc
#endif

namespace moeseg::MOESEG_KERNEL_NS {

// ---- gate_softmax_combine.cu -------------------------------------------------------------------
// The MoE combination (models/moe.h): w = softmax_e(gate_logits[B, G, E]) and
//   out[b, c, p] = sum_e w[b, g(c), e] * expert_e[b, c, p],  g(c) = 0 (G == 1) or c (G == C).
// Experts are E separate [B, C, HW] buffers (host array of E device pointers; any E >= 1).
// `weights` [B, G, E] receives w (it is the MoE's gate output and backward's input).
void gate_softmax_combine_forward(const float* gate_logits, const float* const* expert_logits, float* out,
                                  float* weights, int B, int G, int C, int64_t HW, int E,
                                  cudaStream_t stream = nullptr);
// Floats of scratch backward needs (per-block partial dot products).
size_t gate_softmax_combine_backward_workspace_floats(int B, int C, int64_t HW, int E);
// grad_gate_logits [B, G, E] = softmax backward of dL/dw, dL/dw[b,g,e] = sum_{c in g, p} gout * x_e;
// grad_expert_logits: host array of E device pointers (dL/dx_e = w * gout), or nullptr to skip
// (the experts are frozen in the MoE). Deterministic: no atomics, fixed reduction order.
void gate_softmax_combine_backward(const float* grad_out, const float* weights, const float* const* expert_logits,
                                   float* grad_gate_logits, float* const* grad_expert_logits, float* workspace,
                                   int B, int G, int C, int64_t HW, int E, cudaStream_t stream = nullptr);

// ---- cross_entropy.cu --------------------------------------------------------------------------
// F.cross_entropy over the class dim of logits [N, C, HW] with int64 targets [N, HW].
enum class CEReduction : int { None = 0, Sum = 1, Mean = 2 };
size_t cross_entropy_workspace_floats(int N, int C, int64_t HW);
// Writes lse [N*HW] (kept for backward), loss_per_pixel [N*HW] (nullable) and
// result[3] = {sum of w[t] * nll, sum of w[t] over non-ignored pixels, their ratio (the mean)}.
// class_weights [C] is nullable (all ones). A target outside [0, C) that is not ignore_index
// gives a NaN loss for that pixel (a kernel cannot throw; the NaN reaches the result).
void cross_entropy_forward(const float* logits, const int64_t* target, const float* class_weights,
                           int64_t ignore_index, int N, int C, int64_t HW, float* lse, float* loss_per_pixel,
                           float* result, float* workspace, cudaStream_t stream = nullptr);
// grad_logits = d loss / d logits. grad_output: one scalar (Sum, Mean) or [N*HW] (None);
// `result` is the forward's (Mean divides by result[1] on the device, no host round trip).
void cross_entropy_backward(const float* logits, const int64_t* target, const float* class_weights,
                            int64_t ignore_index, int N, int C, int64_t HW, const float* lse,
                            const float* result, const float* grad_output, CEReduction reduction,
                            float* grad_logits, cudaStream_t stream = nullptr);

// ---- elementwise.cu ----------------------------------------------------------------------------
void relu_forward(const float* x, float* y, int64_t n, cudaStream_t stream = nullptr);
// grad_x = grad_y where x > 0, else 0 (PyTorch: the gradient at 0 is 0).
void relu_backward(const float* grad_y, const float* x, float* grad_x, int64_t n, cudaStream_t stream = nullptr);
void add_forward(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream = nullptr);
void mul_forward(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream = nullptr);
// torch.optim.SGD, one parameter tensor (training/optimizer.h has the rule). momentum_buffer
// may be nullptr when momentum == 0; first_step: the buffer is set to the gradient.
void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first_step, cudaStream_t stream = nullptr);
// torch.optim.Adam / AdamW (decoupled), step >= 1 counted like torch; max_exp_avg_sq only with amsgrad.
void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq,
               int64_t n, int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
               bool decoupled, cudaStream_t stream = nullptr);

// ---- reduce.cu ---------------------------------------------------------------------------------
size_t sum_workspace_floats(int64_t n);
// out[0] = sum of x[0..n) (double accumulation, fixed order: deterministic).
void sum_all(const float* x, int64_t n, float* out, float* workspace, cudaStream_t stream = nullptr);
// Row-wise over x [rows, cols] (cols >= 1): max value and the index of its first occurrence.
void rowwise_max_argmax(const float* x, int64_t rows, int64_t cols, float* max_out, int64_t* argmax_out,
                        cudaStream_t stream = nullptr);

// ---- conv2d_implicit_gemm.cu -------------------------------------------------------------------
// Atrous 2-D convolution as implicit GEMM (NCHW float32, weight [c_out, c_in/groups, kh, kw]),
// any stride / padding / dilation / groups; same semantics as kernels/conv2d_cpu.h.
struct Conv2dShape {
  int n, c_in, h_in, w_in;   // input NCHW
  int c_out, kh, kw;
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  // PyTorch: (h + 2p - d*(k-1) - 1)/s + 1 (may be <= 0 for an invalid shape; launchers check).
  int h_out() const { return (h_in + 2 * pad_h - dil_h * (kh - 1) - 1) / stride_h + 1; }
  int w_out() const { return (w_in + 2 * pad_w - dil_w * (kw - 1) - 1) / stride_w + 1; }
};
// y = conv(x, w) (+ bias[c_out], nullable) (then max(., 0) when fuse_relu). Overwrites y.
void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias, bool fuse_relu,
                    float* y, cudaStream_t stream = nullptr);
// dx = d conv / d x applied to dy. Overwrites dx.
void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w, float* dx,
                          cudaStream_t stream = nullptr);
// Floats of scratch conv2d_backward_weight needs (split-K partial tiles; 0 = none).
size_t conv2d_backward_weight_workspace_floats(const Conv2dShape& shape);
// dw (and dbias[c_out] when non-null) from x and dy. Overwrites both. Deterministic: split-K
// partials summed in a fixed order, no atomics.
void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy, float* dw, float* dbias,
                            float* workspace, cudaStream_t stream = nullptr);

// ---- batch_norm.cu -----------------------------------------------------------------------------
// BatchNorm2d on x [N, C, HW] (NCHW, float32), semantics of kernels/batch_norm.h. weight / bias
// [C] are nullable (affine off: 1 and 0). Statistics and per-channel coefficients in double;
// reductions are per-block partials summed in a fixed order (deterministic, no atomics).
// Floats of scratch each of the three launchers below needs (double partials + coefficients).
size_t batch_norm_workspace_floats(int N, int C, int64_t HW);
// Training: y = (x - mean) * invstd * w + b with the batch mean and biased variance; when
// running_mean / running_var are given (both or neither) they become
// (1 - momentum) * running + momentum * batch (variance unbiased: * m / (m - 1), m = N * HW > 1).
// save_mean / save_invstd [C] (nullable) receive the batch mean and 1 / sqrt(var + eps).
void batch_norm_forward_training(const float* x, const float* weight, const float* bias, float* running_mean,
                                 float* running_var, float* y, float* save_mean, float* save_invstd,
                                 float* workspace, int N, int C, int64_t HW, double momentum, double eps,
                                 cudaStream_t stream = nullptr);
// Evaluation: normalises with running_mean / running_var (required). save_mean / save_invstd
// (nullable) receive running_mean and 1 / sqrt(running_var + eps) for batch_norm_backward.
void batch_norm_forward_eval(const float* x, const float* weight, const float* bias, const float* running_mean,
                             const float* running_var, float* y, float* save_mean, float* save_invstd,
                             float* workspace, int N, int C, int64_t HW, double eps, cudaStream_t stream = nullptr);
// From the forward's save_mean / save_invstd. grad_x, grad_weight, grad_bias each nullable.
// training: grad_x = w * invstd * (g - mean(g) - xhat * mean(g * xhat)); eval: w * invstd * g.
// grad_weight = sum(g * xhat), grad_bias = sum(g) over N, H, W (both modes).
void batch_norm_backward(const float* grad_y, const float* x, const float* weight, const float* save_mean,
                         const float* save_invstd, bool training, float* grad_x, float* grad_weight,
                         float* grad_bias, float* workspace, int N, int C, int64_t HW,
                         cudaStream_t stream = nullptr);

// ---- pooling.cu --------------------------------------------------------------------------------
// 2-D pooling on NCHW float32, semantics of kernels/pooling.h (floor mode; padding <= kernel / 2;
// max: padding is -inf, first maximum in row-major window order wins, NaN propagates; avg:
// count_include_pad=True). Backward passes gather per input pixel in the CPU's accumulation order:
// deterministic, no atomics, and bit-identical to the CPU backend under CUDA-on-CPU. No workspace.
// PyTorch's floor-mode output size; the launchers check it is >= 1.
inline int pool2d_out_size(int in, int kernel, int stride, int padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}
// indices [N, C, Ho, Wo] (nullable: eval): flat h * W + w of the argmax within its plane.
void max_pool2d_forward(const float* x, float* y, int64_t* indices, int N, int C, int H, int W, int kernel,
                        int stride, int padding, cudaStream_t stream = nullptr);
// grad_x [N, C, H, W] (overwritten) from grad_y [N, C, Ho, Wo] routed through the forward's indices.
void max_pool2d_backward(const float* grad_y, const int64_t* indices, float* grad_x, int N, int C, int H, int W,
                         int kernel, int stride, int padding, cudaStream_t stream = nullptr);
void avg_pool2d_forward(const float* x, float* y, int N, int C, int H, int W, int kernel, int stride, int padding,
                        cudaStream_t stream = nullptr);
void avg_pool2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int kernel, int stride,
                         int padding, cudaStream_t stream = nullptr);
// Bins [floor(i * in / out), ceil((i + 1) * in / out)) as PyTorch.
void adaptive_avg_pool2d_forward(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w,
                                 cudaStream_t stream = nullptr);
void adaptive_avg_pool2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                  int out_w, cudaStream_t stream = nullptr);

// ---- upsample.cu -------------------------------------------------------------------------------
// Resize x [N, C, H, W] to [N, C, out_h, out_w] (any sizes, up or down), semantics of
// kernels/upsample.h: bilinear with align_corners true or false (PyTorch's source index without
// a scale_factor), legacy nearest (floor(dst * float(in / out))). Backward gathers per input pixel
// in the CPU's order (deterministic, no atomics); grad_x is overwritten. No workspace.
void upsample_bilinear2d_forward(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w,
                                 bool align_corners, cudaStream_t stream = nullptr);
void upsample_bilinear2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                  int out_w, bool align_corners, cudaStream_t stream = nullptr);
void upsample_nearest2d_forward(const float* x, float* y, int N, int C, int H, int W, int out_h, int out_w,
                                cudaStream_t stream = nullptr);
void upsample_nearest2d_backward(const float* grad_y, float* grad_x, int N, int C, int H, int W, int out_h,
                                 int out_w, cudaStream_t stream = nullptr);

// ---- topk.cu -----------------------------------------------------------------------------------
// Top-k along the last dim of x [rows, cols] (kernels/reduce.h topk with dim = -1): values and
// int64 indices [rows, k], sorted (largest: descending, else ascending), ties by lower index
// first, -0 == +0, NaN ranks above every number (first when largest, last otherwise). One warp per
// row, k selection rounds: meant for small k (MoE gates, k <= ~32); cost O(k * cols) per row.
void topk_forward(const float* x, int64_t rows, int64_t cols, int k, bool largest, float* values, int64_t* indices,
                  cudaStream_t stream = nullptr);
// grad_x [rows, cols] (overwritten) = scatter of grad_values [rows, k] to indices (summed in k
// order where an index repeats, as the CPU's +=). O(k) per element of grad_x. No workspace.
void topk_backward(const float* grad_values, const int64_t* indices, int64_t rows, int64_t cols, int k,
                   float* grad_x, cudaStream_t stream = nullptr);

// ---- tensor_copy.cu ----------------------------------------------------------------------------
// What Tensor::contiguous / copy_ / fill_ need on the GPU. Elements are 1, 2, 4 or 8 bytes moved
// as raw bits (any dtype of that size). Sizes and strides in elements; strides may be 0 (src
// only: a broadcast) or negative; an empty tensor (a size 0) is a no-op. No workspace.
constexpr int kMaxCopyDims = 8;
struct StridedLayout {
  int ndim = 0;                      // 0 = a scalar (one element)
  int64_t sizes[kMaxCopyDims] = {};
  int64_t strides[kMaxCopyDims] = {};
};
// dst[0, n) = the element whose bytes are the low elem_size bytes of value_bits.
void fill(void* dst, int64_t n, int elem_size, uint64_t value_bits, cudaStream_t stream = nullptr);
inline void fill_f32(float* dst, int64_t n, float v, cudaStream_t stream = nullptr) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  fill(dst, n, 4, b, stream);
}
inline void fill_i64(int64_t* dst, int64_t n, int64_t v, cudaStream_t stream = nullptr) {
  fill(dst, n, 8, static_cast<uint64_t>(v), stream);
}
// The strided form (fill_ on a view). dst strides must be non-zero where a size is > 1.
void fill_strided(void* dst, const StridedLayout& dst_layout, int elem_size, uint64_t value_bits,
                  cudaStream_t stream = nullptr);
// dst[i...] = src[i...] for every multi-index of the (equal) sizes; dst and src must not overlap
// and dst strides must be non-zero where a size is > 1. Layouts are coalesced on the host
// (size-1 dims dropped, mergeable dims merged), so contiguous copies run as a flat copy.
void strided_copy(void* dst, const StridedLayout& dst_layout, const void* src, const StridedLayout& src_layout,
                  int elem_size, cudaStream_t stream = nullptr);

// ---- frru.cu -----------------------------------------------------------------------------------
// Full-Resolution Residual Unit pieces (FRRN, spec §1.3). y: pooling stream [N, Cy, h, w]; z:
// residual stream [N, Cz, H, W] (Cz = 32 in FRRN, any >= 1 here); (h, w) must equal the size of
// maxpool(k3, stride f, pad 1) of (H, W).
// out [N, Cy + Cz, h, w] = concat(y, maxpool_k3_s{f}_p1(z)) in one pass; indices [N, Cz, h, w]
// (nullable: eval) get the argmax as max_pool2d_forward.
void frru_pool_concat_forward(const float* y, const float* z, float* out, int64_t* indices, int N, int Cy, int h,
                              int w, int Cz, int H, int W, int factor, cudaStream_t stream = nullptr);
// grad_y [N, Cy, h, w] = its channels of grad_out (nullable: skipped); grad_z [N, Cz, H, W]
// (overwritten) = the z channels routed through indices (gather, deterministic).
void frru_pool_concat_backward(const float* grad_out, const int64_t* indices, float* grad_y, float* grad_z, int N,
                               int Cy, int h, int w, int Cz, int H, int W, int factor,
                               cudaStream_t stream = nullptr);
// Floats of scratch for the forward: the low-resolution conv output [N, Cz, h, w].
size_t frru_conv1x1_upsample_add_forward_workspace_floats(int N, int Cz, int h, int w);
// z_out = z_in + upsample_bilinear_align_corners(conv1x1(y_out; weight [Cz, Cy], bias [Cz]), to
// (H, W)). z_out may alias z_in (in place). bias nullable.
void frru_conv1x1_upsample_add_forward(const float* y_out, const float* weight, const float* bias, const float* z_in,
                                       float* z_out, float* workspace, int N, int Cy, int h, int w, int Cz, int H,
                                       int W, cudaStream_t stream = nullptr);
// Floats of scratch for the backward: grad of the low-resolution map [N, Cz, h, w] plus the
// per-chunk partial weight / bias gradients.
size_t frru_conv1x1_upsample_add_backward_workspace_floats(int N, int Cy, int h, int w, int Cz);
// From grad_z_out [N, Cz, H, W]: grad_y_out [N, Cy, h, w], grad_weight [Cz, Cy], grad_bias [Cz]
// (each nullable; all overwritten). grad z_in = grad z_out (the caller passes it on).
void frru_conv1x1_upsample_add_backward(const float* grad_z_out, const float* y_out, const float* weight,
                                        float* grad_y_out, float* grad_weight, float* grad_bias, float* workspace,
                                        int N, int Cy, int h, int w, int Cz, int H, int W,
                                        cudaStream_t stream = nullptr);

// ---- uncertainty_measures.cu -------------------------------------------------------------------
// The per-pixel measures of training/uncertainty.h and the per-batch sums of
// training/calibration.h (maths in the .cu's header). Probabilities are contiguous [N, C, HW];
// results in double. Deterministic: no atomics, fixed summation orders.
constexpr int kUncertaintyMaxMembers = 16;   // members one launch takes (the host falls back above)
constexpr int kCalibrationThresholds = 50;   // t_k = 0.01 + 0.02 k, training/calibration.h
constexpr int kCalibrationMaxBins = 32;      // reliability bins one launch takes (15 in the reference)
// probs = softmax over C of logits [N, C, HW] (max-shifted, exp and sum in double, float32 out).
void class_softmax(const float* logits, float* probs, int N, int C, int64_t HW, cudaStream_t stream = nullptr);
// member_probs: host array of M (1..kUncertaintyMaxMembers) device pointers to [N, C, HW] float32.
// gate [N, G, M] float32 (G = 1 or C) or nullptr (equal weights 1/M). Writes, each nullable:
// mean_probs [N, C, HW] = p̄, predicted [N, HW] = first argmax of p̄, predictive_entropy = H[p̄],
// mutual_information = H[p̄] - mean_m H[p_m], std_at_class = std_m p_m at the predicted class
// (divisor M - 1; 0 for M = 1).
void uncertainty_pixel_maps(const float* const* member_probs, int M, const float* gate, int G, int N, int C,
                            int64_t HW, double* mean_probs, int64_t* predicted, double* predictive_entropy,
                            double* mutual_information, double* std_at_class, cudaStream_t stream = nullptr);
// out [N, HW] = normalised gate entropy (by log E, E >= 2) from gate [N, G, E] float32 and, for
// reduction 0 (predicted class) with G > 1, the predicted classes [N, HW] (a class outside [0, G)
// gives NaN); reduction 1 = mean gate, 2 = mean entropy (G = 1: the image's gate for all three).
size_t gate_entropy_workspace_floats(int N, int G);
void gate_entropy_map(const float* gate, const int64_t* predicted, int N, int G, int E, int64_t HW, int reduction,
                      double* out, float* workspace, cudaStream_t stream = nullptr);
// out = x / max(x) (x >= 0; unchanged when the max is 0), the EV normalisation; out may alias x.
size_t divide_by_max_workspace_floats(int64_t n);
void divide_by_max(const double* x, int64_t n, double* out, float* workspace, cudaStream_t stream = nullptr);
// out = x / divisor (the log C normalisation); out may alias x.
void divide_by(const double* x, int64_t n, double divisor, double* out, cudaStream_t stream = nullptr);
// The calibration sums of one batch over valid pixels (label != ignore_index) of mean_probs
// [N, C, HW], labels int64 [N, HW] and the normalised uncertainty [N, HW], as doubles in result
// (calibration_result_slots(bins) of them; counts are exact integers below 2^53):
//   [0] n  [1] n_correct  [2] Σ Brier (multi-class)  [3] Σ NLL  [4] Σ Brier (reference)  [5] Σ NLL (ref.)
//   [6 ..)         standard bins (q = max p̄): count[bins], Σ q[bins], Σ correct[bins]
//   [6 + 3 bins ..) reference bins (q = 1 - u): the same three arrays
//   [6 + 6 bins ..) per threshold: n_certain[50], n_accurate_certain[50], n_inaccurate_uncertain[50]
// status [N, HW] (nullable): 0 ignored, 1 correct, 2 incorrect, 3 label outside [0, C) (skipped).
int calibration_result_slots(int bins);
size_t calibration_workspace_floats(int N, int64_t HW, int bins);
void calibration_histogram(const double* mean_probs, const int64_t* labels, const double* uncertainty,
                           int64_t ignore_index, int N, int C, int64_t HW, int bins, unsigned char* status,
                           double* result, float* workspace, cudaStream_t stream = nullptr);

// ---- moe_dispatch.cu ---------------------------------------------------------------------------
// Sort-based sparse-MoE dispatch (kernels/moe_dispatch.h has the maths). The routing plan of idx
// [T, k] int64 over N experts (1 <= k <= N): requested/counts [N], offsets [N + 1], order (room for
// T*k; the first offsets[N] entries are written), position [T*k] (-1: dropped), invalid [1] (the
// number of indices outside [0, N); the plan is meaningless unless 0). capacity <= 0: none; else
// the first `capacity` pairs of each expert in token order are kept. workspace: int64 elements.
size_t moe_routing_plan_workspace_elems(int64_t tokens, int k, int N);
void moe_routing_plan(const int64_t* idx, int64_t tokens, int k, int N, int64_t capacity, int64_t* requested,
                      int64_t* counts, int64_t* offsets, int64_t* order, int64_t* position, int64_t* invalid,
                      int64_t* workspace, cudaStream_t stream = nullptr);
// xp [P, D] = x[order[q] / k] (P = kept pairs).
void moe_permute_rows(const float* x, const int64_t* order, int64_t P, int k, int64_t D, float* xp,
                      cudaStream_t stream = nullptr);
// y [T, D] = sum over kept slots of w[t, s] * rows[position[t*k+s]] (w null: weight 1, which is
// the permute backward).
void moe_combine_rows(const float* rows, const float* w, const int64_t* position, int64_t T, int k, int64_t D,
                      float* y, cudaStream_t stream = nullptr);
// The combine backward: dyp [P, D] = w[order[q]] * dy[order[q] / k] and dw [T, k] = <dy[t], yp[q]>
// (0 for a dropped pair); either output may be null.
void moe_combine_backward(const float* dy, const float* w, const float* yp, const int64_t* order,
                          const int64_t* position, int64_t T, int k, int64_t P, int64_t D, float* dyp, float* dw,
                          cudaStream_t stream = nullptr);
// The grouped linear's bias around one gemm per non-empty expert: yp [P, D_out] = bias[e(q)]
// (bias null: 0) before a beta = 1 GEMM; db [N, D_out] = per-expert row sums of dy (0 for an
// expert without rows), accumulated in double in row order.
void moe_grouped_bias_fill(const float* bias, const int64_t* offsets, int N, int64_t P, int64_t Do, float* yp,
                           cudaStream_t stream = nullptr);
void moe_grouped_bias_backward(const float* dy, const int64_t* offsets, int N, int64_t Do, float* db,
                               cudaStream_t stream = nullptr);
// The grouped GEMM (weight [N, D_out, D], each expert's PyTorch [out, in] matrix; row q of
// xp [P, D] belongs to the expert e with offsets[e] <= q < offsets[e+1]):
//   forward        yp [P, D_out] += xp[q] W[e(q)]^T   (onto the bias fill above)
//   backward data  dxp [P, D] = dy[q] W[e(q)]
//   backward weight dW [N, D_out, D] = sum over the rows of e of dy[r]^T xp[r]   (0: expert without rows)
// float32 accumulation in a fixed order; no atomics.
void moe_grouped_gemm_forward(const float* xp, const float* weight, const int64_t* offsets, int N, int64_t P,
                              int64_t D, int64_t Do, float* yp, cudaStream_t stream = nullptr);
void moe_grouped_gemm_backward_data(const float* dy, const float* weight, const int64_t* offsets, int N, int64_t P,
                                    int64_t D, int64_t Do, float* dxp, cudaStream_t stream = nullptr);
void moe_grouped_gemm_backward_weight(const float* dy, const float* xp, const int64_t* offsets, int N, int64_t D,
                                      int64_t Do, float* dweight, cudaStream_t stream = nullptr);

}  // namespace moeseg::MOESEG_KERNEL_NS
