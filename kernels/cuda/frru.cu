// Full-Resolution Residual Unit pieces of FRRN (spec/reference-systems.md §1.3): the z-stream
// pooling fused with the concat that feeds the FRRU's first conv, and the 1x1 conv + bilinear
// upsampling (align_corners=True) + residual add that returns the FRRU's output to the z stream,
// forward and backward. Tested through CUDA-on-CPU against the composition of the CPU ops
// (max_pool2d, concat, conv2d, upsample_bilinear2d, add) and their autograd: tests/cuda_kernels/test_frru.cpp.
//
// Roofline (FRRN-A, spec §1.3 table A: z = 32 x H x W full resolution, y at H/f x W/f; batch 2;
// fp32; bytes = compulsory HBM traffic, each tensor read or written once; FLOPs: pooling counts
// its 8 compares per pooled value, conv1x1_upsample_add 2 * Cy * 32 per low-res pixel + bias +
// 10 per z element (6 mul + 3 add of the interpolation, 1 add of the residual)). Floors use the
// H100 SXM figures 67 TFLOP/s fp32 (non-tensor) and 3.35 TB/s HBM3: the ridge is 20 FLOP/byte,
// and both pieces sit at 0-5 FLOP/byte, so both are memory-bound and the floor is bytes / 3.35 TB/s.
// pool_concat forward writes int64 indices (training); conv1x1_upsample_add's extra line is the
// low-res 32-channel map's write + read (L2-resident: <= 10 MB at 240x320, <= 40 MB at 480x640).
//   at 240x320:  f  Cy_in->Cy_out   pool_concat MB (floor us)   conv1x1_upsample_add MFLOP, MB (floor us) +low-res MB
//                2   48 ->  96        49.2 (14.7)                 286, 54.1 (16.1) +9.8
//                2   96 ->  96        63.9 (19.1)                 286, 54.1 (16.1) +9.8
//                4  192 -> 192        38.1 (11.4)                 167, 46.7 (13.9) +2.5
//                8  384 -> 384        28.0 ( 8.3)                 108, 43.0 (12.8) +0.6
//               16  384 -> 384        21.7 ( 6.5)                  64, 40.2 (12.0) +0.15
//   at 480x640 every figure x4 (e.g. f2 96->96: 255.6 MB / 76.3 us and 1145 MFLOP, 216 MB / 64.6 us).
//   Per forward, all 17 FRRUs (3 + 4 + 2 + 2 encoder, 2 + 2 + 2 decoder):
//     240x320: pool_concat 703 MB -> 210 us; conv1x1_upsample_add 2.94 GFLOP (44 us of compute),
//              799 MB -> 239 us (+67 MB low-res round trip); together 449 us.
//     480x640: pool_concat 2813 MB -> 840 us; conv1x1_upsample_add 11.75 GFLOP (175 us of compute),
//              3197 MB -> 954 us (+267 MB low-res); together 1.79 ms.
// The z stream (32 channels at full resolution, read and written by every FRRU) is most of the
// bytes, so what counts is touching z as few times as possible:
//  * pool_concat reads z once (the 3x3 windows overlap only at stride 2, and the overlap hits L1/L2),
//    writes the concat buffer the first conv reads directly (no separate pooled z tensor and no
//    concat copy: the unfused ops would move the pooled z three more times);
//  * conv1x1_upsample_add computes the 1x1 conv at low resolution (the only FLOP-heavy part,
//    shared-memory tiles of 32 outputs x 64 pixels so y_out is read once) into a 1/f^2-sized
//    workspace, then one pass reads z_in, interpolates from the L2-resident low-res map and writes
//    z_out (in place allowed): z is read once and written once, the unfused path (conv out,
//    upsample out, add) would write and re-read a full-resolution 32-channel tensor twice more.
//    The remaining gap to the floor is the low-res round trip (1/f^2 of z's traffic, mostly L2).
// Backward: the same gather-form (no atomics) passes: z's gradient is read once to form the
// low-res gradient; weight gradients are per-chunk partials summed in a fixed order.
#include "kernels/cuda/bilinear_axis.cuh"
#include "kernels/cuda/pool_window.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kFrruBlock = 256;
constexpr int kFrruPoolK = 3, kFrruPoolPad = 1;   // maxpool(k3, stride f, pad 1)
// 1x1 conv tiles: 32 output channels x 64 pixels per block, input channels in steps of 32.
constexpr int kC1Tile = 32;
constexpr int kC1Pix = 64;
constexpr int kC1Groups = kFrruBlock / kC1Pix;         // 4 thread rows over the output channels
constexpr int kC1PerThread = kC1Tile / kC1Groups;      // 8 outputs per thread
// Weight gradient: 32 x 32 (co, ci) tile per block over a chunk of kWgChunk pixels of one image.
constexpr int kWgTile = 32;
constexpr int kWgChunk = 1024;
constexpr int kWgRows = kFrruBlock / kWgTile;          // 8
constexpr int kWgPerThread = kWgTile / kWgRows;        // 4

struct FrruDims {
  int N, Cy, Cz, h, w, H, W;
  MOESEG_HOST_DEVICE long long hw() const { return static_cast<long long>(h) * w; }
  MOESEG_HOST_DEVICE long long HW() const { return static_cast<long long>(H) * W; }
};

// out [N, Cy + Cz, h, w]: channels < Cy copy y, the others max-pool z. One thread per output.
__global__ void __launch_bounds__(kFrruBlock)
frru_pool_concat_forward_kernel(const float* y, const float* z, float* out, int64_t* idx, FrruDims d, int f) {
  const long long hw = d.hw(), Ct = d.Cy + d.Cz, total = d.N * Ct * hw;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long nc = t / hw, n = nc / Ct;
    const int c = static_cast<int>(nc - n * Ct);
    const long long pix = t - nc * hw;
    if (c < d.Cy) {
      out[t] = y[(n * d.Cy + c) * hw + pix];
    } else {
      const long long zp = n * d.Cz + (c - d.Cy);
      const int oh = static_cast<int>(pix / d.w), ow = static_cast<int>(pix - static_cast<long long>(oh) * d.w);
      long long arg;
      out[t] = max_pool_window(z + zp * d.HW(), d.H, d.W, oh, ow, kFrruPoolK, f, kFrruPoolPad, &arg);
      if (idx) idx[zp * hw + pix] = arg;
    }
  }
}

// Threads [0, N*Cy*hw) copy grad_y out of grad_out (when grad_y is wanted); the rest gather
// grad_z per z pixel through the argmax indices (deterministic, output order).
__global__ void __launch_bounds__(kFrruBlock)
frru_pool_concat_backward_kernel(const float* gout, const int64_t* idx, float* gy, float* gz, FrruDims d, int f) {
  const long long hw = d.hw(), Ct = d.Cy + d.Cz;
  const long long ny = gy ? d.N * d.Cy * hw : 0, total = ny + d.N * d.Cz * d.HW();
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    if (t < ny) {
      const long long nc = t / hw, n = nc / d.Cy, c = nc - n * d.Cy;
      gy[t] = gout[(n * Ct + c) * hw + (t - nc * hw)];
    } else {
      const long long u = t - ny, zp = u / d.HW(), n = zp / d.Cz, c = zp - n * d.Cz;
      const int r = static_cast<int>(u - zp * d.HW()), ih = r / d.W, iw = r - ih * d.W;
      gz[u] = max_pool_grad_gather(gout + (n * Ct + d.Cy + c) * hw, idx + zp * hw, d.W, d.h, d.w, ih, iw, kFrruPoolK,
                                   f, kFrruPoolPad);
    }
  }
}

// out [N, O, P] = A [O, I] . in [N, I, P] (+ bias [O]) per image, A = weight [O, I] (forward:
// O = Cz, I = Cy) or its transpose weight [I, O] (kTransposed, the backward's grad input:
// O = Cy, I = Cz). Block: 32 outputs x 64 pixels, the input channels staged through shared memory
// 32 at a time, so every input value is read from global memory once per 32 outputs (once in
// total for the forward's Cz = 32). Float accumulation with FMA in input-channel order.
template <bool kTransposed>
__global__ void __launch_bounds__(kFrruBlock)
frru_conv1x1_kernel(const float* in, const float* weight, const float* bias, float* out, int I, int O, long long P,
                    int ptiles) {
  __shared__ float As[kC1Tile][kC1Tile + 1];   // [o][i]
  __shared__ float Xs[kC1Tile][kC1Pix];        // [i][p]
  const int tid = static_cast<int>(linear_thread_id());
  const long long n = blockIdx.x / ptiles, p0 = (blockIdx.x - n * ptiles) * static_cast<long long>(kC1Pix);
  const int o0 = blockIdx.y * kC1Tile;
  const int pl = tid % kC1Pix, og = tid / kC1Pix;
  const float* inb = in + n * I * P;
  float acc[kC1PerThread];
  MOESEG_UNROLL
  for (int j = 0; j < kC1PerThread; ++j) acc[j] = 0.f;
  for (int i0 = 0; i0 < I; i0 += kC1Tile) {
    for (int e = tid; e < kC1Tile * kC1Tile; e += kFrruBlock) {
      const int oo = e / kC1Tile, ii = e % kC1Tile, o = o0 + oo, i = i0 + ii;
      float a = 0.f;
      if (o < O && i < I) a = kTransposed ? weight[static_cast<long long>(i) * O + o] : weight[static_cast<long long>(o) * I + i];
      As[oo][ii] = a;
    }
    for (int e = tid; e < kC1Tile * kC1Pix; e += kFrruBlock) {
      const int ii = e / kC1Pix, pp = e % kC1Pix, i = i0 + ii;
      const long long p = p0 + pp;
      Xs[ii][pp] = (i < I && p < P) ? inb[static_cast<long long>(i) * P + p] : 0.f;
    }
    sync_threads();
    for (int ii = 0; ii < kC1Tile; ++ii) {
      const float xv = Xs[ii][pl];
      MOESEG_UNROLL
      for (int j = 0; j < kC1PerThread; ++j) acc[j] = fmaf(As[og + kC1Groups * j][ii], xv, acc[j]);
    }
    sync_threads();
  }
  const long long p = p0 + pl;
  if (p < P) {
    MOESEG_UNROLL
    for (int j = 0; j < kC1PerThread; ++j) {
      const int o = o0 + og + kC1Groups * j;
      if (o < O) out[(n * O + o) * P + p] = bias ? acc[j] + bias[o] : acc[j];
    }
  }
}

// z_out = z_in + bilinear(low) at (H, W), align_corners=True. One thread per z element.
__global__ void __launch_bounds__(kFrruBlock)
frru_upsample_add_kernel(const float* low, const float* z_in, float* z_out, FrruDims d) {
  const long long HW = d.HW(), total = static_cast<long long>(d.N) * d.Cz * HW;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / HW;
    const int r = static_cast<int>(t - plane * HW), oy = r / d.W, ox = r - oy * d.W;
    const LinearTap ty = linear_tap(oy, d.h, d.H, true), tx = linear_tap(ox, d.w, d.W, true);
    z_out[t] = fadd_rn(z_in[t], bilinear_sample(low + plane * d.hw(), d.w, ty, tx));
  }
}

// grad of the low-resolution map [N, Cz, h, w] from grad z_out: the bilinear backward (gather).
__global__ void __launch_bounds__(kFrruBlock) frru_upsample_grad_kernel(const float* gz, float* glow, FrruDims d) {
  const long long hw = d.hw(), total = static_cast<long long>(d.N) * d.Cz * hw;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    const long long plane = t / hw;
    const int r = static_cast<int>(t - plane * hw), iy = r / d.w, ix = r - iy * d.w;
    glow[t] = bilinear_grad_gather(gz + plane * d.HW(), d.h, d.w, d.H, d.W, true, iy, ix);
  }
}

// partial[b][co][ci] = sum over the chunk's pixels of glow[n, co, p] * y[n, ci, p], and
// partial[b][co][Cy] = sum of glow[n, co, p] (bias; blocks of the first ci tile), b = blockIdx.x.
__global__ void __launch_bounds__(kFrruBlock)
frru_conv1x1_wgrad_partial_kernel(const float* glow, const float* y, FrruDims d, int pchunks, float* partial) {
  __shared__ float Gs[kWgTile][kWgTile + 1];   // [co][pixel]
  __shared__ float Ys[kWgTile][kWgTile + 1];   // [ci][pixel]
  const int tid = static_cast<int>(linear_thread_id());
  const long long P = d.hw(), n = blockIdx.x / pchunks;
  const long long pbeg = (blockIdx.x - n * pchunks) * static_cast<long long>(kWgChunk);
  const long long pend = pbeg + kWgChunk < P ? pbeg + kWgChunk : P;
  const int co0 = blockIdx.y * kWgTile, ci0 = blockIdx.z * kWgTile;
  const int tc = tid % kWgTile, tr = tid / kWgTile;
  const bool bias_thread = blockIdx.z == 0 && tid < kWgTile;
  float acc[kWgPerThread];
  MOESEG_UNROLL
  for (int j = 0; j < kWgPerThread; ++j) acc[j] = 0.f;
  float bacc = 0.f;
  for (long long q0 = pbeg; q0 < pend; q0 += kWgTile) {
    for (int e = tid; e < kWgTile * kWgTile; e += kFrruBlock) {
      const int cc = e / kWgTile, q = e % kWgTile;
      const long long p = q0 + q;
      const int co = co0 + cc, ci = ci0 + cc;
      Gs[cc][q] = (co < d.Cz && p < pend) ? glow[(n * d.Cz + co) * P + p] : 0.f;
      Ys[cc][q] = (ci < d.Cy && p < pend) ? y[(n * d.Cy + ci) * P + p] : 0.f;
    }
    sync_threads();
    for (int q = 0; q < kWgTile; ++q) {
      const float yv = Ys[tc][q];
      MOESEG_UNROLL
      for (int j = 0; j < kWgPerThread; ++j) acc[j] = fmaf(Gs[tr + kWgRows * j][q], yv, acc[j]);
    }
    if (bias_thread)
      for (int q = 0; q < kWgTile; ++q) bacc += Gs[tid][q];
    sync_threads();
  }
  const long long row = static_cast<long long>(d.Cy) + 1;
  float* pb = partial + static_cast<long long>(blockIdx.x) * d.Cz * row;
  const int ci = ci0 + tc;
  MOESEG_UNROLL
  for (int j = 0; j < kWgPerThread; ++j) {
    const int co = co0 + tr + kWgRows * j;
    if (co < d.Cz && ci < d.Cy) pb[co * row + ci] = acc[j];
  }
  if (bias_thread && co0 + tid < d.Cz) pb[(co0 + tid) * row + d.Cy] = bacc;
}

// grad_weight [Cz, Cy] and grad_bias [Cz]: the chunk partials summed in chunk order, in double.
__global__ void __launch_bounds__(kFrruBlock)
frru_conv1x1_wgrad_final_kernel(const float* partial, long long chunks, FrruDims d, float* gw, float* gb) {
  const long long row = static_cast<long long>(d.Cy) + 1, total = d.Cz * row;
  for (long long t = global_index_x(); t < total; t += grid_stride_x()) {
    double s = 0;
    for (long long b = 0; b < chunks; ++b) s += partial[b * total + t];
    const long long co = t / row, ci = t - co * row;
    if (ci < d.Cy) {
      if (gw) gw[co * d.Cy + ci] = static_cast<float>(s);
    } else if (gb) {
      gb[co] = static_cast<float>(s);
    }
  }
}

inline FrruDims frru_dims(const char* op, int N, int Cy, int h, int w, int Cz, int H, int W) {
  MOESEG_CHECK(N >= 1 && Cy >= 1 && Cz >= 1 && h >= 1 && w >= 1 && H >= 1 && W >= 1, op, ": y [", N, ", ", Cy,
               ", ", h, ", ", w, "] and z [", N, ", ", Cz, ", ", H, ", ", W, "] must be non-empty");
  return FrruDims{N, Cy, Cz, h, w, H, W};
}

inline void frru_check_pool(const char* op, const FrruDims& d, int f) {
  MOESEG_CHECK(f >= 1, op, ": factor ", f, " must be >= 1");
  const int ph = pool2d_out_size(d.H, kFrruPoolK, f, kFrruPoolPad), pw = pool2d_out_size(d.W, kFrruPoolK, f, kFrruPoolPad);
  MOESEG_CHECK(d.H + 2 * kFrruPoolPad >= kFrruPoolK && d.W + 2 * kFrruPoolPad >= kFrruPoolK && ph == d.h && pw == d.w,
               op, ": maxpool(k3, stride ", f, ", pad 1) of z [", d.N, ", ", d.Cz, ", ", d.H, ", ", d.W, "] is ", ph,
               "x", pw, ", not y's ", d.h, "x", d.w, " (y [", d.N, ", ", d.Cy, ", ", d.h, ", ", d.w, "])");
}

inline long long wg_chunks(const FrruDims& d) {
  return static_cast<long long>(d.N) * ((d.hw() + kWgChunk - 1) / kWgChunk);
}
inline long long round4(long long n) { return (n + 3) / 4 * 4; }

template <bool kTransposed>
void launch_conv1x1(const float* in, const float* weight, const float* bias, float* out, int N, int I, int O,
                    long long P, cudaStream_t stream) {
  const long long ptiles = (P + kC1Pix - 1) / kC1Pix;
  MOESEG_CHECK(N * ptiles < (1ll << 31) && (O + kC1Tile - 1) / kC1Tile <= 65535, "frru conv1x1: grid of ", N * ptiles,
               " x ", (O + kC1Tile - 1) / kC1Tile, " blocks is too large");
  auto* k = &frru_conv1x1_kernel<kTransposed>;
  MOESEG_LAUNCH(k, dim3(static_cast<unsigned>(N * ptiles), static_cast<unsigned>((O + kC1Tile - 1) / kC1Tile)),
                kFrruBlock, 0, stream)(in, weight, bias, out, I, O, P, static_cast<int>(ptiles));
}

}  // namespace detail

void frru_pool_concat_forward(const float* y, const float* z, float* out, int64_t* indices, int N, int Cy, int h,
                              int w, int Cz, int H, int W, int factor, cudaStream_t stream) {
  using namespace detail;
  const FrruDims d = frru_dims("frru_pool_concat_forward", N, Cy, h, w, Cz, H, W);
  frru_check_pool("frru_pool_concat_forward", d, factor);
  MOESEG_LAUNCH(frru_pool_concat_forward_kernel, grid_for(static_cast<long long>(N) * (Cy + Cz) * d.hw(), kFrruBlock),
                kFrruBlock, 0, stream)(y, z, out, indices, d, factor);
  check_launch("frru_pool_concat_forward");
}

void frru_pool_concat_backward(const float* grad_out, const int64_t* indices, float* grad_y, float* grad_z, int N,
                               int Cy, int h, int w, int Cz, int H, int W, int factor, cudaStream_t stream) {
  using namespace detail;
  const FrruDims d = frru_dims("frru_pool_concat_backward", N, Cy, h, w, Cz, H, W);
  frru_check_pool("frru_pool_concat_backward", d, factor);
  MOESEG_CHECK(indices != nullptr && grad_z != nullptr, "frru_pool_concat_backward: indices and grad_z are required "
               "(z [", N, ", ", Cz, ", ", H, ", ", W, "])");
  const long long total = (grad_y ? static_cast<long long>(N) * Cy * d.hw() : 0) + static_cast<long long>(N) * Cz * d.HW();
  MOESEG_LAUNCH(frru_pool_concat_backward_kernel, grid_for(total, kFrruBlock), kFrruBlock, 0, stream)(
      grad_out, indices, grad_y, grad_z, d, factor);
  check_launch("frru_pool_concat_backward");
}

size_t frru_conv1x1_upsample_add_forward_workspace_floats(int N, int Cz, int h, int w) {
  return static_cast<size_t>(static_cast<long long>(N) * Cz * h * w);
}

void frru_conv1x1_upsample_add_forward(const float* y_out, const float* weight, const float* bias, const float* z_in,
                                       float* z_out, float* workspace, int N, int Cy, int h, int w, int Cz, int H,
                                       int W, cudaStream_t stream) {
  using namespace detail;
  const FrruDims d = frru_dims("frru_conv1x1_upsample_add_forward", N, Cy, h, w, Cz, H, W);
  MOESEG_CHECK(workspace != nullptr, "frru_conv1x1_upsample_add_forward: workspace (",
               frru_conv1x1_upsample_add_forward_workspace_floats(N, Cz, h, w), " floats) is required (y [", N, ", ",
               Cy, ", ", h, ", ", w, "])");
  launch_conv1x1<false>(y_out, weight, bias, workspace, N, Cy, Cz, d.hw(), stream);
  check_launch("frru_conv1x1_upsample_add_forward (conv1x1)");
  MOESEG_LAUNCH(frru_upsample_add_kernel, grid_for(static_cast<long long>(N) * Cz * d.HW(), kFrruBlock), kFrruBlock, 0,
                stream)(workspace, z_in, z_out, d);
  check_launch("frru_conv1x1_upsample_add_forward (upsample + add)");
}

size_t frru_conv1x1_upsample_add_backward_workspace_floats(int N, int Cy, int h, int w, int Cz) {
  using namespace detail;
  const FrruDims d{N, Cy, Cz, h, w, 1, 1};
  return static_cast<size_t>(round4(static_cast<long long>(N) * Cz * d.hw()) +
                             wg_chunks(d) * Cz * (static_cast<long long>(Cy) + 1));
}

void frru_conv1x1_upsample_add_backward(const float* grad_z_out, const float* y_out, const float* weight,
                                        float* grad_y_out, float* grad_weight, float* grad_bias, float* workspace,
                                        int N, int Cy, int h, int w, int Cz, int H, int W, cudaStream_t stream) {
  using namespace detail;
  const FrruDims d = frru_dims("frru_conv1x1_upsample_add_backward", N, Cy, h, w, Cz, H, W);
  MOESEG_CHECK(workspace != nullptr && is_aligned16(workspace), "frru_conv1x1_upsample_add_backward: workspace (",
               frru_conv1x1_upsample_add_backward_workspace_floats(N, Cy, h, w, Cz),
               " floats) must be given and 16-byte aligned (y [", N, ", ", Cy, ", ", h, ", ", w, "])");
  if (!grad_y_out && !grad_weight && !grad_bias) return;
  float* glow = workspace;
  MOESEG_LAUNCH(frru_upsample_grad_kernel, grid_for(static_cast<long long>(N) * Cz * d.hw(), kFrruBlock), kFrruBlock,
                0, stream)(grad_z_out, glow, d);
  check_launch("frru_conv1x1_upsample_add_backward (upsample grad)");
  if (grad_y_out) {
    launch_conv1x1<true>(glow, weight, nullptr, grad_y_out, N, Cz, Cy, d.hw(), stream);
    check_launch("frru_conv1x1_upsample_add_backward (grad y_out)");
  }
  if (grad_weight || grad_bias) {
    const long long chunks = wg_chunks(d), pchunks = chunks / N;
    float* partial = workspace + round4(static_cast<long long>(N) * Cz * d.hw());
    MOESEG_CHECK(chunks < (1ll << 31) && (Cz + kWgTile - 1) / kWgTile <= 65535 && (Cy + kWgTile - 1) / kWgTile <= 65535,
                 "frru_conv1x1_upsample_add_backward: weight-gradient grid too large for y [", N, ", ", Cy, ", ", h,
                 ", ", w, "]");
    const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>((Cz + kWgTile - 1) / kWgTile),
                    static_cast<unsigned>((Cy + kWgTile - 1) / kWgTile));
    MOESEG_LAUNCH(frru_conv1x1_wgrad_partial_kernel, grid, kFrruBlock, 0, stream)(glow, y_out, d,
                                                                                  static_cast<int>(pchunks), partial);
    check_launch("frru_conv1x1_upsample_add_backward (weight grad partials)");
    MOESEG_LAUNCH(frru_conv1x1_wgrad_final_kernel, grid_for(static_cast<long long>(Cz) * (Cy + 1), kFrruBlock),
                  kFrruBlock, 0, stream)(partial, chunks, d, grad_weight, grad_bias);
    check_launch("frru_conv1x1_upsample_add_backward (weight grad)");
  }
}

}  // namespace moeseg::MOESEG_KERNEL_NS
