// Builds a GpuKernels table (kernels/gpu_kernels.h) from the launchers of the kernel namespace
// that kernels/cuda/cuda_kernels.cuh selected: moeseg::cuda (nvcc build, the including file
// defines MOESEG_CUDA_KERNELS_DEVICE) or moeseg::coc (CUDA-on-CPU). Included by exactly two
// files, kernels/gpu_kernels_coc.cpp and kernels/gpu_kernels_cuda.cpp, so the table is written
// once. Each entry adapts the launcher to the table's stream-less signature.
#pragma once
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/gpu_kernels.h"

namespace moeseg::MOESEG_KERNEL_NS {

inline Conv2dShape to_kernel_shape(const GpuConv2dShape& g) {
  Conv2dShape s{g.n, g.c_in, g.h_in, g.w_in, g.c_out, g.kh, g.kw};
  s.stride_h = g.stride_h, s.stride_w = g.stride_w, s.pad_h = g.pad_h, s.pad_w = g.pad_w;
  s.dil_h = g.dil_h, s.dil_w = g.dil_w, s.groups = g.groups;
  return s;
}

inline GpuKernels make_gpu_kernel_table(const char* name) {
  GpuKernels t{};
  t.name = name;
  t.relu_forward = [](const float* x, float* y, int64_t n) { relu_forward(x, y, n); };
  t.relu_backward = [](const float* gy, const float* x, float* gx, int64_t n) { relu_backward(gy, x, gx, n); };
  t.add_forward = [](const float* a, const float* b, float* o, int64_t n) { add_forward(a, b, o, n); };
  t.mul_forward = [](const float* a, const float* b, float* o, int64_t n) { mul_forward(a, b, o, n); };
  t.sgd_step = [](float* p, const float* g, float* buf, int64_t n, double lr, double mom, double damp, double wd,
                  bool nesterov, bool first) { sgd_step(p, g, buf, n, lr, mom, damp, wd, nesterov, first); };
  t.adam_step = [](float* p, const float* g, float* m, float* v, float* vmax, int64_t n, int64_t step, double lr,
                   double b1, double b2, double eps, double wd, bool decoupled) {
    adam_step(p, g, m, v, vmax, n, step, lr, b1, b2, eps, wd, decoupled);
  };
  t.sum_workspace_floats = [](int64_t n) { return sum_workspace_floats(n); };
  t.sum_all = [](const float* x, int64_t n, float* out, float* ws) { sum_all(x, n, out, ws); };
  t.rowwise_max_argmax = [](const float* x, int64_t r, int64_t c, float* m, int64_t* a) {
    rowwise_max_argmax(x, r, c, m, a);
  };
  t.cross_entropy_workspace_floats = [](int N, int C, int64_t HW) { return cross_entropy_workspace_floats(N, C, HW); };
  t.cross_entropy_forward = [](const float* logits, const int64_t* target, const float* cw, int64_t ignore, int N,
                               int C, int64_t HW, float* lse, float* lpp, float* result, float* ws) {
    cross_entropy_forward(logits, target, cw, ignore, N, C, HW, lse, lpp, result, ws);
  };
  t.cross_entropy_backward = [](const float* logits, const int64_t* target, const float* cw, int64_t ignore, int N,
                                int C, int64_t HW, const float* lse, const float* result, const float* gout,
                                int reduction, float* glogits) {
    cross_entropy_backward(logits, target, cw, ignore, N, C, HW, lse, result, gout,
                           static_cast<CEReduction>(reduction), glogits);
  };
  t.conv2d_forward = [](const GpuConv2dShape& s, const float* x, const float* w, const float* b, bool relu, float* y) {
    conv2d_forward(to_kernel_shape(s), x, w, b, relu, y);
  };
  t.conv2d_backward_data = [](const GpuConv2dShape& s, const float* dy, const float* w, float* dx) {
    conv2d_backward_data(to_kernel_shape(s), dy, w, dx);
  };
  t.conv2d_backward_weight_workspace_floats = [](const GpuConv2dShape& s) {
    return conv2d_backward_weight_workspace_floats(to_kernel_shape(s));
  };
  t.conv2d_backward_weight = [](const GpuConv2dShape& s, const float* x, const float* dy, float* dw, float* db,
                                float* ws) { conv2d_backward_weight(to_kernel_shape(s), x, dy, dw, db, ws); };
  t.gate_softmax_combine_forward = [](const float* gl, const float* const* ex, float* out, float* w, int B, int G,
                                      int C, int64_t HW, int E) {
    gate_softmax_combine_forward(gl, ex, out, w, B, G, C, HW, E);
  };
  t.gate_softmax_combine_backward_workspace_floats = [](int B, int C, int64_t HW, int E) {
    return gate_softmax_combine_backward_workspace_floats(B, C, HW, E);
  };
  t.gate_softmax_combine_backward = [](const float* go, const float* w, const float* const* ex, float* ggl,
                                       float* const* gex, float* ws, int B, int G, int C, int64_t HW, int E) {
    gate_softmax_combine_backward(go, w, ex, ggl, gex, ws, B, G, C, HW, E);
  };
  return t;
}

}  // namespace moeseg::MOESEG_KERNEL_NS
