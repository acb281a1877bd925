// moe_dispatch: the CUDA kernels of sort-based sparse-MoE dispatch (kernels/moe_dispatch.h has the
// maths): the routing plan (chunked histogram, exclusive prefix sum with the capacity, stable
// scatter), the permute gather, the weighted un-permute and its backward, and the grouped linear:
// the per-expert bias and a grouped GEMM (forward, data and weight gradients) in which each row
// finds its expert in offsets, so all experts run in one launch and an expert without rows costs
// nothing (its weight gradient is written as exact zeros). The grouped GEMM is the plain one
// (one thread per output element, a dot product from global memory): correct, deterministic and
// what the emulated device runs; on a real GPU a cuBLAS path (one gemm per non-empty expert from
// the host offsets, as kernels/linear.cpp does for Linear) may be added later where it pays.
// float32 rows, int64 plan. Compiled by nvcc and by g++ for CUDA-on-CPU
// (tests/cuda_kernels/test_moe_dispatch.cpp, against the CPU ops).
//
// Plan (pairs P0 = T*k, N experts, chunks of kMoeChunk pairs; C = ceil(P0 / kMoeChunk)):
//   count    thread (c, e), e <= N: cnt[c][e] = #{p in chunk c : idx[p] = e}; column N counts
//            indices outside [0, N) (the op reads it back and throws naming the value)
//   scan     one block: thread e walks the chunks in order, turning cnt[.][e] into the exclusive
//            rank base of chunk c inside expert e; requested[e] = total, counts[e] = min(total, cap);
//            then offsets = exclusive prefix sum of counts (serial over N, N is small)
//   scatter  thread (c, e) walks chunk c in pair order: rank = base + local; rank < counts[e]:
//            q = offsets[e] + rank, order[q] = p, position[p] = q; else position[p] = -1 (dropped)
//   Pairs of one expert are ranked in pair order = token order: the counting sort is stable and
//   the first tokens win the capacity, exactly as on the CPU. No atomics, bit-identical runs.
//   Work O(P0 * (N + 1)) reads of int64 per pass (each chunk is read once per expert, from L1/L2):
//   for the MoE sizes (T*k ~ 1e3..1e5 pairs, N <= 64) this is microseconds; a block-wide radix
//   scan would be the tool for N in the thousands.
// Rows (P kept pairs, D features; every output element written once by one thread, gathers only):
//   permute            xp[q, j] = x[order[q] / k, j]                          2*P*D*4 bytes
//   combine            y[t, j] = sum_s w[t,s] * rows[position[t*k+s], j]      (w null: weight 1, the
//                      permute backward)  (P + T)*D*4 bytes, 2*P*D FLOPs
//   combine bwd rows   dyp[q, j] = w[order[q]] * dy[order[q] / k, j]          2*P*D*4 bytes
//   combine bwd w      dw[p] = <dy[t, :], yp[position[p], :]>, one warp per pair (0 when dropped)
//   bias fill          yp[q, j] = b[e(q), j] (e(q) by binary search in offsets), before a beta = 1 GEMM
//   bias bwd           db[e, j] = sum of dy rows of expert e, in row order, accumulated in double
//   gemm fwd           yp[q, j] += <xp[q, :], W[e(q), j, :]>  (after the bias fill)  2*P*D*Do FLOPs
//   gemm bwd data      dxp[q, d] = sum_j dy[q, j] W[e(q), j, d]                     2*P*D*Do FLOPs
//   gemm bwd weight    dW[e, j, d] = sum over rows r of expert e of dy[r, j] xp[r, d], in row order
//                      (0 for an expert without rows)                               2*P*D*Do FLOPs
//   The GEMMs accumulate in float32 in a fixed order (d, j or r ascending): bit-identical runs,
//   equal to the CPU's OpenBLAS sgemm to float32 rounding (a different summation order), not
//   bit for bit. Their reads are not tiled (each thread streams a row of xp and one of W): about
//   2*D*4 bytes per 2*D FLOPs from L1/L2, far below a tiled GEMM's rate on a GPU (see above).
// Memory bound throughout (arithmetic intensity <= 0.5 FLOP/B): on an H100 (3.35 TB/s) permuting
// 8192 pairs of 256 floats (8 MB each way) is ~5 us.
#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kMoeChunk = 256;    // pairs per plan chunk
constexpr int kMoeBlock = 256;

__global__ void __launch_bounds__(kMoeBlock)
moe_plan_count_kernel(const int64_t* idx, long long pairs, int N, long long chunks, int64_t* cnt) {
  const long long total = chunks * (N + 1);
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long c = i / (N + 1);
    const int e = static_cast<int>(i - c * (N + 1));
    const long long end = (c + 1) * kMoeChunk < pairs ? (c + 1) * kMoeChunk : pairs;
    long long n = 0;
    for (long long p = c * kMoeChunk; p < end; ++p) {
      const int64_t v = idx[p];
      n += e < N ? (v == e) : (v < 0 || v >= N);
    }
    cnt[i] = n;
  }
}

__global__ void __launch_bounds__(kMoeBlock)
moe_plan_scan_kernel(int64_t* cnt, long long chunks, int N, long long capacity, int64_t* requested, int64_t* counts,
                     int64_t* offsets, int64_t* invalid) {
  for (int e = threadIdx.x; e <= N; e += blockDim.x) {
    long long run = 0;
    for (long long c = 0; c < chunks; ++c) {
      const long long n = cnt[c * (N + 1) + e];
      cnt[c * (N + 1) + e] = run;
      run += n;
    }
    if (e < N) {
      requested[e] = run;
      counts[e] = capacity > 0 && run > capacity ? capacity : run;
    } else {
      invalid[0] = run;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    offsets[0] = 0;
    for (int e = 0; e < N; ++e) offsets[e + 1] = offsets[e] + counts[e];
  }
}

__global__ void __launch_bounds__(kMoeBlock)
moe_plan_scatter_kernel(const int64_t* idx, long long pairs, int N, long long chunks, const int64_t* base,
                        const int64_t* counts, const int64_t* offsets, int64_t* order, int64_t* position) {
  const long long total = chunks * N;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long c = i / N;
    const int e = static_cast<int>(i - c * N);
    const long long end = (c + 1) * kMoeChunk < pairs ? (c + 1) * kMoeChunk : pairs;
    long long rank = base[c * (N + 1) + e];
    const long long keep = counts[e], off = offsets[e];
    for (long long p = c * kMoeChunk; p < end; ++p) {
      if (idx[p] != e) continue;
      if (rank < keep) {
        order[off + rank] = p;
        position[p] = off + rank;
      } else {
        position[p] = -1;
      }
      ++rank;
    }
  }
}

__global__ void __launch_bounds__(kMoeBlock)
moe_permute_rows_kernel(const float* x, const int64_t* order, long long P, int k, long long D, float* xp) {
  const long long total = P * D;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long q = i / D, j = i - q * D;
    xp[i] = x[(order[q] / k) * D + j];
  }
}

__global__ void __launch_bounds__(kMoeBlock)
moe_combine_rows_kernel(const float* rows, const float* w, const int64_t* position, long long T, int k, long long D,
                        float* y) {
  const long long total = T * D;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long t = i / D, j = i - t * D;
    float acc = 0.f;   // slot order, no FMA: the CPU's dst += a * src
    for (int s = 0; s < k; ++s) {
      const long long q = position[t * k + s];
      if (q < 0) continue;
      acc = fadd_rn(acc, fmul_rn(w ? w[t * k + s] : 1.f, rows[q * D + j]));
    }
    y[i] = acc;
  }
}

__global__ void __launch_bounds__(kMoeBlock)
moe_combine_backward_rows_kernel(const float* dy, const float* w, const int64_t* order, long long P, int k,
                                 long long D, float* dyp) {
  const long long total = P * D;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long q = i / D, j = i - q * D;
    const long long p = order[q];
    dyp[i] = fmul_rn(w[p], dy[(p / k) * D + j]);
  }
}

__global__ void __launch_bounds__(kMoeBlock)
moe_combine_backward_weights_kernel(const float* dy, const float* yp, const int64_t* position, long long pairs, int k,
                                    long long D, float* dw) {
  const long long warps_total = grid_stride_x() / kWarpSize;
  const int lane = lane_id();
  // Warp-uniform loop (warp_reduce_sum below needs every lane).
  for (long long p = global_index_x() / kWarpSize; p < pairs; p += warps_total) {
    const long long q = position[p];
    float acc = 0.f;
    if (q >= 0)
      for (long long j = lane; j < D; j += kWarpSize) acc += dy[(p / k) * D + j] * yp[q * D + j];
    acc = warp_reduce_sum(acc);
    if (lane == 0) dw[p] = acc;
  }
}

// The expert of sorted row q: the last e with offsets[e] <= q (offsets non-decreasing, empty
// experts repeat an offset: the search skips them).
MOESEG_DEVICE int moe_expert_of_row(const int64_t* offsets, int N, long long q) {
  int lo = 0, hi = N;   // offsets[lo] <= q < offsets[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (offsets[mid] <= q) lo = mid;
    else hi = mid;
  }
  return lo;
}

__global__ void __launch_bounds__(kMoeBlock)
moe_grouped_bias_fill_kernel(const float* bias, const int64_t* offsets, int N, long long P, long long Do, float* yp) {
  const long long total = P * Do;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long q = i / Do, j = i - q * Do;
    yp[i] = bias ? bias[moe_expert_of_row(offsets, N, q) * Do + j] : 0.f;
  }
}

__global__ void __launch_bounds__(kMoeBlock)
moe_grouped_bias_backward_kernel(const float* dy, const int64_t* offsets, int N, long long Do, float* db) {
  const long long total = static_cast<long long>(N) * Do;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long e = i / Do, j = i - e * Do;
    double acc = 0;
    for (long long r = offsets[e]; r < offsets[e + 1]; ++r) acc += static_cast<double>(dy[r * Do + j]);
    db[i] = static_cast<float>(acc);
  }
}

// yp[q, j] += <xp[q, :], W[e(q), j, :]>: one thread per output element; the expert of the row by
// binary search in offsets (the rows of one warp share it except at a slice boundary).
__global__ void __launch_bounds__(kMoeBlock)
moe_grouped_gemm_forward_kernel(const float* xp, const float* W, const int64_t* offsets, int N, long long P,
                                long long D, long long Do, float* yp) {
  const long long total = P * Do;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long q = i / Do, j = i - q * Do;
    const float* a = xp + q * D;
    const float* b = W + (moe_expert_of_row(offsets, N, q) * Do + j) * D;
    float acc = 0.f;
    for (long long d = 0; d < D; ++d) acc += a[d] * b[d];
    yp[i] += acc;
  }
}

// dxp[q, d] = sum_j dy[q, j] W[e(q), j, d].
__global__ void __launch_bounds__(kMoeBlock)
moe_grouped_gemm_backward_data_kernel(const float* dy, const float* W, const int64_t* offsets, int N, long long P,
                                      long long D, long long Do, float* dxp) {
  const long long total = P * D;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long q = i / D, d = i - q * D;
    const float* g = dy + q * Do;
    const float* b = W + moe_expert_of_row(offsets, N, q) * Do * D + d;
    float acc = 0.f;
    for (long long j = 0; j < Do; ++j) acc += g[j] * b[j * D];
    dxp[i] = acc;
  }
}

// dW[e, j, d] = sum over the rows r of expert e of dy[r, j] xp[r, d], in row order; an expert
// without rows gets exact zeros (the loop does not run).
__global__ void __launch_bounds__(kMoeBlock)
moe_grouped_gemm_backward_weight_kernel(const float* dy, const float* xp, const int64_t* offsets, int N, long long D,
                                        long long Do, float* dW) {
  const long long total = static_cast<long long>(N) * Do * D;
  for (long long i = global_index_x(); i < total; i += grid_stride_x()) {
    const long long e = i / (Do * D), jd = i - e * Do * D, j = jd / D, d = jd - j * D;
    float acc = 0.f;
    for (long long r = offsets[e]; r < offsets[e + 1]; ++r) acc += dy[r * Do + j] * xp[r * D + d];
    dW[i] = acc;
  }
}

inline void moe_check(const char* op, long long tokens, int k, int N) {
  MOESEG_CHECK(tokens >= 0 && k >= 1 && N >= 1 && k <= N && tokens * k < (1ll << 31), op, ": T=", tokens, " k=", k,
               " N=", N, " (need 1 <= k <= N and T*k < 2^31)");
}

}  // namespace detail

size_t moe_routing_plan_workspace_elems(int64_t tokens, int k, int N) {
  const long long pairs = tokens * k, chunks = (pairs + detail::kMoeChunk - 1) / detail::kMoeChunk;
  return static_cast<size_t>((chunks > 0 ? chunks : 1) * (N + 1));
}

void moe_routing_plan(const int64_t* idx, int64_t tokens, int k, int N, int64_t capacity, int64_t* requested,
                      int64_t* counts, int64_t* offsets, int64_t* order, int64_t* position, int64_t* invalid,
                      int64_t* workspace, cudaStream_t stream) {
  using namespace detail;
  moe_check("moe_routing_plan", tokens, k, N);
  const long long pairs = tokens * k, chunks = (pairs + kMoeChunk - 1) / kMoeChunk;
  MOESEG_LAUNCH(moe_plan_count_kernel, grid_for(chunks * (N + 1), kMoeBlock), kMoeBlock, 0, stream)(
      idx, pairs, N, chunks, workspace);
  check_launch("moe_plan_count");
  MOESEG_LAUNCH(moe_plan_scan_kernel, 1, kMoeBlock, 0, stream)(workspace, chunks, N, static_cast<long long>(capacity),
                                                              requested, counts, offsets, invalid);
  check_launch("moe_plan_scan");
  if (chunks == 0) return;
  MOESEG_LAUNCH(moe_plan_scatter_kernel, grid_for(chunks * N, kMoeBlock), kMoeBlock, 0, stream)(
      idx, pairs, N, chunks, workspace, counts, offsets, order, position);
  check_launch("moe_plan_scatter");
}

void moe_permute_rows(const float* x, const int64_t* order, int64_t P, int k, int64_t D, float* xp,
                      cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(P >= 0 && k >= 1 && D >= 0, "moe_permute_rows: P=", P, " k=", k, " D=", D);
  if (P * D == 0) return;
  MOESEG_LAUNCH(moe_permute_rows_kernel, grid_for(P * D, kMoeBlock), kMoeBlock, 0, stream)(x, order, P, k, D, xp);
  check_launch("moe_permute_rows");
}

void moe_combine_rows(const float* rows, const float* w, const int64_t* position, int64_t T, int k, int64_t D,
                      float* y, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(T >= 0 && k >= 1 && D >= 0, "moe_combine_rows: T=", T, " k=", k, " D=", D);
  if (T * D == 0) return;
  MOESEG_LAUNCH(moe_combine_rows_kernel, grid_for(T * D, kMoeBlock), kMoeBlock, 0, stream)(rows, w, position, T, k, D,
                                                                                          y);
  check_launch("moe_combine_rows");
}

void moe_combine_backward(const float* dy, const float* w, const float* yp, const int64_t* order,
                          const int64_t* position, int64_t T, int k, int64_t P, int64_t D, float* dyp, float* dw,
                          cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(T >= 0 && k >= 1 && P >= 0 && D >= 0, "moe_combine_backward: T=", T, " k=", k, " P=", P, " D=", D);
  if (dyp && P * D > 0) {
    MOESEG_LAUNCH(moe_combine_backward_rows_kernel, grid_for(P * D, kMoeBlock), kMoeBlock, 0, stream)(dy, w, order, P,
                                                                                                     k, D, dyp);
    check_launch("moe_combine_backward_rows");
  }
  if (dw && T > 0) {
    const int per_block = kMoeBlock / kWarpSize;
    MOESEG_LAUNCH(moe_combine_backward_weights_kernel, grid_for(T * k, per_block, 4096), kMoeBlock, 0, stream)(
        dy, yp, position, T * k, k, D, dw);
    check_launch("moe_combine_backward_weights");
  }
}

void moe_grouped_bias_fill(const float* bias, const int64_t* offsets, int N, int64_t P, int64_t Do, float* yp,
                           cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(N >= 1 && P >= 0 && Do >= 0, "moe_grouped_bias_fill: N=", N, " P=", P, " D_out=", Do);
  if (P * Do == 0) return;
  MOESEG_LAUNCH(moe_grouped_bias_fill_kernel, grid_for(P * Do, kMoeBlock), kMoeBlock, 0, stream)(bias, offsets, N, P,
                                                                                                 Do, yp);
  check_launch("moe_grouped_bias_fill");
}

void moe_grouped_bias_backward(const float* dy, const int64_t* offsets, int N, int64_t Do, float* db,
                               cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(N >= 1 && Do >= 0, "moe_grouped_bias_backward: N=", N, " D_out=", Do);
  if (Do == 0) return;
  MOESEG_LAUNCH(moe_grouped_bias_backward_kernel, grid_for(static_cast<long long>(N) * Do, kMoeBlock), kMoeBlock, 0,
                stream)(dy, offsets, N, Do, db);
  check_launch("moe_grouped_bias_backward");
}

void moe_grouped_gemm_forward(const float* xp, const float* weight, const int64_t* offsets, int N, int64_t P,
                              int64_t D, int64_t Do, float* yp, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(N >= 1 && P >= 0 && D >= 0 && Do >= 0, "moe_grouped_gemm_forward: N=", N, " P=", P, " D=", D,
               " D_out=", Do);
  if (P * Do == 0 || D == 0) return;   // nothing to add onto the bias fill
  MOESEG_LAUNCH(moe_grouped_gemm_forward_kernel, grid_for(P * Do, kMoeBlock), kMoeBlock, 0, stream)(
      xp, weight, offsets, N, P, D, Do, yp);
  check_launch("moe_grouped_gemm_forward");
}

void moe_grouped_gemm_backward_data(const float* dy, const float* weight, const int64_t* offsets, int N, int64_t P,
                                    int64_t D, int64_t Do, float* dxp, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(N >= 1 && P >= 0 && D >= 0 && Do >= 0, "moe_grouped_gemm_backward_data: N=", N, " P=", P, " D=", D,
               " D_out=", Do);
  if (P * D == 0) return;
  MOESEG_LAUNCH(moe_grouped_gemm_backward_data_kernel, grid_for(P * D, kMoeBlock), kMoeBlock, 0, stream)(
      dy, weight, offsets, N, P, D, Do, dxp);
  check_launch("moe_grouped_gemm_backward_data");
}

void moe_grouped_gemm_backward_weight(const float* dy, const float* xp, const int64_t* offsets, int N, int64_t D,
                                      int64_t Do, float* dweight, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(N >= 1 && D >= 0 && Do >= 0, "moe_grouped_gemm_backward_weight: N=", N, " D=", D, " D_out=", Do);
  if (D * Do == 0) return;
  MOESEG_LAUNCH(moe_grouped_gemm_backward_weight_kernel, grid_for(static_cast<long long>(N) * Do * D, kMoeBlock),
                kMoeBlock, 0, stream)(dy, xp, offsets, N, D, Do, dweight);
  check_launch("moe_grouped_gemm_backward_weight");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
