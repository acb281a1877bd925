// Device helpers shared by pooling.cu and frru.cu (the FRRU's z pooling is a max pool): the
// max-pool window scan with the CPU backend's tie and NaN rules, and the range of outputs whose
// window covers one input row/column (what the gather-form backward passes walk).
// Included by .cu files only; no kernels here. Tests: tests/cuda_kernels/test_pooling.cpp, test_frru.cpp.
#pragma once
#include <cmath>

#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS::detail {

// Max over the window of output (oh, ow) of plane xr [H * W] (kernel k, stride s, padding p):
// padding is -inf; the first maximum in row-major window order wins (strict >); a NaN wins and
// ends the scan (PyTorch, kernels/pooling.cpp). *arg gets the flat h * W + w of the winner; an
// all -inf window reports its first in-bounds cell.
MOESEG_DEVICE float max_pool_window(const float* xr, int H, int W, int oh, int ow, int k, int s, int p,
                                    long long* arg) {
  const int hs = oh * s - p, ws = ow * s - p;
  const int h0 = hs > 0 ? hs : 0, w0 = ws > 0 ? ws : 0;
  const int h1 = hs + k < H ? hs + k : H, w1 = ws + k < W ? ws + k : W;
  long long best_i = static_cast<long long>(h0) * W + w0;
  float best = -INFINITY;
  bool nan = false;
  for (int i = h0; i < h1 && !nan; ++i) {
    for (int j = w0; j < w1; ++j) {
      const float v = xr[static_cast<long long>(i) * W + j];
      if (v > best || v != v) {
        best = v;
        best_i = static_cast<long long>(i) * W + j;
        if (v != v) {
          nan = true;
          break;
        }
      }
    }
  }
  *arg = best_i;
  return best;
}

// Outputs [*lo, *hi] (empty when *lo > *hi) of a floor-mode window op whose window
// [o * s - p, o * s - p + k) contains input coordinate i, clipped to [0, out).
MOESEG_DEVICE void covering_outputs(int i, int k, int s, int p, int out, int* lo, int* hi) {
  const int a = i + p - k + 1;   // o * s >= a
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  const int h = (i + p) / s;
  *hi = h < out - 1 ? h : out - 1;
}

// grad of input pixel (ih, iw) of one plane from that plane's output gradient gy [Ho * Wo] and
// argmax indices idx [Ho * Wo]: the gradients of the outputs that chose it, added in output order
// (the CPU's scatter order, so the float sum is bit-identical).
MOESEG_DEVICE float max_pool_grad_gather(const float* gy, const int64_t* idx, int W, int Ho, int Wo, int ih, int iw,
                                         int k, int s, int p) {
  int oh0, oh1, ow0, ow1;
  covering_outputs(ih, k, s, p, Ho, &oh0, &oh1);
  covering_outputs(iw, k, s, p, Wo, &ow0, &ow1);
  const long long me = static_cast<long long>(ih) * W + iw;
  float acc = 0.f;
  for (int oh = oh0; oh <= oh1; ++oh)
    for (int ow = ow0; ow <= ow1; ++ow) {
      const long long o = static_cast<long long>(oh) * Wo + ow;
      if (idx[o] == me) acc += gy[o];
    }
  return acc;
}

}  // namespace moeseg::MOESEG_KERNEL_NS::detail
