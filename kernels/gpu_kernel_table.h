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

inline StridedLayout to_kernel_layout(const GpuStridedLayout& g) {
  StridedLayout l;
  l.ndim = g.ndim;
  for (int i = 0; i < g.ndim; ++i) l.sizes[i] = g.sizes[i], l.strides[i] = g.strides[i];
  return l;
}

static_assert(kGpuUncertaintyMaxMembers == kUncertaintyMaxMembers && kGpuCalibrationThresholds == kCalibrationThresholds &&
                  kGpuCalibrationMaxBins == kCalibrationMaxBins,
              "gpu_kernels.h's uncertainty limits must match cuda_kernels.cuh's");

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
  t.batch_norm_workspace_floats = [](int N, int C, int64_t HW) { return batch_norm_workspace_floats(N, C, HW); };
  t.batch_norm_forward_training = [](const float* x, const float* w, const float* b, float* rm, float* rv, float* y,
                                     float* sm, float* si, float* ws, int N, int C, int64_t HW, double mom,
                                     double eps) {
    batch_norm_forward_training(x, w, b, rm, rv, y, sm, si, ws, N, C, HW, mom, eps);
  };
  t.batch_norm_forward_eval = [](const float* x, const float* w, const float* b, const float* rm, const float* rv,
                                 float* y, float* sm, float* si, float* ws, int N, int C, int64_t HW, double eps) {
    batch_norm_forward_eval(x, w, b, rm, rv, y, sm, si, ws, N, C, HW, eps);
  };
  t.batch_norm_backward = [](const float* gy, const float* x, const float* w, const float* sm, const float* si,
                             bool training, float* gx, float* gw, float* gb, float* ws, int N, int C, int64_t HW) {
    batch_norm_backward(gy, x, w, sm, si, training, gx, gw, gb, ws, N, C, HW);
  };
  t.max_pool2d_forward = [](const float* x, float* y, int64_t* idx, int N, int C, int H, int W, int k, int s, int p) {
    max_pool2d_forward(x, y, idx, N, C, H, W, k, s, p);
  };
  t.max_pool2d_backward = [](const float* gy, const int64_t* idx, float* gx, int N, int C, int H, int W, int k, int s,
                             int p) { max_pool2d_backward(gy, idx, gx, N, C, H, W, k, s, p); };
  t.avg_pool2d_forward = [](const float* x, float* y, int N, int C, int H, int W, int k, int s, int p) {
    avg_pool2d_forward(x, y, N, C, H, W, k, s, p);
  };
  t.avg_pool2d_backward = [](const float* gy, float* gx, int N, int C, int H, int W, int k, int s, int p) {
    avg_pool2d_backward(gy, gx, N, C, H, W, k, s, p);
  };
  t.adaptive_avg_pool2d_forward = [](const float* x, float* y, int N, int C, int H, int W, int oh, int ow) {
    adaptive_avg_pool2d_forward(x, y, N, C, H, W, oh, ow);
  };
  t.adaptive_avg_pool2d_backward = [](const float* gy, float* gx, int N, int C, int H, int W, int oh, int ow) {
    adaptive_avg_pool2d_backward(gy, gx, N, C, H, W, oh, ow);
  };
  t.upsample_bilinear2d_forward = [](const float* x, float* y, int N, int C, int H, int W, int oh, int ow, bool ac) {
    upsample_bilinear2d_forward(x, y, N, C, H, W, oh, ow, ac);
  };
  t.upsample_bilinear2d_backward = [](const float* gy, float* gx, int N, int C, int H, int W, int oh, int ow,
                                      bool ac) { upsample_bilinear2d_backward(gy, gx, N, C, H, W, oh, ow, ac); };
  t.upsample_nearest2d_forward = [](const float* x, float* y, int N, int C, int H, int W, int oh, int ow) {
    upsample_nearest2d_forward(x, y, N, C, H, W, oh, ow);
  };
  t.upsample_nearest2d_backward = [](const float* gy, float* gx, int N, int C, int H, int W, int oh, int ow) {
    upsample_nearest2d_backward(gy, gx, N, C, H, W, oh, ow);
  };
  t.topk_forward = [](const float* x, int64_t r, int64_t c, int k, bool largest, float* v, int64_t* i) {
    topk_forward(x, r, c, k, largest, v, i);
  };
  t.topk_backward = [](const float* gv, const int64_t* i, int64_t r, int64_t c, int k, float* gx) {
    topk_backward(gv, i, r, c, k, gx);
  };
  t.fill_strided = [](void* dst, const GpuStridedLayout& l, int es, uint64_t bits) {
    fill_strided(dst, to_kernel_layout(l), es, bits);
  };
  t.strided_copy = [](void* dst, const GpuStridedLayout& dl, const void* src, const GpuStridedLayout& sl, int es) {
    strided_copy(dst, to_kernel_layout(dl), src, to_kernel_layout(sl), es);
  };
  t.frru_pool_concat_forward = [](const float* y, const float* z, float* out, int64_t* idx, int N, int Cy, int h,
                                  int w, int Cz, int H, int W, int f) {
    frru_pool_concat_forward(y, z, out, idx, N, Cy, h, w, Cz, H, W, f);
  };
  t.frru_pool_concat_backward = [](const float* go, const int64_t* idx, float* gy, float* gz, int N, int Cy, int h,
                                   int w, int Cz, int H, int W, int f) {
    frru_pool_concat_backward(go, idx, gy, gz, N, Cy, h, w, Cz, H, W, f);
  };
  t.frru_conv1x1_upsample_add_forward_workspace_floats = [](int N, int Cz, int h, int w) {
    return frru_conv1x1_upsample_add_forward_workspace_floats(N, Cz, h, w);
  };
  t.frru_conv1x1_upsample_add_forward = [](const float* y, const float* wt, const float* b, const float* zi,
                                           float* zo, float* ws, int N, int Cy, int h, int w, int Cz, int H, int W) {
    frru_conv1x1_upsample_add_forward(y, wt, b, zi, zo, ws, N, Cy, h, w, Cz, H, W);
  };
  t.frru_conv1x1_upsample_add_backward_workspace_floats = [](int N, int Cy, int h, int w, int Cz) {
    return frru_conv1x1_upsample_add_backward_workspace_floats(N, Cy, h, w, Cz);
  };
  t.frru_conv1x1_upsample_add_backward = [](const float* gzo, const float* y, const float* wt, float* gy, float* gw,
                                            float* gb, float* ws, int N, int Cy, int h, int w, int Cz, int H,
                                            int W) {
    frru_conv1x1_upsample_add_backward(gzo, y, wt, gy, gw, gb, ws, N, Cy, h, w, Cz, H, W);
  };
  t.class_softmax = [](const float* x, float* p, int N, int C, int64_t HW) { class_softmax(x, p, N, C, HW); };
  t.uncertainty_pixel_maps = [](const float* const* mp, int M, const float* gate, int G, int N, int C, int64_t HW,
                                double* pbar, int64_t* pred, double* pe, double* mi, double* sd) {
    uncertainty_pixel_maps(mp, M, gate, G, N, C, HW, pbar, pred, pe, mi, sd);
  };
  t.gate_entropy_workspace_floats = [](int N, int G) { return gate_entropy_workspace_floats(N, G); };
  t.gate_entropy_map = [](const float* g, const int64_t* pred, int N, int G, int E, int64_t HW, int r, double* out,
                          float* ws) { gate_entropy_map(g, pred, N, G, E, HW, r, out, ws); };
  t.divide_by_max_workspace_floats = [](int64_t n) { return divide_by_max_workspace_floats(n); };
  t.divide_by_max = [](const double* x, int64_t n, double* out, float* ws) { divide_by_max(x, n, out, ws); };
  t.divide_by = [](const double* x, int64_t n, double d, double* out) { divide_by(x, n, d, out); };
  t.calibration_result_slots = [](int bins) { return calibration_result_slots(bins); };
  t.calibration_workspace_floats = [](int N, int64_t HW, int bins) { return calibration_workspace_floats(N, HW, bins); };
  t.calibration_histogram = [](const double* p, const int64_t* y, const double* u, int64_t ignore, int N, int C,
                               int64_t HW, int bins, unsigned char* st, double* res, float* ws) {
    calibration_histogram(p, y, u, ignore, N, C, HW, bins, st, res, ws);
  };
  t.moe_routing_plan_workspace_elems = [](int64_t T, int k, int N) {
    return moe_routing_plan_workspace_elems(T, k, N);
  };
  t.moe_routing_plan = [](const int64_t* idx, int64_t T, int k, int N, int64_t cap, int64_t* req, int64_t* cnt,
                          int64_t* off, int64_t* order, int64_t* pos, int64_t* inv, int64_t* ws) {
    moe_routing_plan(idx, T, k, N, cap, req, cnt, off, order, pos, inv, ws);
  };
  t.moe_permute_rows = [](const float* x, const int64_t* order, int64_t P, int k, int64_t D, float* xp) {
    moe_permute_rows(x, order, P, k, D, xp);
  };
  t.moe_combine_rows = [](const float* rows, const float* w, const int64_t* pos, int64_t T, int k, int64_t D,
                          float* y) { moe_combine_rows(rows, w, pos, T, k, D, y); };
  t.moe_combine_backward = [](const float* dy, const float* w, const float* yp, const int64_t* order,
                              const int64_t* pos, int64_t T, int k, int64_t P, int64_t D, float* dyp, float* dw) {
    moe_combine_backward(dy, w, yp, order, pos, T, k, P, D, dyp, dw);
  };
  t.moe_grouped_bias_fill = [](const float* b, const int64_t* off, int N, int64_t P, int64_t Do, float* yp) {
    moe_grouped_bias_fill(b, off, N, P, Do, yp);
  };
  t.moe_grouped_bias_backward = [](const float* dy, const int64_t* off, int N, int64_t Do, float* db) {
    moe_grouped_bias_backward(dy, off, N, Do, db);
  };
  t.moe_grouped_gemm_forward = [](const float* xp, const float* w, const int64_t* off, int N, int64_t P, int64_t D,
                                  int64_t Do, float* yp) { moe_grouped_gemm_forward(xp, w, off, N, P, D, Do, yp); };
  t.moe_grouped_gemm_backward_data = [](const float* dy, const float* w, const int64_t* off, int N, int64_t P,
                                        int64_t D, int64_t Do, float* dxp) {
    moe_grouped_gemm_backward_data(dy, w, off, N, P, D, Do, dxp);
  };
  t.moe_grouped_gemm_backward_weight = [](const float* dy, const float* xp, const int64_t* off, int N, int64_t D,
                                          int64_t Do, float* dw) {
    moe_grouped_gemm_backward_weight(dy, xp, off, N, D, Do, dw);
  };
  return t;
}

}  // namespace moeseg::MOESEG_KERNEL_NS
