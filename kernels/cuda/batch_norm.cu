// BatchNorm2d kernels (kernels/batch_norm.h semantics): training forward with batch statistics
// and the running-statistics update (unbiased variance, as PyTorch), eval forward with the
// running statistics, and backward (grad x in both modes' formulas, grad weight, grad bias).
// Tested through CUDA-on-CPU against the CPU op and its autograd: tests/cuda_kernels/test_batch_norm.cpp.
//
// Layout of the work: a channel's N * HW values are N planes of HW contiguous floats, cut into
// chunks of kBnChunk; block (p, c) of a (N * chunks, C) grid owns chunk p of channel c, so no
// block needs a division per element and loads are coalesced.
// Determinism: each block writes its per-chunk sums (double) to the workspace; one block per
// channel then adds the chunk partials with block_reduce (fixed order for a fixed launch shape).
// No atomics, so every run gives the same bits.
// Precision: sums in double. The forward's statistics are one pass of sums of (x - K) and
// (x - K)^2 with K = the channel's first value (a shift that keeps E[d^2] - E[d]^2 from cancelling
// unless |mean - K| >> std, where double still leaves ~1e-16 * (mean - K)^2 / var of relative
// error); the CPU backend uses two passes, so results agree to float rounding, not bitwise.
// The per-element maps (y = x * scale + shift, dx) are done in double like the CPU's: on an H100
// a DFMA per element costs nothing beside the 8-12 bytes the element moves (memory-bound: the
// training forward reads x twice and writes y, the floor is 12 bytes / 3.35 TB/s per element).
#include <cmath>

#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kBnBlock = 256;
constexpr long long kBnChunk = 4096;   // 16 elements per thread per block
constexpr int kBnFinalBlock = 128;
constexpr int kBnCoef = 8;             // doubles per channel in the coefficient table

struct BnGeom {
  int C, chunks;
  long long HW, P;   // P = N * chunks partials per channel
};

inline BnGeom bn_geom(int N, int C, int64_t HW) {
  BnGeom g;
  g.C = C;
  g.HW = HW;
  g.chunks = static_cast<int>((HW + kBnChunk - 1) / kBnChunk);
  g.P = static_cast<long long>(N) * g.chunks;
  return g;
}

// Block (blockIdx.x, blockIdx.y) owns elements [*begin, *end) of the plane that starts at the
// returned offset (plane n of channel blockIdx.y, n = blockIdx.x / chunks).
MOESEG_DEVICE long long bn_chunk(const BnGeom& g, long long* begin, long long* end) {
  const long long p = blockIdx.x, n = p / g.chunks, chunk = p - n * g.chunks;
  *begin = chunk * kBnChunk;
  *end = *begin + kBnChunk < g.HW ? *begin + kBnChunk : g.HW;
  return (n * g.C + blockIdx.y) * g.HW;
}

__global__ void __launch_bounds__(kBnBlock) batch_norm_stats_partial_kernel(const float* x, BnGeom g, double* partial) {
  long long b, e;
  const float* xp = x + bn_chunk(g, &b, &e);
  const double shift = x[static_cast<long long>(blockIdx.y) * g.HW];
  double s1 = 0, s2 = 0;
  for (long long i = b + linear_thread_id(); i < e; i += blockDim.x) {
    const double d = static_cast<double>(xp[i]) - shift;
    s1 += d;
    s2 += d * d;
  }
  s1 = block_reduce_sum(s1);
  s2 = block_reduce_sum(s2);
  if (linear_thread_id() == 0) {
    double* out = partial + (static_cast<long long>(blockIdx.y) * g.P + blockIdx.x) * 2;
    out[0] = s1;
    out[1] = s2;
  }
}

// Sums channel blockIdx.x's P partial pairs (fixed order: thread-strided, then block_reduce).
MOESEG_DEVICE void bn_sum_partials(const double* partial, long long P, double* a, double* b) {
  const double* pc = partial + static_cast<long long>(blockIdx.x) * P * 2;
  double s1 = 0, s2 = 0;
  for (long long j = linear_thread_id(); j < P; j += blockDim.x) {
    s1 += pc[2 * j];
    s2 += pc[2 * j + 1];
  }
  *a = block_reduce_sum(s1);
  *b = block_reduce_sum(s2);
}

// scale = w * invstd, shift = b - mean * scale (double, as the CPU).
MOESEG_DEVICE void bn_store_affine(double* coef, const float* weight, const float* bias, int c, double mean,
                                   double invstd) {
  const double w = weight ? static_cast<double>(weight[c]) : 1.0;
  const double b0 = bias ? static_cast<double>(bias[c]) : 0.0;
  const double sc = w * invstd;
  coef[c * kBnCoef + 0] = sc;
  coef[c * kBnCoef + 1] = dadd_rn(b0, -dmul_rn(mean, sc));
}

__global__ void __launch_bounds__(kBnFinalBlock)
batch_norm_stats_finalize_kernel(const double* partial, const float* x, BnGeom g, double m, const float* weight,
                                 const float* bias, float* running_mean, float* running_var, double momentum,
                                 double eps, float* save_mean, float* save_invstd, double* coef) {
  double s1, s2;
  bn_sum_partials(partial, g.P, &s1, &s2);
  if (linear_thread_id() != 0) return;   // after the last barrier
  const int c = blockIdx.x;
  const double shift = x[static_cast<long long>(c) * g.HW];
  const double d = s1 / m;
  double var = (s2 - s1 * d) / m;
  if (var < 0) var = 0;
  const double mean = shift + d;
  if (running_mean) {
    const double unbiased = var * m / (m - 1);
    running_mean[c] = static_cast<float>((1 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = static_cast<float>((1 - momentum) * running_var[c] + momentum * unbiased);
  }
  const double invstd = 1.0 / sqrt(var + eps);
  if (save_mean) save_mean[c] = static_cast<float>(mean);
  if (save_invstd) save_invstd[c] = static_cast<float>(invstd);
  bn_store_affine(coef, weight, bias, c, mean, invstd);
}

__global__ void __launch_bounds__(kBnFinalBlock)
batch_norm_eval_prepare_kernel(const float* running_mean, const float* running_var, const float* weight,
                               const float* bias, double eps, int C, float* save_mean, float* save_invstd,
                               double* coef) {
  for (long long c = global_index_x(); c < C; c += grid_stride_x()) {
    const double mean = running_mean[c];
    const double invstd = 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
    if (save_mean) save_mean[c] = running_mean[c];
    if (save_invstd) save_invstd[c] = static_cast<float>(invstd);
    bn_store_affine(coef, weight, bias, static_cast<int>(c), mean, invstd);
  }
}

__global__ void __launch_bounds__(kBnBlock) batch_norm_apply_kernel(const float* x, float* y, BnGeom g, const double* coef) {
  long long b, e;
  const long long off = bn_chunk(g, &b, &e);
  const float* xp = x + off;
  float* yp = y + off;
  const double sc = coef[blockIdx.y * kBnCoef + 0], sh = coef[blockIdx.y * kBnCoef + 1];
  for (long long i = b + linear_thread_id(); i < e; i += blockDim.x)
    yp[i] = static_cast<float>(dadd_rn(dmul_rn(static_cast<double>(xp[i]), sc), sh));
}

// Per-chunk sum(g) and sum(g * (x - mean)) (the latter times invstd is sum(g * xhat)).
__global__ void __launch_bounds__(kBnBlock)
batch_norm_backward_partial_kernel(const float* gy, const float* x, const float* save_mean, BnGeom g,
                                   double* partial) {
  long long b, e;
  const long long off = bn_chunk(g, &b, &e);
  const float* xp = x + off;
  const float* gp = gy + off;
  const double mu = save_mean[blockIdx.y];
  double sg = 0, sgx = 0;
  for (long long i = b + linear_thread_id(); i < e; i += blockDim.x) {
    const double gv = gp[i];
    sg += gv;
    sgx += gv * (static_cast<double>(xp[i]) - mu);
  }
  sg = block_reduce_sum(sg);
  sgx = block_reduce_sum(sgx);
  if (linear_thread_id() == 0) {
    double* out = partial + (static_cast<long long>(blockIdx.y) * g.P + blockIdx.x) * 2;
    out[0] = sg;
    out[1] = sgx;
  }
}

__global__ void __launch_bounds__(kBnFinalBlock)
batch_norm_backward_finalize_kernel(const double* partial, BnGeom g, double m, const float* weight,
                                    const float* save_mean, const float* save_invstd, float* grad_weight,
                                    float* grad_bias, double* coef) {
  double sg, sgxc;
  bn_sum_partials(partial, g.P, &sg, &sgxc);
  if (linear_thread_id() != 0) return;   // after the last barrier
  const int c = blockIdx.x;
  const double is = save_invstd[c], sgx = sgxc * is;
  if (grad_weight) grad_weight[c] = static_cast<float>(sgx);
  if (grad_bias) grad_bias[c] = static_cast<float>(sg);
  const double w = weight ? static_cast<double>(weight[c]) : 1.0;
  double* k = coef + c * kBnCoef;
  k[0] = w * is;    // dx = k0 * (g - k1 - xhat * k2), xhat = (x - k3) * k4
  k[1] = sg / m;
  k[2] = sgx / m;
  k[3] = save_mean[c];
  k[4] = is;
}

__global__ void __launch_bounds__(kBnBlock)
batch_norm_backward_dx_training_kernel(const float* gy, const float* x, BnGeom g, const double* coef, float* gx) {
  long long b, e;
  const long long off = bn_chunk(g, &b, &e);
  const float* xp = x + off;
  const double* k = coef + blockIdx.y * kBnCoef;
  const double k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4];
  for (long long i = b + linear_thread_id(); i < e; i += blockDim.x) {
    const double xhat = dmul_rn(static_cast<double>(xp[i]) - k3, k4);
    gx[off + i] = static_cast<float>(k0 * (static_cast<double>(gy[off + i]) - k1 - dmul_rn(xhat, k2)));
  }
}

// Eval: the statistics are constants, dx = float(w * invstd) * g (the CPU rounds the factor once).
__global__ void __launch_bounds__(kBnBlock)
batch_norm_backward_dx_eval_kernel(const float* gy, const float* weight, const float* save_invstd, BnGeom g,
                                   float* gx) {
  long long b, e;
  const long long off = bn_chunk(g, &b, &e);
  const int c = blockIdx.y;
  const float k = static_cast<float>((weight ? static_cast<double>(weight[c]) : 1.0) * static_cast<double>(save_invstd[c]));
  for (long long i = b + linear_thread_id(); i < e; i += blockDim.x) gx[off + i] = k * gy[off + i];
}

inline void bn_check(const char* op, int N, int C, int64_t HW, const float* workspace) {
  MOESEG_CHECK(N >= 1 && C >= 1 && HW >= 1, op, ": input [", N, ", ", C, ", ", HW, "] must be non-empty");
  MOESEG_CHECK(C <= 65535, op, ": ", C, " channels (input [", N, ", ", C, ", ", HW, "]); at most 65535 (grid y)");
  MOESEG_CHECK(workspace != nullptr && is_aligned16(workspace), op, ": workspace (",
               batch_norm_workspace_floats(N, C, HW), " floats) must be given and 16-byte aligned (input [", N, ", ",
               C, ", ", HW, "])");
}

inline double* bn_partials(float* ws) { return reinterpret_cast<double*>(ws); }
inline double* bn_coef(float* ws, const BnGeom& g) { return reinterpret_cast<double*>(ws) + g.C * g.P * 2; }

}  // namespace detail

size_t batch_norm_workspace_floats(int N, int C, int64_t HW) {
  const detail::BnGeom g = detail::bn_geom(N, C, HW);
  return static_cast<size_t>(2 * (2 * static_cast<long long>(C) * g.P + static_cast<long long>(detail::kBnCoef) * C));
}

void batch_norm_forward_training(const float* x, const float* weight, const float* bias, float* running_mean,
                                 float* running_var, float* y, float* save_mean, float* save_invstd,
                                 float* workspace, int N, int C, int64_t HW, double momentum, double eps,
                                 cudaStream_t stream) {
  using namespace detail;
  bn_check("batch_norm_forward_training", N, C, HW, workspace);
  MOESEG_CHECK(static_cast<int64_t>(N) * HW > 1, "batch_norm_forward_training: training needs more than 1 value per "
               "channel, got input [", N, ", ", C, ", ", HW, "]");
  MOESEG_CHECK(eps > 0, "batch_norm_forward_training: eps must be positive, got ", eps);
  MOESEG_CHECK((running_mean == nullptr) == (running_var == nullptr), "batch_norm_forward_training: running_mean "
               "and running_var must both be given or both be null (input [", N, ", ", C, ", ", HW, "])");
  const BnGeom g = bn_geom(N, C, HW);
  const dim3 grid(static_cast<unsigned>(g.P), static_cast<unsigned>(C));
  double* partial = bn_partials(workspace);
  double* coef = bn_coef(workspace, g);
  MOESEG_LAUNCH(batch_norm_stats_partial_kernel, grid, kBnBlock, 0, stream)(x, g, partial);
  check_launch("batch_norm_forward_training (partial sums)");
  MOESEG_LAUNCH(batch_norm_stats_finalize_kernel, C, kBnFinalBlock, 0, stream)(
      partial, x, g, static_cast<double>(N) * static_cast<double>(HW), weight, bias, running_mean, running_var,
      momentum, eps, save_mean, save_invstd, coef);
  check_launch("batch_norm_forward_training (statistics)");
  MOESEG_LAUNCH(batch_norm_apply_kernel, grid, kBnBlock, 0, stream)(x, y, g, coef);
  check_launch("batch_norm_forward_training (normalise)");
}

void batch_norm_forward_eval(const float* x, const float* weight, const float* bias, const float* running_mean,
                             const float* running_var, float* y, float* save_mean, float* save_invstd,
                             float* workspace, int N, int C, int64_t HW, double eps, cudaStream_t stream) {
  using namespace detail;
  bn_check("batch_norm_forward_eval", N, C, HW, workspace);
  MOESEG_CHECK(eps > 0, "batch_norm_forward_eval: eps must be positive, got ", eps);
  MOESEG_CHECK(running_mean != nullptr && running_var != nullptr, "batch_norm_forward_eval: evaluation needs "
               "running_mean and running_var (input [", N, ", ", C, ", ", HW, "])");
  const BnGeom g = bn_geom(N, C, HW);
  double* coef = bn_coef(workspace, g);
  MOESEG_LAUNCH(batch_norm_eval_prepare_kernel, grid_for(C, kBnFinalBlock), kBnFinalBlock, 0, stream)(
      running_mean, running_var, weight, bias, eps, C, save_mean, save_invstd, coef);
  check_launch("batch_norm_forward_eval (coefficients)");
  MOESEG_LAUNCH(batch_norm_apply_kernel, dim3(static_cast<unsigned>(g.P), static_cast<unsigned>(C)), kBnBlock, 0,
                stream)(x, y, g, coef);
  check_launch("batch_norm_forward_eval (normalise)");
}

void batch_norm_backward(const float* grad_y, const float* x, const float* weight, const float* save_mean,
                         const float* save_invstd, bool training, float* grad_x, float* grad_weight,
                         float* grad_bias, float* workspace, int N, int C, int64_t HW, cudaStream_t stream) {
  using namespace detail;
  bn_check("batch_norm_backward", N, C, HW, workspace);
  MOESEG_CHECK(save_mean != nullptr && save_invstd != nullptr, "batch_norm_backward: save_mean and save_invstd "
               "from the forward are required (input [", N, ", ", C, ", ", HW, "])");
  const BnGeom g = bn_geom(N, C, HW);
  const dim3 grid(static_cast<unsigned>(g.P), static_cast<unsigned>(C));
  double* partial = bn_partials(workspace);
  double* coef = bn_coef(workspace, g);
  const bool need_sums = grad_weight || grad_bias || (training && grad_x);
  if (need_sums) {
    MOESEG_LAUNCH(batch_norm_backward_partial_kernel, grid, kBnBlock, 0, stream)(grad_y, x, save_mean, g, partial);
    check_launch("batch_norm_backward (partial sums)");
    MOESEG_LAUNCH(batch_norm_backward_finalize_kernel, C, kBnFinalBlock, 0, stream)(
        partial, g, static_cast<double>(N) * static_cast<double>(HW), weight, save_mean, save_invstd, grad_weight,
        grad_bias, coef);
    check_launch("batch_norm_backward (sums)");
  }
  if (!grad_x) return;
  if (training)
    MOESEG_LAUNCH(batch_norm_backward_dx_training_kernel, grid, kBnBlock, 0, stream)(grad_y, x, g, coef, grad_x);
  else
    MOESEG_LAUNCH(batch_norm_backward_dx_eval_kernel, grid, kBnBlock, 0, stream)(grad_y, weight, save_invstd, g,
                                                                                 grad_x);
  check_launch("batch_norm_backward (grad input)");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
