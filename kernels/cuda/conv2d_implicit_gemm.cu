// conv2d_implicit_gemm: atrous (dilated) 2-D convolution as implicit GEMM — forward (optional
// fused bias + ReLU), backward-data and backward-weight, any stride / padding / dilation / groups.
// The CUDA backend's conv op; DeepLabv3+'s ASPP (rates 6/12/18), ResNet's dilated stages and the
// FRRN units run on it. NCHW float32, weight [C_out, C_in/groups, kh, kw].
// Compiled by nvcc for the GPU and by g++ for CUDA-on-CPU (tests/cuda_kernels/test_conv2d.cpp,
// against kernels/conv2d_cpu.h).
//
// The three passes are one tiled GEMM engine (igemm_kernel) with different operand gathers, per
// group g (blockIdx.z):
//   forward   Y[co, p]  = sum_k  W[co, k] * im2col(X)[k, p]          M=C_out/g, N=n*Ho*Wo, K=C_in/g*kh*kw
//   bwd-data  dX[ci, q] = sum_k  W^T[ci, k] * gather(dY)[k, q]       M=C_in/g,  N=n*H*W,   K=C_out/g*kh*kw
//             (k = (co, r, s); gather(dY) is dY[oh, ow] where ih = oh*sh - ph + r*dh solves exactly
//             and in range, else 0: every dX element is written once by one thread, no scatter)
//   bwd-wgt   dW[co, k] = sum_p  dY[co, p] * im2col(X)^T[p, k]       M=C_out/g, N=C_in/g*kh*kw, K=n*Ho*Wo
// Tiling: a 256-thread block owns a 64x64 output tile; K is walked in 16-deep slices staged in
// shared memory, double-buffered (the next slice is loaded from global into registers while the
// current one is multiplied, then stored to the other buffer: one barrier per slice); each thread
// accumulates a 4x4 register tile (16 FMAs per 8 shared loads).
//
// Determinism (DESIGN.md: no float atomics): forward and bwd-data write each output once. bwd-wgt
// splits K = n*Ho*Wo into a fixed number of chunks that depends only on the shape; each chunk's
// block writes its own partial tile to a workspace and a second kernel sums the chunks in
// chunk order (bit-identical run to run). dbias is one block per channel, a fixed-order
// per-thread sum in double followed by block_reduce_sum (fixed tree).
//
// Roofline notes (float32; H100 SXM: ~67 TFLOP/s dense FP32 FMA without tensor cores, ~3.35 TB/s HBM3):
//   FRRN-A FRRU 384->384 3x3 at 30x40, batch 2: 2*2400*384*3456 = 6.4 GFLOP forward; bytes (x + w + y,
//     each once) = 3.7 MB + 5.3 MB + 3.7 MB = 12.7 MB. Floor: compute 95 us vs memory 4 us -> compute bound
//     (AI ~500 FLOP/B). Only 38 x 6 = 228 output tiles of 64x64: ~1.7 waves on 132 SMs.
//   FRRN-A RU 48->48 3x3 at 480x640, batch 2: 2*614400*48*432 = 25.5 GFLOP; bytes 118 MB (x) + 118 MB
//     (y) + 83 KB (w) = 236 MB. Floor: compute 380 us vs memory 70 us -> compute bound (AI ~108), but
//     M = 48 only fills 48/64 of a tile row (25% of the FMAs wasted on padding rows).
//   DeepLabv3+ ASPP 2048->256 3x3 dilation 12 at 57x57, batch 1 (x2 for batch 2): 2*3249*256*18432 =
//     30.7 GFLOP; bytes 26.6 MB (x) + 18.9 MB (w) + 3.3 MB (y) = 49 MB. Floor: 458 us compute vs 15 us
//     memory -> compute bound. With dilation 12 and padding 12, ~40% of the im2col taps at the border
//     of a 57x57 map fall into the padding (read as 0, still multiplied).
//   Backward-data and backward-weight have the same FLOPs as forward each (3x forward for a step).
// What the kernel does to approach the FP32 floor: every x / w element is read from global memory
// once per tile (64x reuse from shared memory across the tile's other dimension), a 4x4 register
// tile per thread (arithmetic intensity from shared memory 2 FLOP per 1 B), double-buffered slices
// so the global loads of slice k+1 overlap the FMAs of slice k, the bwd-weight split-K so that small
// outputs (3x3 weights) still fill 132 SMs. What it does not do yet (the gap to ~70-80% of peak):
// 8x8 register tiles on 128x128 block tiles (halves shared traffic per FMA), vectorized 16-byte
// global loads on the contiguous operand, precomputed per-column (n, oh, ow) decompositions (the
// gathers pay integer divisions per element), and bank-conflict-free transposed stores of the
// k-contiguous operand (the As store is still 2-way conflicted with the +4 padding).
// A TF32 tensor-core version (mma.sync m16n8k8 through cp.async multistage pipelines, ~495 TFLOP/s
// dense on H100, 7x the FP32 FMA peak) would move all three shapes from ~100-450 us to memory- and
// latency-bound tens of microseconds, at 10-bit mantissa inputs (FP32 accumulate) — it needs inline
// PTX or WMMA, i.e. a separate nvcc-only path next to this portable one.
#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kBM = 64, kBN = 64, kBK = 16;   // block tile and K slice
constexpr int kIgThreads = 256;                // 16 x 16 threads, 4 x 4 outputs each
constexpr int kTM = 4, kTN = 4;
// Padding of the shared rows: the As stores come from threads with consecutive k (the contiguous
// direction of the weights in global memory), so without padding 16 threads would hit one bank;
// with +4 a warp's 32 stores fall on 16 banks (2-way).
constexpr int kSPad = 4;

// Shape shared by the gathers (int: every tensor here has < 2^31 elements; checked on the host).
struct ConvDims {
  int n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, ho, wo;
  int cin_g, cout_g, khw;
};

// ---- operand gathers: element (row, col) of a GEMM operand for group g, 0 outside the tensor --
// Forward A: W[g*cout_g + m, k] (k = ci*khw + rs, contiguous).
struct FwdA {
  const float* w;
  ConvDims d;
  MOESEG_DEVICE float operator()(int g, int m, int k, int M, int K) const {
    if (m >= M || k >= K) return 0.f;
    return w[(static_cast<long long>(g) * d.cout_g + m) * K + k];
  }
};
// im2col(X)[k, p] for group g; k = (ci, r, s), p = (n, oh, ow). Shared by forward B and bwd-weight B.
MOESEG_DEVICE float im2col_at(const float* x, const ConvDims& d, int g, int k, int p) {
  const int ci = k / d.khw, rs = k - ci * d.khw;
  const int r = rs / d.kw, s = rs - r * d.kw;
  const int hw = d.ho * d.wo;
  const int nb = p / hw, pp = p - nb * hw;
  const int oh = pp / d.wo, ow = pp - oh * d.wo;
  const int ih = oh * d.sh - d.ph + r * d.dh, iw = ow * d.sw - d.pw + s * d.dw;
  if (ih < 0 || ih >= d.h || iw < 0 || iw >= d.w) return 0.f;   // zero padding
  return x[((static_cast<long long>(nb) * d.cin + g * d.cin_g + ci) * d.h + ih) * d.w + iw];
}
struct FwdB {
  const float* x;
  ConvDims d;
  MOESEG_DEVICE float operator()(int g, int k, int p, int K, int N) const {
    if (k >= K || p >= N) return 0.f;
    return im2col_at(x, d, g, k, p);
  }
};
// Backward-data A: W^T[ci, k] = W[g*cout_g + co, ci, r, s], k = co*khw + rs.
struct BwdDataA {
  const float* w;
  ConvDims d;
  MOESEG_DEVICE float operator()(int g, int m, int k, int M, int K) const {
    if (m >= M || k >= K) return 0.f;
    const int co = k / d.khw, rs = k - co * d.khw;
    return w[((static_cast<long long>(g) * d.cout_g + co) * d.cin_g + m) * d.khw + rs];
  }
};
// Backward-data B: dY[n, g*cout_g + co, oh, ow] with ih + ph - r*dh = oh*sh (exactly, in range),
// q = (n, ih, iw) an input pixel; else 0.
struct BwdDataB {
  const float* dy;
  ConvDims d;
  MOESEG_DEVICE float operator()(int g, int k, int q, int K, int N) const {
    if (k >= K || q >= N) return 0.f;
    const int co = k / d.khw, rs = k - co * d.khw;
    const int r = rs / d.kw, s = rs - r * d.kw;
    const int hw = d.h * d.w;
    const int nb = q / hw, qq = q - nb * hw;
    const int ih = qq / d.w, iw = qq - ih * d.w;
    const int th = ih + d.ph - r * d.dh, tw = iw + d.pw - s * d.dw;
    if (th < 0 || tw < 0) return 0.f;
    const int oh = th / d.sh, ow = tw / d.sw;
    if (oh * d.sh != th || ow * d.sw != tw || oh >= d.ho || ow >= d.wo) return 0.f;
    return dy[((static_cast<long long>(nb) * d.cout + g * d.cout_g + co) * d.ho + oh) * d.wo + ow];
  }
};
// Backward-weight A: dY[co, p] for group g, p = (n, oh, ow).
struct BwdWeightA {
  const float* dy;
  ConvDims d;
  MOESEG_DEVICE float operator()(int g, int m, int p, int M, int K) const {
    if (m >= M || p >= K) return 0.f;
    const int hw = d.ho * d.wo;
    const int nb = p / hw, pp = p - nb * hw;
    return dy[(static_cast<long long>(nb) * d.cout + g * d.cout_g + m) * hw + pp];
  }
};
// Backward-weight B: im2col(X)^T[p, k].
struct BwdWeightB {
  const float* x;
  ConvDims d;
  MOESEG_DEVICE float operator()(int g, int p, int k, int K, int N) const {
    if (p >= K || k >= N) return 0.f;
    return im2col_at(x, d, g, k, p);
  }
};

// ---- epilogues: (g, split, m, n, value) for m < M, n < N --------------------------------------
struct FwdEpi {
  float* y;
  const float* bias;   // nullable
  int relu;
  ConvDims d;
  MOESEG_DEVICE void operator()(int g, int, int m, int p, float v) const {
    const int co = g * d.cout_g + m;
    if (bias) v += bias[co];
    if (relu) v = v > 0.f ? v : 0.f;
    const int hw = d.ho * d.wo;
    const int nb = p / hw, pp = p - nb * hw;
    y[(static_cast<long long>(nb) * d.cout + co) * hw + pp] = v;
  }
};
struct BwdDataEpi {
  float* dx;
  ConvDims d;
  MOESEG_DEVICE void operator()(int g, int, int m, int q, float v) const {
    const int hw = d.h * d.w;
    const int nb = q / hw, qq = q - nb * hw;
    dx[(static_cast<long long>(nb) * d.cin + g * d.cin_g + m) * hw + qq] = v;
  }
};
// partial[split][g*cout_g + m][k]; with one split this is dW itself.
struct BwdWeightEpi {
  float* partial;
  ConvDims d;
  MOESEG_DEVICE void operator()(int g, int split, int m, int k, float v) const {
    partial[(static_cast<long long>(split) * d.cout + g * d.cout_g + m) * (d.cin_g * d.khw) + k] = v;
  }
};

// The GEMM engine. grid = (ceil(N/64), ceil(M/64), groups * splits); block = 256.
// C[m, n] = sum_{k in this split's range} A(m, k) * B(k, n); k_chunk is a multiple of kBK.
template <class LA, class LB, class Epi>
__global__ void __launch_bounds__(kIgThreads, 2)
conv2d_igemm_kernel(LA la, LB lb, Epi epi, int M, int N, int K, int splits, int k_chunk) {
  __shared__ float As[2][kBK][kBM + kSPad];
  __shared__ float Bs[2][kBK][kBN + kSPad];
  const int tid = static_cast<int>(threadIdx.x);
  const int g = static_cast<int>(blockIdx.z) / splits, split = static_cast<int>(blockIdx.z) % splits;
  const int m0 = static_cast<int>(blockIdx.y) * kBM, n0 = static_cast<int>(blockIdx.x) * kBN;
  const int k_lo = split * k_chunk;
  const int k_hi = K < k_lo + k_chunk ? K : k_lo + k_chunk;

  // Load mappings (4 elements of each operand per thread per slice):
  //   A: k = tid % 16 (consecutive threads walk k: coalesced for the weights), m = tid / 16 + 16*i
  //   B: n = tid % 64 (consecutive threads walk n: coalesced for im2col rows), k = tid / 64 + 4*i
  const int a_k = tid % kBK, a_m = tid / kBK;
  const int b_n = tid % kBN, b_k = tid / kBN;
  float ra[4], rb[4];
  auto load_regs = [&](int k0) {
MOESEG_UNROLL
    for (int i = 0; i < 4; ++i) {
      ra[i] = la(g, m0 + a_m + 16 * i, k0 + a_k, M, k_hi);
      rb[i] = lb(g, k0 + b_k + 4 * i, n0 + b_n, k_hi, N);
    }
  };
  auto store_smem = [&](int buf) {
MOESEG_UNROLL
    for (int i = 0; i < 4; ++i) {
      As[buf][a_k][a_m + 16 * i] = ra[i];
      Bs[buf][b_k + 4 * i][b_n] = rb[i];
    }
  };

  // Compute mapping: thread (ty, tx) owns rows m0 + ty*4 + [0,4), cols n0 + tx*4 + [0,4).
  const int tx = tid % 16, ty = tid / 16;
  float acc[kTM][kTN];
MOESEG_UNROLL
  for (int i = 0; i < kTM; ++i)
MOESEG_UNROLL
    for (int j = 0; j < kTN; ++j) acc[i][j] = 0.f;

  // Every thread runs the same number of iterations (k_lo/k_hi are per block), so every thread
  // reaches every barrier. An empty range (possible only for the last split) skips the loop.
  int buf = 0;
  if (k_lo < k_hi) {
    load_regs(k_lo);
    store_smem(0);
  }
  sync_threads();
  for (int k0 = k_lo; k0 < k_hi; k0 += kBK) {
    const bool has_next = k0 + kBK < k_hi;
    if (has_next) load_regs(k0 + kBK);   // global loads in flight during the FMAs below
MOESEG_UNROLL
    for (int kk = 0; kk < kBK; ++kk) {
      float a[kTM], b[kTN];
MOESEG_UNROLL
      for (int i = 0; i < kTM; ++i) a[i] = As[buf][kk][ty * kTM + i];
MOESEG_UNROLL
      for (int j = 0; j < kTN; ++j) b[j] = Bs[buf][kk][tx * kTN + j];
MOESEG_UNROLL
      for (int i = 0; i < kTM; ++i)
MOESEG_UNROLL
        for (int j = 0; j < kTN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The other buffer was last read in the previous iteration, which every thread finished
    // before that iteration's barrier: storing into it now races with nobody.
    if (has_next) store_smem(buf ^ 1);
    sync_threads();
    buf ^= 1;
  }

MOESEG_UNROLL
  for (int i = 0; i < kTM; ++i) {
    const int m = m0 + ty * kTM + i;
    if (m >= M) continue;
MOESEG_UNROLL
    for (int j = 0; j < kTN; ++j) {
      const int n = n0 + tx * kTN + j;
      if (n < N) epi(g, split, m, n, acc[i][j]);
    }
  }
}

// dW[i] = sum over splits (in split order) of partial[s][i]. Deterministic.
__global__ void __launch_bounds__(256)
conv2d_wgrad_reduce_kernel(const float* partial, float* dw, long long count, int splits) {
  for (long long i = global_index_x(); i < count; i += grid_stride_x()) {
    float s = partial[i];
    for (int k = 1; k < splits; ++k) s += partial[static_cast<long long>(k) * count + i];
    dw[i] = s;
  }
}

// dbias[co] = sum over n, pixels of dY[n, co, :]; one block per channel, double accumulation.
__global__ void __launch_bounds__(256)
conv2d_bias_grad_kernel(const float* dy, float* dbias, int n, int cout, int hw) {
  const int co = static_cast<int>(blockIdx.x);
  double s = 0.0;
  for (int b = 0; b < n; ++b) {
    const float* plane = dy + (static_cast<long long>(b) * cout + co) * hw;
    for (int i = static_cast<int>(threadIdx.x); i < hw; i += static_cast<int>(blockDim.x)) s += plane[i];
  }
  s = block_reduce_sum(s);
  if (threadIdx.x == 0) dbias[co] = static_cast<float>(s);
}

inline ConvDims make_dims(const Conv2dShape& s, const char* op) {
  MOESEG_CHECK(s.n > 0 && s.c_in > 0 && s.h_in > 0 && s.w_in > 0 && s.c_out > 0 && s.kh > 0 && s.kw > 0, op,
               ": non-positive size");
  MOESEG_CHECK(s.stride_h > 0 && s.stride_w > 0 && s.dil_h > 0 && s.dil_w > 0 && s.pad_h >= 0 && s.pad_w >= 0,
               op, ": stride and dilation must be >= 1, padding >= 0");
  MOESEG_CHECK(s.groups > 0 && s.c_in % s.groups == 0 && s.c_out % s.groups == 0, op, ": groups ", s.groups,
               " must divide c_in ", s.c_in, " and c_out ", s.c_out);
  MOESEG_CHECK(s.h_out() > 0 && s.w_out() > 0, op, ": empty output ", s.h_out(), "x", s.w_out());
  constexpr long long kMax = 0x7fffffffll;
  MOESEG_CHECK(1ll * s.n * s.c_in * s.h_in * s.w_in < kMax && 1ll * s.n * s.c_out * s.h_out() * s.w_out() < kMax &&
                   1ll * s.c_out * (s.c_in / s.groups) * s.kh * s.kw < kMax,
               op, ": tensors over 2^31 elements are not supported");
  ConvDims d{};
  d.n = s.n; d.cin = s.c_in; d.h = s.h_in; d.w = s.w_in; d.cout = s.c_out; d.kh = s.kh; d.kw = s.kw;
  d.sh = s.stride_h; d.sw = s.stride_w; d.ph = s.pad_h; d.pw = s.pad_w; d.dh = s.dil_h; d.dw = s.dil_w;
  d.groups = s.groups; d.ho = s.h_out(); d.wo = s.w_out();
  d.cin_g = s.c_in / s.groups; d.cout_g = s.c_out / s.groups; d.khw = s.kh * s.kw;
  return d;
}

inline dim3 igemm_grid(int M, int N, int z) {
  return dim3(static_cast<unsigned>(ceil_div(N, kBN)), static_cast<unsigned>(ceil_div(M, kBM)),
              static_cast<unsigned>(z));
}

// Split-K for backward-weight: depends on the shape only (determinism). Aim for ~2 waves of 132
// SMs, but keep at least 8 slices (128 pixels) per split so the partial traffic stays small.
inline int wgrad_splits(const ConvDims& d, int* k_chunk) {
  const int M = d.cout_g, N = d.cin_g * d.khw, K = d.n * d.ho * d.wo;
  const long long tiles = 1ll * ceil_div(M, kBM) * ceil_div(N, kBN) * d.groups;
  long long splits = ceil_div(264ll, tiles);
  const long long max_splits = ceil_div(static_cast<long long>(K), 8ll * kBK);
  if (splits > max_splits) splits = max_splits;
  if (splits < 1) splits = 1;
  int chunk = static_cast<int>(ceil_div(static_cast<long long>(K), splits));
  chunk = ceil_div(chunk, kBK) * kBK;
  *k_chunk = chunk;
  return ceil_div(K, chunk);   // no empty trailing split
}

}  // namespace detail

void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias, bool fuse_relu,
                    float* y, cudaStream_t stream) {
  using namespace detail;
  const ConvDims d = make_dims(shape, "conv2d_forward");
  const int M = d.cout_g, N = d.n * d.ho * d.wo, K = d.cin_g * d.khw;
  auto* k = &conv2d_igemm_kernel<FwdA, FwdB, FwdEpi>;
  MOESEG_LAUNCH(k, igemm_grid(M, N, d.groups), kIgThreads, 0, stream)(
      FwdA{w, d}, FwdB{x, d}, FwdEpi{y, bias, fuse_relu ? 1 : 0, d}, M, N, K, 1, ceil_div(K, kBK) * kBK);
  check_launch("conv2d_forward");
}

void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w, float* dx,
                          cudaStream_t stream) {
  using namespace detail;
  const ConvDims d = make_dims(shape, "conv2d_backward_data");
  const int M = d.cin_g, N = d.n * d.h * d.w, K = d.cout_g * d.khw;
  auto* k = &conv2d_igemm_kernel<BwdDataA, BwdDataB, BwdDataEpi>;
  MOESEG_LAUNCH(k, igemm_grid(M, N, d.groups), kIgThreads, 0, stream)(
      BwdDataA{w, d}, BwdDataB{dy, d}, BwdDataEpi{dx, d}, M, N, K, 1, ceil_div(K, kBK) * kBK);
  check_launch("conv2d_backward_data");
}

size_t conv2d_backward_weight_workspace_floats(const Conv2dShape& shape) {
  using namespace detail;
  const ConvDims d = make_dims(shape, "conv2d_backward_weight");
  int chunk = 0;
  const int splits = wgrad_splits(d, &chunk);
  return splits > 1 ? static_cast<size_t>(splits) * d.cout * d.cin_g * d.khw : 0;
}

void conv2d_backward_weight(const Conv2dShape& shape, const float* x, const float* dy, float* dw, float* dbias,
                            float* workspace, cudaStream_t stream) {
  using namespace detail;
  const ConvDims d = make_dims(shape, "conv2d_backward_weight");
  const int M = d.cout_g, N = d.cin_g * d.khw, K = d.n * d.ho * d.wo;
  int chunk = 0;
  const int splits = wgrad_splits(d, &chunk);
  MOESEG_CHECK(splits == 1 || workspace != nullptr, "conv2d_backward_weight: workspace of ",
               conv2d_backward_weight_workspace_floats(shape), " floats required");
  float* target = splits > 1 ? workspace : dw;
  auto* k = &conv2d_igemm_kernel<BwdWeightA, BwdWeightB, BwdWeightEpi>;
  MOESEG_LAUNCH(k, igemm_grid(M, N, d.groups * splits), kIgThreads, 0, stream)(
      BwdWeightA{dy, d}, BwdWeightB{x, d}, BwdWeightEpi{target, d}, M, N, K, splits, chunk);
  check_launch("conv2d_backward_weight");
  if (splits > 1) {
    const long long count = 1ll * d.cout * N;
    MOESEG_LAUNCH(conv2d_wgrad_reduce_kernel, grid_for(count, 256), 256, 0, stream)(workspace, dw, count, splits);
    check_launch("conv2d_backward_weight (split reduce)");
  }
  if (dbias) {
    MOESEG_LAUNCH(conv2d_bias_grad_kernel, d.cout, 256, 0, stream)(dy, dbias, d.n, d.cout, d.ho * d.wo);
    check_launch("conv2d_backward_weight (bias)");
  }
}

}  // namespace moeseg::MOESEG_KERNEL_NS
