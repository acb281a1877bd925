// Kernel lab v1 of the two FRRU data-movement pieces (kernels/frru.h): the unfused sequence of
// plain kernels the fused production launchers of kernels/cuda/frru.cu replace, one thread per
// output element each, every intermediate a full tensor in global memory:
//   pool_concat:          max-pool z into a pooled temporary, then a concat copy of (y, pooled);
//   conv1x1_upsample_add: 1x1 conv at low resolution into a temporary, bilinear align_corners
//                         upsampling into a full-resolution temporary, then the residual add.
// The temporaries' round trips (pooled z; the full-resolution upsampled map, 32 channels at z's
// size) are the bytes the fused versions save. Run by bench/kernel_lab (kernel_lab).
#include <cmath>

#include "bench/kernel_lab/lab_kernels.cuh"
#include "core/error.h"
#include "kernels/device_helpers.cuh"

namespace moeseg::lab::MOESEG_KERNEL_NS {
namespace {

constexpr int kNaiveBlock = 256;

unsigned naive_grid(long long total) {
  const long long blocks = (total + kNaiveBlock - 1) / kNaiveBlock;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks < (1 << 20) ? blocks : (1 << 20)));
}

void naive_check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  MOESEG_CHECK(err == cudaSuccess, what, ": launch failed: ", cudaGetErrorString(err));
}

// pooled [N*C, h, w] = maxpool(k3, stride f, pad 1) of x [N*C, H, W]; padding never wins (it is
// skipped, i.e. -inf), the first maximum in row-major window order wins (strict >), as the CPU;
// no NaN rule (the lab's inputs hold none).
__global__ void max_pool_k3_naive_kernel(const float* x, float* pooled, int64_t* idx, int H, int W, int h, int w,
                                         int f, long long total) {
  for (long long i = dev::global_index_x(); i < total; i += dev::grid_stride_x()) {
    const int ow = static_cast<int>(i % w);
    const int oh = static_cast<int>((i / w) % h);
    const long long plane = i / (1ll * w * h);
    const float* xp = x + plane * H * W;
    float best = -INFINITY;
    long long arg = -1;
    for (int r = 0; r < 3; ++r) {
      const int ih = oh * f - 1 + r;
      if (ih < 0 || ih >= H) continue;
      for (int q = 0; q < 3; ++q) {
        const int iw = ow * f - 1 + q;
        if (iw < 0 || iw >= W) continue;
        const float v = xp[1ll * ih * W + iw];
        if (arg < 0 || v > best) {
          best = v;
          arg = 1ll * ih * W + iw;
        }
      }
    }
    pooled[i] = best;
    if (idx) idx[i] = arg;
  }
}

// out [N, Ca + Cb, P] = concat(a [N, Ca, P], b [N, Cb, P]) along channels.
__global__ void concat_channels_naive_kernel(const float* a, const float* b, float* out, int Ca, int Cb, long long P,
                                             long long total) {
  for (long long i = dev::global_index_x(); i < total; i += dev::grid_stride_x()) {
    const long long p = i % P;
    const int c = static_cast<int>((i / P) % (Ca + Cb));
    const long long n = i / (P * (Ca + Cb));
    out[i] = c < Ca ? a[(n * Ca + c) * P + p] : b[(n * Cb + (c - Ca)) * P + p];
  }
}

// out [N, O, P] = weight [O, I] . in [N, I, P] + bias [O]: one thread per output, the I products
// read straight from global memory (in is re-read by every one of the O outputs of a pixel).
__global__ void conv1x1_naive_kernel(const float* in, const float* weight, const float* bias, float* out, int I, int O,
                                     long long P, long long total) {
  for (long long i = dev::global_index_x(); i < total; i += dev::grid_stride_x()) {
    const long long p = i % P;
    const int o = static_cast<int>((i / P) % O);
    const long long n = i / (P * O);
    float acc = bias ? bias[o] : 0.f;
    for (int c = 0; c < I; ++c) acc += weight[1ll * o * I + c] * in[(n * I + c) * P + p];
    out[i] = acc;
  }
}

// up [N*C, H, W] = bilinear(align_corners=True) of low [N*C, h, w]. The source coordinate is
// taken in double as the CPU backend does (a float one is off by up to ~h * 1e-7, which moves an
// interpolation weight by more than the validation tolerance at full size); the interpolation
// itself is plain float.
__global__ void upsample_bilinear_ac_naive_kernel(const float* low, float* up, int h, int w, int H, int W,
                                                  long long total) {
  const double sy = H > 1 ? double(h - 1) / double(H - 1) : 0.0, sx = W > 1 ? double(w - 1) / double(W - 1) : 0.0;
  for (long long i = dev::global_index_x(); i < total; i += dev::grid_stride_x()) {
    const int ox = static_cast<int>(i % W);
    const int oy = static_cast<int>((i / W) % H);
    const long long plane = i / (1ll * W * H);
    const double fy = sy * oy, fx = sx * ox;
    int y0 = static_cast<int>(fy), x0 = static_cast<int>(fx);
    y0 = y0 < h - 1 ? y0 : h - 1;
    x0 = x0 < w - 1 ? x0 : w - 1;
    const int y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
    const float ly = static_cast<float>(fy - y0), lx = static_cast<float>(fx - x0);
    const float* lp = low + plane * h * w;
    const float top = (1.f - lx) * lp[1ll * y0 * w + x0] + lx * lp[1ll * y0 * w + x1];
    const float bot = (1.f - lx) * lp[1ll * y1 * w + x0] + lx * lp[1ll * y1 * w + x1];
    up[i] = (1.f - ly) * top + ly * bot;
  }
}

__global__ void add_naive_kernel(const float* a, const float* b, float* out, long long total) {
  for (long long i = dev::global_index_x(); i < total; i += dev::grid_stride_x()) out[i] = a[i] + b[i];
}

}  // namespace

void frru_pool_concat_forward_naive(const float* y, const float* z, float* pooled, float* out, int64_t* indices, int N,
                                    int Cy, int h, int w, int Cz, int H, int W, int factor, cudaStream_t stream) {
  MOESEG_CHECK(N >= 1 && Cy >= 1 && Cz >= 1 && factor >= 1 && h == (H - 1) / factor + 1 && w == (W - 1) / factor + 1,
               "frru_pool_concat_forward_naive: y [", N, ", ", Cy, ", ", h, ", ", w, "] is not maxpool(k3, stride ",
               factor, ", pad 1) of z [", N, ", ", Cz, ", ", H, ", ", W, "]");
  const long long np = 1ll * N * Cz * h * w, nc = 1ll * N * (Cy + Cz) * h * w;
  MOESEG_LAUNCH(max_pool_k3_naive_kernel, naive_grid(np), kNaiveBlock, 0, stream)(z, pooled, indices, H, W, h, w,
                                                                                   factor, np);
  naive_check_launch("frru_pool_concat_forward_naive (max pool)");
  MOESEG_LAUNCH(concat_channels_naive_kernel, naive_grid(nc), kNaiveBlock, 0, stream)(y, pooled, out, Cy, Cz,
                                                                                       1ll * h * w, nc);
  naive_check_launch("frru_pool_concat_forward_naive (concat)");
}

void frru_conv1x1_upsample_add_forward_naive(const float* y_out, const float* weight, const float* bias,
                                             const float* z_in, float* z_out, float* low, float* up, int N, int Cy,
                                             int h, int w, int Cz, int H, int W, cudaStream_t stream) {
  MOESEG_CHECK(N >= 1 && Cy >= 1 && Cz >= 1 && h >= 1 && w >= 1 && h <= H && w <= W,
               "frru_conv1x1_upsample_add_forward_naive: invalid y [", N, ", ", Cy, ", ", h, ", ", w, "] / z [", N,
               ", ", Cz, ", ", H, ", ", W, "]");
  const long long nl = 1ll * N * Cz * h * w, nz = 1ll * N * Cz * H * W;
  MOESEG_LAUNCH(conv1x1_naive_kernel, naive_grid(nl), kNaiveBlock, 0, stream)(y_out, weight, bias, low, Cy, Cz,
                                                                               1ll * h * w, nl);
  naive_check_launch("frru_conv1x1_upsample_add_forward_naive (conv1x1)");
  MOESEG_LAUNCH(upsample_bilinear_ac_naive_kernel, naive_grid(nz), kNaiveBlock, 0, stream)(low, up, h, w, H, W, nz);
  naive_check_launch("frru_conv1x1_upsample_add_forward_naive (upsample)");
  MOESEG_LAUNCH(add_naive_kernel, naive_grid(nz), kNaiveBlock, 0, stream)(z_in, up, z_out, nz);
  naive_check_launch("frru_conv1x1_upsample_add_forward_naive (add)");
}

}  // namespace moeseg::lab::MOESEG_KERNEL_NS
