// Device helpers shared by upsample.cu and frru.cu: one axis of bilinear interpolation with the
// CPU backend's arithmetic (kernels/upsample.cpp linear_axis: PyTorch's source index without a
// scale_factor, in double, weights rounded to float), the inverse map used by the gather-form
// backward (which outputs read input row i), and the bilinear backward gather itself.
// Included by .cu files only; no kernels here. Tests: tests/cuda_kernels/test_upsample.cpp, test_frru.cpp.
#pragma once
#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS::detail {

// out[i] = l0 * in[i0] + l1 * in[i0 + off].
struct LinearTap {
  int i0, off;
  float l0, l1;
};

// The source index of output i; the _rn products keep nvcc from fusing them into an FMA, which
// could move src across an integer and pick another source pixel than the CPU does.
MOESEG_DEVICE double linear_src(int i, int in, int out, bool align_corners) {
  if (align_corners) {
    const double scale = out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
    return dmul_rn(scale, static_cast<double>(i));
  }
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double src = dadd_rn(dmul_rn(scale, static_cast<double>(i) + 0.5), -0.5);
  return src < 0 ? 0.0 : src;
}
MOESEG_DEVICE int linear_i0(int i, int in, int out, bool align_corners) {
  const int i0 = static_cast<int>(linear_src(i, in, out, align_corners));
  return i0 < in - 1 ? i0 : in - 1;
}
MOESEG_DEVICE LinearTap linear_tap(int i, int in, int out, bool align_corners) {
  const double src = linear_src(i, in, out, align_corners);
  LinearTap t;
  const int i0 = static_cast<int>(src);
  t.i0 = i0 < in - 1 ? i0 : in - 1;
  t.off = t.i0 < in - 1 ? 1 : 0;
  double l1 = src - static_cast<double>(t.i0);
  l1 = l1 < 0.0 ? 0.0 : (l1 > 1.0 ? 1.0 : l1);
  t.l1 = static_cast<float>(l1);
  t.l0 = static_cast<float>(1.0 - l1);
  return t;
}

// Outputs [*lo, *hi) whose taps read input i (i0 == i, or i0 == i - 1 with off == 1; i0 is
// non-decreasing in the output index, so they are one interval): binary search for the first
// output with i0 >= i - 1, then walk while i0 <= i.
MOESEG_DEVICE void linear_readers(int i, int in, int out, bool align_corners, int* lo, int* hi) {
  int a = 0, b = out;
  while (a < b) {
    const int m = (a + b) / 2;
    if (linear_i0(m, in, out, align_corners) >= i - 1) b = m;
    else a = m + 1;
  }
  *lo = a;
  while (b < out && linear_i0(b, in, out, align_corners) <= i) ++b;
  *hi = b;
}

// d loss / d in[iy, ix] of one plane, from that plane's output gradient g [out_h * out_w]: every
// output that reads the pixel, in the CPU backend's scatter order (output row, output column,
// then the taps r0c0, r0c1, r1c0, r1c1) with its products (wy * wx) * g, so the float sum is
// bit-identical to the CPU's.
MOESEG_DEVICE float bilinear_grad_gather(const float* g, int H, int W, int out_h, int out_w, bool align_corners,
                                         int iy, int ix) {
  int oy0, oy1, ox0, ox1;
  linear_readers(iy, H, out_h, align_corners, &oy0, &oy1);
  linear_readers(ix, W, out_w, align_corners, &ox0, &ox1);
  float acc = 0.f;
  for (int oy = oy0; oy < oy1; ++oy) {
    const LinearTap ty = linear_tap(oy, H, out_h, align_corners);
    const bool y0 = ty.i0 == iy, y1 = ty.i0 + ty.off == iy;
    if (!y0 && !y1) continue;
    const float* gr = g + static_cast<long long>(oy) * out_w;
    for (int ox = ox0; ox < ox1; ++ox) {
      const LinearTap tx = linear_tap(ox, W, out_w, align_corners);
      const bool x0 = tx.i0 == ix, x1 = tx.i0 + tx.off == ix;
      const float v = gr[ox];
      if (y0 && x0) acc = fadd_rn(acc, fmul_rn(fmul_rn(ty.l0, tx.l0), v));
      if (y0 && x1) acc = fadd_rn(acc, fmul_rn(fmul_rn(ty.l0, tx.l1), v));
      if (y1 && x0) acc = fadd_rn(acc, fmul_rn(fmul_rn(ty.l1, tx.l0), v));
      if (y1 && x1) acc = fadd_rn(acc, fmul_rn(fmul_rn(ty.l1, tx.l1), v));
    }
  }
  return acc;
}

// The forward value at output (oy, ox) of plane xr [H * W]: wy0 * (wx0 * r0c0 + wx1 * r0c1) +
// wy1 * (wx0 * r1c0 + wx1 * r1c1), rounded as the CPU does.
MOESEG_DEVICE float bilinear_sample(const float* xr, int W, const LinearTap& ty, const LinearTap& tx) {
  const float* r0 = xr + static_cast<long long>(ty.i0) * W;
  const float* r1 = r0 + static_cast<long long>(ty.off) * W;
  const int c0 = tx.i0, c1 = tx.i0 + tx.off;
  const float a = fadd_rn(fmul_rn(tx.l0, r0[c0]), fmul_rn(tx.l1, r0[c1]));
  const float b = fadd_rn(fmul_rn(tx.l0, r1[c0]), fmul_rn(tx.l1, r1[c1]));
  return fadd_rn(fmul_rn(ty.l0, a), fmul_rn(ty.l1, b));
}

}  // namespace moeseg::MOESEG_KERNEL_NS::detail
