// uncertainty_measures: the per-pixel uncertainty measures of training/uncertainty.h and the
// calibration accumulator's per-batch sums of training/calibration.h as CUDA kernels. The CPU
// float64 loops of training/ are the oracle: tests/cuda_kernels/test_uncertainty_measures.cpp runs
// these kernels through CUDA-on-CPU against them (bit-identical there for the per-pixel maps,
// since the arithmetic below is the CPU's, operation for operation, on the same float64 values).
//
// The maths (probabilities p_m [N, C, HW] of M members, float32 in; all arithmetic in double):
//   class_softmax      p_c = exp(x_c − max x) / Σ_c' exp(x_c' − max x), float32 out (the member
//                      probabilities from logits on the device; the CPU's softmax_probs_f64 rounded)
//   mixture            p̄_c = Σ_m p_m,c / M (each term divided, summed in member order), or with the
//                      gate g [N, G, M]: p̄_c = Σ_m g_{g(c),m} p_m,c, g(c) = 0 (G = 1) or c (G = C),
//                      renormalised over c when G = C (and Σ_c > 0)
//   predicted ĉ        first maximum of p̄ (a NaN wins, as the argmax op)
//   PE                 H[p̄] = −Σ_c p̄_c log p̄_c;  MI = PE − Σ_m H[p_m] / M (0 log 0 = 0)
//   s                  std_m(p_m,ĉ), divisor M − 1, shifted by member 0 (equal members give 0);
//                      M = 1 gives 0.  EV = s / max s over the batch (uncertainty_divide_kernel)
//   gate entropy       −Σ_e g_e log g_e / log E of the image's gate (G = 1), of g_{ĉ,·} (G = C,
//                      predicted), of the class-mean gate (mean_gate) or the mean of the rows'
//                      entropies (mean_entropy)
//   calibration        per valid pixel (label != ignore): correct = (first argmax of p̄ == label),
//                      q = max p̄ and q' = 1 − u, bins ceil(nb q) − 1 clamped to [0, nb), per bin
//                      count / Σ q / Σ correct for both; Brier Σ_c (p̄_c − [c = y])², NLL
//                      −log max(p̄_y, 1e-15), their reference forms (q' − correct)² and the clipped
//                      log loss; per threshold t_k = 0.01 + 0.02 k (k < 50) n_certain (u < t),
//                      n_accurate∧certain, n_inaccurate∧uncertain.
//
// Thread mapping: one thread per pixel (grid-stride over N·HW) for the maps; the class loop is
// strided by HW, so a warp's 32 neighbouring pixels read 32 consecutive floats per (m, c): every
// load is coalesced. The members' entropies H[p_m] are accumulated in the same (c, m) pass in a
// per-thread array of kMaxMembers doubles (local memory, L1-resident), so each member map is read
// once (twice with a class-wise gate: the renormalising total needs a first pass).
// Calibration: a block owns a fixed run of 128-pixel tiles (the run depends on the pixel count
// only); each thread computes its pixel's terms into shared memory, then one "accumulator" thread
// per output slot (6 scalars, one per (form, bin), one per threshold: 6 + 2 nb + 50 <= 128) scans
// the tile in pixel order. Every block writes its partials; one block sums them in block order.
// No atomics at all, so the result depends only on the inputs (DESIGN.md: no float atomics).
//
// Bytes / FLOPs and the roofline (FRRN-A at 480x640, batch 2: 614,400 pixels, C = 38, M = 3;
// H200: ~4.8 TB/s HBM3e, ~34 TFLOP/s FP64 without tensor cores; H100 SXM: 3.35 TB/s, same FP64):
//   uncertainty_pixel_kernel  reads M·C·4 = 456 B/pixel (912 with a class-wise gate), writes p̄
//     C·8 = 304 B + ĉ, PE, MI, s 32 B: ~790 B/pixel = 486 MB -> 101 us on an H200 (145 us H100).
//     Compute: (M + 1)·C double logs (~25 DFLOP each) + 4·M·C adds/muls ≈ 4 kDFLOP/pixel =
//     2.5 GFLOP -> ~75 us at 34 TFLOP/s: close to the memory floor (~5 DFLOP/B vs a ridge of ~7),
//     so the double logs are what would have to go (float logf, accumulated in double, 1e-7
//     relative) to be clearly memory-bound. p̄ is optional (nullptr: not written, −304 B/pixel).
//   class_softmax_kernel  reads 3 × C·4 B (max, sum, write passes; the 2nd and 3rd hit L1/L2),
//     writes C·4: ~300 B/pixel from HBM -> ~40 us; 2·C double exps per pixel ≈ 1.2 GFLOP ~35 us.
//   calibration_partial_kernel reads p̄ (C·8), the label and u (16 B), writes 1 status byte:
//     321 B/pixel = 197 MB -> 41 us on an H200. The in-block scans cost ~128 shared-memory steps
//     per tile on 4 warps: ~4,800 tiles over 132 SMs with several blocks each, a few us.
//   gate entropy: N·(G + 1) tiny rows, then 8 B written per pixel (5 MB, ~1 us); the max and the
//   divide of EV: 2 × 8 B/pixel read + 8 written (15 MB, ~3 us).
// Determinism: every output element is written by one thread; the batch max is a max (exact in
// any order); the calibration sums have a fixed order (tile scan, then block order). Under nvcc
// the mixture's gate products go through dmul_rn/dadd_rn (no FMA contraction), so p̄ equals the
// CPU's bit for bit on a GPU too; log/exp may differ from the host's libm in the last ulp.
#include <cmath>

#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kUmBlock = 256;
constexpr int kCalBlock = 128;   // = the tile of pixels one block scans per step
constexpr int kCalScalars = 6;   // n, n_correct, Σ Brier, Σ NLL, Σ Brier (reference), Σ NLL (reference)
constexpr int kCalMaxBlocks = 512;

struct MemberPtrs {
  const float* p[kUncertaintyMaxMembers];
};

MOESEG_DEVICE double um_xlogx(double p) { return p > 0 ? p * log(p) : 0.0; }

__global__ void __launch_bounds__(kUmBlock)
class_softmax_kernel(const float* logits, float* probs, int C, long long HW, long long P) {
  for (long long pix = global_index_x(); pix < P; pix += grid_stride_x()) {
    const long long n = pix / HW, i = pix - n * HW;
    const float* in = logits + n * C * HW + i;
    float* out = probs + n * C * HW + i;
    double mx = in[0];
    for (int c = 1; c < C; ++c) {
      const double v = in[c * HW];
      mx = mx < v ? v : mx;   // std::max(mx, v), as the CPU: keeps mx on ties and against a NaN
    }
    double s = 0;
    for (int c = 0; c < C; ++c) s += exp(static_cast<double>(in[c * HW]) - mx);
    for (int c = 0; c < C; ++c) out[c * HW] = static_cast<float>(exp(static_cast<double>(in[c * HW]) - mx) / s);
  }
}

// The member probability of member m, class c, at the pixel whose class-0 offset is `at`.
MOESEG_DEVICE double member_p(const MemberPtrs& x, int m, long long at) { return static_cast<double>(x.p[m][at]); }

__global__ void __launch_bounds__(kUmBlock)
uncertainty_pixel_kernel(MemberPtrs x, int M, const float* gate, int G, int C, long long HW, long long P,
                         double* mean_probs, int64_t* predicted, double* pe_out, double* mi_out, double* std_out) {
  const double Md = static_cast<double>(M);
  for (long long pix = global_index_x(); pix < P; pix += grid_stride_x()) {
    const long long n = pix / HW, i = pix - n * HW;
    const long long base = n * C * HW + i;   // class 0 of this pixel in every [N, C, HW] map
    const float* gn = gate ? gate + n * G * M : nullptr;
    // The class-wise gate renormalises over c: its total needs every class first.
    double total = 0;
    if (gate && G > 1)
      for (int c = 0; c < C; ++c) {
        double v = 0;
        for (int m = 0; m < M; ++m) v = dadd_rn(v, dmul_rn(static_cast<double>(gn[c * M + m]), member_p(x, m, base + c * HW)));
        total += v;
      }
    double h[kUncertaintyMaxMembers];
    for (int m = 0; m < M; ++m) h[m] = 0;
    double pe = 0, best = 0;
    int best_c = 0;
    for (int c = 0; c < C; ++c) {
      double v = 0;
      for (int m = 0; m < M; ++m) {
        const double p = member_p(x, m, base + c * HW);
        if (gate) v = dadd_rn(v, dmul_rn(static_cast<double>(gn[(G == 1 ? 0 : c) * M + m]), p));
        else v += p / Md;
        h[m] -= um_xlogx(p);
      }
      if (gate && G > 1 && total > 0) v /= total;
      if (mean_probs) mean_probs[base + c * HW] = v;
      pe -= um_xlogx(v);
      // First maximum; a NaN wins over numbers (kernels/reduce.cpp's argmax).
      if (c == 0 || v > best || (v != v && best == best)) best = v, best_c = c;
    }
    if (predicted) predicted[pix] = best_c;
    if (pe_out) pe_out[pix] = pe;
    if (mi_out) {
      double mi = pe;
      for (int m = 0; m < M; ++m) mi -= h[m] / Md;
      mi_out[pix] = mi;
    }
    if (std_out) {
      double s = 0;
      if (M >= 2) {
        const long long at = base + static_cast<long long>(best_c) * HW;
        const double p0 = member_p(x, 0, at);
        double mean = 0;
        for (int m = 0; m < M; ++m) mean += member_p(x, m, at) - p0;
        mean /= Md;
        double ss = 0;
        for (int m = 0; m < M; ++m) {
          const double d = member_p(x, m, at) - p0 - mean;
          ss += d * d;
        }
        s = sqrt(ss / static_cast<double>(M - 1));
      }
      std_out[pix] = s;
    }
  }
}

// The normalised entropy of one gate row of E weights.
MOESEG_DEVICE double gate_row_entropy(const float* row, int E, double logE) {
  double v = 0;
  for (int e = 0; e < E; ++e) v -= um_xlogx(static_cast<double>(row[e]));
  return v / logE;
}

// Task (n, g < G): the entropy of row g of image n's gate; task (n, G): the value every pixel of
// image n gets (G = 1: its gate; mean_gate / mean_entropy over the C rows). rows [N, G + 1].
__global__ void __launch_bounds__(kUmBlock)
gate_entropy_rows_kernel(const float* gate, int N, int G, int E, int reduction, double* rows) {
  const double logE = log(static_cast<double>(E));
  const long long tasks = static_cast<long long>(N) * (G + 1);
  for (long long t = global_index_x(); t < tasks; t += grid_stride_x()) {
    const long long n = t / (G + 1);
    const int g = static_cast<int>(t - n * (G + 1));
    const float* gn = gate + n * G * E;
    double v = 0;
    if (g < G) {
      v = gate_row_entropy(gn + g * E, E, logE);
    } else if (G == 1) {
      v = gate_row_entropy(gn, E, logE);
    } else if (reduction == 1) {   // mean_gate: entropy of (1/G) Σ_c g_{c,·}
      for (int e = 0; e < E; ++e) {
        double mean = 0;
        for (int c = 0; c < G; ++c) mean += static_cast<double>(gn[c * E + e]) / static_cast<double>(G);
        v -= um_xlogx(mean);
      }
      v /= logE;
    } else if (reduction == 2) {   // mean_entropy: (1/G) Σ_c H(g_{c,·}) / log E
      for (int c = 0; c < G; ++c) v += gate_row_entropy(gn + c * E, E, logE) / static_cast<double>(G);
    }
    rows[t] = v;
  }
}

__global__ void __launch_bounds__(kUmBlock)
gate_entropy_pixel_kernel(const double* rows, const int64_t* predicted, int G, int reduction, long long HW,
                          long long P, double* out) {
  for (long long pix = global_index_x(); pix < P; pix += grid_stride_x()) {
    const long long n = pix / HW;
    const double* rn = rows + n * (G + 1);
    if (G > 1 && reduction == 0) {
      const int64_t c = predicted[pix];
      // A kernel cannot throw: a class outside the gate's rows gives NaN (the CPU throws).
      out[pix] = c >= 0 && c < G ? rn[c] : nan("");
    } else {
      out[pix] = rn[G];
    }
  }
}

// Per-block max of x[0, n) (values >= 0; 0 for an empty slice) into partial[blockIdx.x].
__global__ void __launch_bounds__(kUmBlock) uncertainty_max_partial_kernel(const double* x, long long n, double* partial) {
  double m = 0;
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) m = x[i] > m ? x[i] : m;
  m = block_reduce_max(m);
  if (linear_thread_id() == 0) partial[blockIdx.x] = m;
}

// out = x / d with d = `divisor`, or (partial != nullptr) d = the max of partial[0, blocks): then
// x is copied unchanged when d <= 0. Every block reduces the few partials itself (a max: the same
// answer in any order), which saves a launch. out may alias x.
__global__ void __launch_bounds__(kUmBlock)
uncertainty_divide_kernel(const double* x, long long n, double divisor, const double* partial, int blocks,
                          double* out) {
  double d = divisor;
  if (partial) {
    double m = 0;
    for (int j = static_cast<int>(linear_thread_id()); j < blocks; j += static_cast<int>(blockDim.x))
      m = partial[j] > m ? partial[j] : m;
    d = block_reduce_max(m);
  }
  const bool divide = partial == nullptr || d > 0;
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) out[i] = divide ? x[i] / d : x[i];
}

MOESEG_HOST_DEVICE int cal_slots(int nb) { return kCalScalars + 6 * nb + 3 * kCalibrationThresholds; }
inline long long cal_tiles(long long P) { return (P + kCalBlock - 1) / kCalBlock; }
inline int cal_blocks(long long P) {
  const long long t = cal_tiles(P);
  return static_cast<int>(t < kCalMaxBlocks ? (t < 1 ? 1 : t) : kCalMaxBlocks);
}

MOESEG_DEVICE int cal_bin(double q, int nb) {
  int idx = static_cast<int>(ceil(q * nb)) - 1;
  return idx < 0 ? 0 : idx > nb - 1 ? nb - 1 : idx;
}

// Block b scans tiles [b * tiles_per_block, ...) of 128 pixels; partial[b * slots + s], slot
// layout in cuda_kernels.cuh (calibration_histogram). status[pix]: 0 ignored, 1 correct,
// 2 incorrect, 3 label outside [0, C) and not the ignore index (skipped; the host reports it).
// (kCalBlock, 4): with the thread count alone, ptxas for sm_80 capped this kernel at 32 registers and
// spilled 8 bytes; asking for 4 resident blocks lets it use the 78 it needs (40k of 64k registers).
__global__ void __launch_bounds__(kCalBlock, 4)
calibration_partial_kernel(const double* probs, const int64_t* labels, const double* unc, long long ignore_index,
                           int C, long long HW, long long P, int nb, long long tiles_per_block,
                           unsigned char* status, double* partial) {
  enum { kQ = 0, kQRef, kU, kBrier, kNll, kBrierRef, kNllRef, kVals };
  __shared__ unsigned char s_flag[kCalBlock];   // bit 0 valid, bit 1 correct
  __shared__ int s_bin[2][kCalBlock];
  __shared__ double s_val[kVals][kCalBlock];
  const int tid = static_cast<int>(linear_thread_id());
  const int slots = cal_slots(nb);
  const int bin_role0 = kCalScalars, thr_role0 = kCalScalars + 2 * nb;
  double a0 = 0, a1 = 0, a2 = 0;   // this thread's accumulator role's running sums
  const long long t0 = static_cast<long long>(blockIdx.x) * tiles_per_block;
  for (long long t = t0; t < t0 + tiles_per_block && t * kCalBlock < P; ++t) {   // uniform per block
    const long long pix = t * kCalBlock + tid;
    unsigned char flag = 0;
    if (pix < P) {
      const long long label = labels[pix];
      unsigned char st = 0;
      if (label != ignore_index && (label < 0 || label >= C)) {
        st = 3;
      } else if (label != ignore_index) {
        const long long n = pix / HW, i = pix - n * HW;
        const double* px = probs + n * C * HW + i;
        int best = 0;
        double qmax = px[0];
        for (int c = 1; c < C; ++c)
          if (px[c * HW] > qmax) qmax = px[c * HW], best = c;
        const bool correct = best == label;
        double b = 0;
        for (int c = 0; c < C; ++c) {
          const double d = px[c * HW] - (c == label ? 1.0 : 0.0);
          b += d * d;
        }
        const double pl = px[label * HW];
        const double u = unc[pix];
        const double q = 1.0 - u;
        const double cr = correct ? 1.0 : 0.0;
        const double qc = q < 1e-15 ? 1e-15 : q > 1.0 - 1e-15 ? 1.0 - 1e-15 : q;
        s_val[kQ][tid] = qmax;
        s_val[kQRef][tid] = q;
        s_val[kU][tid] = u;
        s_val[kBrier][tid] = b;
        s_val[kNll][tid] = -log(pl > 1e-15 ? pl : 1e-15);
        s_val[kBrierRef][tid] = (q - cr) * (q - cr);
        s_val[kNllRef][tid] = correct ? -log(qc) : -log(1.0 - qc);
        s_bin[0][tid] = cal_bin(qmax, nb);
        s_bin[1][tid] = cal_bin(q, nb);
        flag = static_cast<unsigned char>(1 | (correct ? 2 : 0));
        st = correct ? 1 : 2;
      }
      if (status) status[pix] = st;
    }
    s_flag[tid] = flag;
    sync_threads();
    // Each accumulator thread scans the tile in pixel order (a fixed summation order).
    if (tid < kCalScalars) {
      for (int j = 0; j < kCalBlock; ++j) {
        const unsigned char f = s_flag[j];
        if (!(f & 1)) continue;
        a0 += tid == 0 ? 1.0 : tid == 1 ? ((f & 2) ? 1.0 : 0.0) : s_val[kBrier + (tid - 2)][j];
      }
    } else if (tid < thr_role0) {
      const int form = (tid - bin_role0) / nb, bin = (tid - bin_role0) - form * nb;
      for (int j = 0; j < kCalBlock; ++j) {
        const unsigned char f = s_flag[j];
        if (!(f & 1) || s_bin[form][j] != bin) continue;
        a0 += 1.0;
        a1 += s_val[form == 0 ? kQ : kQRef][j];
        a2 += (f & 2) ? 1.0 : 0.0;
      }
    } else if (tid < thr_role0 + kCalibrationThresholds) {
      const int k = tid - thr_role0;
      const double thr = dadd_rn(0.01, dmul_rn(0.02, static_cast<double>(k)));   // conditional_thresholds()
      for (int j = 0; j < kCalBlock; ++j) {
        const unsigned char f = s_flag[j];
        if (!(f & 1)) continue;
        const bool certain = s_val[kU][j] < thr, correct = (f & 2) != 0;
        a0 += certain ? 1.0 : 0.0;
        a1 += certain && correct ? 1.0 : 0.0;
        a2 += !certain && !correct ? 1.0 : 0.0;
      }
    }
    sync_threads();   // the next tile overwrites the shared arrays
  }
  double* out = partial + static_cast<long long>(blockIdx.x) * slots;
  if (tid < kCalScalars) {
    out[tid] = a0;
  } else if (tid < thr_role0) {
    const int form = (tid - bin_role0) / nb, bin = (tid - bin_role0) - form * nb;
    double* f = out + kCalScalars + form * 3 * nb;
    f[bin] = a0, f[nb + bin] = a1, f[2 * nb + bin] = a2;
  } else if (tid < thr_role0 + kCalibrationThresholds) {
    const int k = tid - thr_role0;
    double* f = out + kCalScalars + 6 * nb;
    f[k] = a0, f[kCalibrationThresholds + k] = a1, f[2 * kCalibrationThresholds + k] = a2;
  }
}

__global__ void __launch_bounds__(kUmBlock)
calibration_final_kernel(const double* partial, int blocks, int slots, double* result) {
  for (int s = static_cast<int>(linear_thread_id()); s < slots; s += static_cast<int>(blockDim.x)) {
    double acc = 0;
    for (int b = 0; b < blocks; ++b) acc += partial[static_cast<long long>(b) * slots + s];
    result[s] = acc;
  }
}

inline void um_check_sizes(const char* op, int N, int C, int64_t HW) {
  MOESEG_CHECK(N >= 1 && C >= 1 && HW >= 1, op, ": need N, C, HW >= 1, got N=", N, " C=", C, " HW=", HW);
}

}  // namespace detail

void class_softmax(const float* logits, float* probs, int N, int C, int64_t HW, cudaStream_t stream) {
  using namespace detail;
  um_check_sizes("class_softmax", N, C, HW);
  const long long P = static_cast<long long>(N) * HW;
  MOESEG_LAUNCH(class_softmax_kernel, grid_for(P, kUmBlock), kUmBlock, 0, stream)(logits, probs, C,
                                                                                   static_cast<long long>(HW), P);
  check_launch("class_softmax");
}

void uncertainty_pixel_maps(const float* const* member_probs, int M, const float* gate, int G, int N, int C,
                            int64_t HW, double* mean_probs, int64_t* predicted, double* predictive_entropy,
                            double* mutual_information, double* std_at_class, cudaStream_t stream) {
  using namespace detail;
  um_check_sizes("uncertainty_pixel_maps", N, C, HW);
  MOESEG_CHECK(M >= 1 && M <= kUncertaintyMaxMembers, "uncertainty_pixel_maps: M=", M, " members, must be in [1, ",
               kUncertaintyMaxMembers, "]");
  MOESEG_CHECK(!gate || G == 1 || G == C, "uncertainty_pixel_maps: gate groups G=", G, " must be 1 or C=", C);
  MemberPtrs x{};
  for (int m = 0; m < M; ++m) x.p[m] = member_probs[m];
  const long long P = static_cast<long long>(N) * HW;
  MOESEG_LAUNCH(uncertainty_pixel_kernel, grid_for(P, kUmBlock), kUmBlock, 0, stream)(
      x, M, gate, gate ? G : 1, C, static_cast<long long>(HW), P, mean_probs, predicted, predictive_entropy,
      mutual_information, std_at_class);
  check_launch("uncertainty_pixel_maps");
}

size_t gate_entropy_workspace_floats(int N, int G) { return static_cast<size_t>(N) * (G + 1) * 2; }

void gate_entropy_map(const float* gate, const int64_t* predicted, int N, int G, int E, int64_t HW, int reduction,
                      double* out, float* workspace, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(N >= 1 && G >= 1 && E >= 2 && HW >= 1, "gate_entropy_map: need N, G, HW >= 1 and E >= 2, got N=", N,
               " G=", G, " E=", E, " HW=", HW);
  MOESEG_CHECK(reduction >= 0 && reduction <= 2, "gate_entropy_map: reduction ", reduction, " (0 predicted, 1 mean_gate, 2 mean_entropy)");
  MOESEG_CHECK(is_aligned16(workspace), "gate_entropy_map: workspace must be 16-byte aligned");
  double* rows = reinterpret_cast<double*>(workspace);
  const long long tasks = static_cast<long long>(N) * (G + 1);
  MOESEG_LAUNCH(gate_entropy_rows_kernel, grid_for(tasks, kUmBlock), kUmBlock, 0, stream)(gate, N, G, E, reduction, rows);
  check_launch("gate_entropy_map (rows)");
  const long long P = static_cast<long long>(N) * HW;
  MOESEG_LAUNCH(gate_entropy_pixel_kernel, grid_for(P, kUmBlock), kUmBlock, 0, stream)(
      rows, predicted, G, reduction, static_cast<long long>(HW), P, out);
  check_launch("gate_entropy_map (pixels)");
}

size_t divide_by_max_workspace_floats(int64_t n) { return static_cast<size_t>(detail::grid_for(n, detail::kUmBlock, 256)) * 2; }

void divide_by_max(const double* x, int64_t n, double* out, float* workspace, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(n >= 1, "divide_by_max: n=", n, " must be >= 1");
  MOESEG_CHECK(is_aligned16(workspace), "divide_by_max: workspace must be 16-byte aligned");
  const int blocks = grid_for(n, kUmBlock, 256);
  double* partial = reinterpret_cast<double*>(workspace);
  MOESEG_LAUNCH(uncertainty_max_partial_kernel, blocks, kUmBlock, 0, stream)(x, static_cast<long long>(n), partial);
  check_launch("divide_by_max (partial max)");
  MOESEG_LAUNCH(uncertainty_divide_kernel, grid_for(n, kUmBlock), kUmBlock, 0, stream)(
      x, static_cast<long long>(n), 1.0, partial, blocks, out);
  check_launch("divide_by_max (divide)");
}

void divide_by(const double* x, int64_t n, double divisor, double* out, cudaStream_t stream) {
  using namespace detail;
  MOESEG_CHECK(n >= 1, "divide_by: n=", n, " must be >= 1");
  MOESEG_LAUNCH(uncertainty_divide_kernel, grid_for(n, kUmBlock), kUmBlock, 0, stream)(
      x, static_cast<long long>(n), divisor, nullptr, 0, out);
  check_launch("divide_by");
}

int calibration_result_slots(int bins) { return detail::cal_slots(bins); }

size_t calibration_workspace_floats(int N, int64_t HW, int bins) {
  const long long P = static_cast<long long>(N) * HW;
  return static_cast<size_t>(detail::cal_blocks(P)) * detail::cal_slots(bins) * 2;
}

void calibration_histogram(const double* mean_probs, const int64_t* labels, const double* uncertainty,
                           int64_t ignore_index, int N, int C, int64_t HW, int bins, unsigned char* status,
                           double* result, float* workspace, cudaStream_t stream) {
  using namespace detail;
  um_check_sizes("calibration_histogram", N, C, HW);
  MOESEG_CHECK(bins >= 1 && bins <= kCalibrationMaxBins, "calibration_histogram: bins=", bins, " must be in [1, ",
               kCalibrationMaxBins, "]");
  MOESEG_CHECK(is_aligned16(workspace), "calibration_histogram: workspace must be 16-byte aligned");
  const long long P = static_cast<long long>(N) * HW;
  const int blocks = cal_blocks(P), slots = cal_slots(bins);
  const long long tiles_per_block = (cal_tiles(P) + blocks - 1) / blocks;
  double* partial = reinterpret_cast<double*>(workspace);
  MOESEG_LAUNCH(calibration_partial_kernel, blocks, kCalBlock, 0, stream)(
      mean_probs, labels, uncertainty, static_cast<long long>(ignore_index), C, static_cast<long long>(HW), P, bins,
      tiles_per_block, status, partial);
  check_launch("calibration_histogram (partials)");
  MOESEG_LAUNCH(calibration_final_kernel, 1, kUmBlock, 0, stream)(partial, blocks, slots, result);
  check_launch("calibration_histogram (final)");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
