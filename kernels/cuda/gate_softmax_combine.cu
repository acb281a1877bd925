// gate_softmax_combine: the MoE's combination step (models/moe.h) as two fused kernels.
//   forward:  w = softmax_e(gate_logits[B, G, E]);  out[b,c,p] = sum_e w[b,g(c),e] * x_e[b,c,p]
//   backward: dL/dx_e = w * gout;  dL/dw[b,g,e] = sum_{c in g, p} gout * x_e;
//             dL/dz = w * (dL/dw - sum_j w_j dL/dw_j)     (softmax backward, z = gate logits)
// G = 1 (simple gate: one weight per expert for all classes) or G = C (class-wise gate).
// Compiled by nvcc for the GPU and by g++ for CUDA-on-CPU (tests/cuda_kernels/test_gate_softmax_combine.cpp).
//
// Roofline (float32, E = 2, B = 2, C = 38):
//   FRRN-A     480x640: N = B*C*H*W = 23.3 M elements per expert.
//     forward  reads E*N + writes N floats = 280 MB, 3 FLOP/element = 70 MFLOP (0.25 FLOP/B)
//     backward reads gout + E experts = 280 MB (+ 187 MB when dL/dx_e is written: 467 MB)
//   DeepLabv3+ 912x912: N = 63.2 M -> forward 759 MB / 190 MFLOP; backward 759 MB (1264 MB with dx)
//   At 0.25 FLOP/byte the kernels are far below the H100 ridge point (~20 FLOP/B for FP32), so the
//   floor is bytes / 3.35 TB/s: forward 84 us (FRRN-A) and 226 us (DeepLabv3+); backward 84 /
//   226 us without dx, 139 / 377 us with dx. (Unfused: softmax, E scaled copies and E-1 adds would
//   read and write every element E+ times: ~3x the bytes.)
// What the kernels do to get near that floor:
//   * each expert's logits are read exactly once, the output written once (the gate softmax is
//     fused in: E values per block, computed once into shared memory, never a separate launch);
//   * 16-byte vector loads/stores (F4) when HW % 4 == 0 and the pointers are 16-byte aligned
//     (checked on the host; a scalar instantiation otherwise);
//   * the grid is (chunks, C, B): a block works inside one (b, c) plane, so the class -> weight
//     lookup is per block, not per element, and no integer division by HW in the hot loop;
//   * experts are processed 4 per pass (pointers passed by value in the kernel parameters, no
//     device pointer table to build); E > 4 makes further passes that accumulate into `out`.
// Backward is deterministic (DESIGN.md: no float atomics): stage 1 writes one partial dot
// product per (b, c, chunk, e) via block_reduce_sum; stage 2, one block per (b, g), sums them in a
// fixed order in double and applies the softmax backward. The chunk count depends only on the
// sizes, so the result is bit-identical run to run and independent of pointer alignment.
#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kGscBlock = 256;
constexpr int kExpertsPerPass = 4;   // bounds the per-thread accumulators (registers) in backward

struct ExpertPtrs {
  const float* p[kExpertsPerPass];
};
struct GradPtrs {
  float* p[kExpertsPerPass];
};

// Chunks per (b, c) plane: depends on sizes only (determinism). About 4096 blocks in all, so an
// H100 (132 SMs) gets many waves, and at least one vector of 4 per thread.
inline int gsc_chunks(int B, int C, long long HW) {
  const long long planes = 1ll * B * C;
  const long long want = (HW + 4ll * kGscBlock - 1) / (4ll * kGscBlock);
  long long cap = (4096 + planes - 1) / planes;
  if (cap < 1) cap = 1;
  return static_cast<int>(want < 1 ? 1 : (want < cap ? want : cap));
}

// Dynamic shared memory: E floats (the softmax weights of this block's (b, g)).
template <int VEC>
__global__ void __launch_bounds__(kGscBlock)
gate_softmax_combine_forward_kernel(const float* gate_logits, ExpertPtrs x, int e0, int ne, float* out,
                                    float* weights, int G, int C, long long HW, int E, int accumulate) {
  MOESEG_DYNAMIC_SHARED(float, w);
  const int c = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
  const int g = G == 1 ? 0 : c;
  if (linear_thread_id() == 0) {
    // E is small (2-8): one thread, in the CPU backend's order (max, exp(z - max), sum, divide).
    const float* z = gate_logits + (static_cast<long long>(b) * G + g) * E;
    float m = z[0];
    for (int e = 1; e < E; ++e) m = z[e] > m ? z[e] : m;
    float s = 0.f;
    for (int e = 0; e < E; ++e) {
      w[e] = expf(z[e] - m);
      s += w[e];
    }
    for (int e = 0; e < E; ++e) w[e] = w[e] / s;
    // One block per (b, g) publishes w (first pass only): no two blocks write the same address.
    if (blockIdx.x == 0 && e0 == 0 && (G != 1 || c == 0))
      for (int e = 0; e < E; ++e) weights[(static_cast<long long>(b) * G + g) * E + e] = w[e];
  }
  sync_threads();
  float wk[kExpertsPerPass];
  for (int k = 0; k < kExpertsPerPass; ++k) wk[k] = k < ne ? w[e0 + k] : 0.f;

  const long long plane = (static_cast<long long>(b) * C + c) * HW;
  float* o = out + plane;
  const long long nv = HW / VEC;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long v = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; v < nv; v += stride) {
    if constexpr (VEC == 4) {
      F4 acc = accumulate ? load4(o, v) : F4{0.f, 0.f, 0.f, 0.f};
MOESEG_UNROLL
      for (int k = 0; k < kExpertsPerPass; ++k) {
        if (k < ne) {
          const F4 a = load4(x.p[k] + plane, v);
          acc.x = fmaf(wk[k], a.x, acc.x);
          acc.y = fmaf(wk[k], a.y, acc.y);
          acc.z = fmaf(wk[k], a.z, acc.z);
          acc.w = fmaf(wk[k], a.w, acc.w);
        }
      }
      store4(o, v, acc);
    } else {
      float acc = accumulate ? o[v] : 0.f;
MOESEG_UNROLL
      for (int k = 0; k < kExpertsPerPass; ++k)
        if (k < ne) acc = fmaf(wk[k], x.p[k][plane + v], acc);
      o[v] = acc;
    }
  }
}

// Stage 1: per (chunk, c, b) block, the partial sums over its pixels of gout * x_e for the
// pass's experts, and dL/dx_e = w * gout when has_dx. partial is [B, C, chunks, E].
template <int VEC>
__global__ void __launch_bounds__(kGscBlock)
gate_softmax_combine_backward_partial_kernel(const float* grad_out, const float* weights, ExpertPtrs x,
                                             GradPtrs dx, int has_dx, int e0, int ne, float* partial, int G,
                                             int C, long long HW, int E) {
  const int chunk = static_cast<int>(blockIdx.x), c = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
  const int g = G == 1 ? 0 : c;
  float wk[kExpertsPerPass], acc[kExpertsPerPass];
MOESEG_UNROLL
  for (int k = 0; k < kExpertsPerPass; ++k) {
    wk[k] = k < ne ? weights[(static_cast<long long>(b) * G + g) * E + e0 + k] : 0.f;
    acc[k] = 0.f;
  }
  const long long plane = (static_cast<long long>(b) * C + c) * HW;
  const float* go = grad_out + plane;
  const long long nv = HW / VEC;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long v = static_cast<long long>(chunk) * blockDim.x + threadIdx.x; v < nv; v += stride) {
    if constexpr (VEC == 4) {
      const F4 gv = load4(go, v);
MOESEG_UNROLL
      for (int k = 0; k < kExpertsPerPass; ++k) {
        if (k < ne) {
          const F4 a = load4(x.p[k] + plane, v);
          // Per-thread float partials: at most HW / (chunks * block) * 4 terms each (a few
          // hundred at the FRRN-A shape) before the tree reduction; stage 2 sums in double.
          acc[k] = fmaf(gv.x, a.x, acc[k]);
          acc[k] = fmaf(gv.y, a.y, acc[k]);
          acc[k] = fmaf(gv.z, a.z, acc[k]);
          acc[k] = fmaf(gv.w, a.w, acc[k]);
          if (has_dx) store4(dx.p[k] + plane, v, F4{wk[k] * gv.x, wk[k] * gv.y, wk[k] * gv.z, wk[k] * gv.w});
        }
      }
    } else {
      const float gv = go[v];
MOESEG_UNROLL
      for (int k = 0; k < kExpertsPerPass; ++k) {
        if (k < ne) {
          acc[k] = fmaf(gv, x.p[k][plane + v], acc[k]);
          if (has_dx) dx.p[k][plane + v] = wk[k] * gv;
        }
      }
    }
  }
  // ne is the same for the whole block, so every thread reaches every block_reduce_sum.
  const long long out_base = ((static_cast<long long>(b) * C + c) * gridDim.x + chunk) * E + e0;
  // Unrolled over the compile-time bound so acc[] stays in registers (a loop to the runtime ne
  // would index it dynamically and put it on the stack).
  MOESEG_UNROLL
  for (int k = 0; k < kExpertsPerPass; ++k) {
    if (k < ne) {
      const float s = block_reduce_sum(acc[k]);
      if (linear_thread_id() == 0) partial[out_base + k] = s;
    }
  }
}

// Stage 2: one block per (g, b). Dynamic shared memory: E doubles (dL/dw of this (b, g)).
__global__ void __launch_bounds__(kGscBlock)
gate_softmax_combine_backward_gate_kernel(const float* partial, const float* weights, float* grad_gate_logits,
                                          int G, int C, int E, int chunks) {
  MOESEG_DYNAMIC_SHARED(double, dw);
  const int g = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.y);
  const int c0 = G == 1 ? 0 : g;
  const long long items = static_cast<long long>(G == 1 ? C : 1) * chunks;
  const int tid = static_cast<int>(linear_thread_id());
  for (int e = 0; e < E; ++e) {
    double s = 0.0;   // fixed assignment of items to threads and a fixed tree: deterministic
    for (long long j = tid; j < items; j += blockDim.x)
      s += partial[((static_cast<long long>(b) * C + c0) * chunks + j) * E + e];
    s = block_reduce_sum(s);
    if (tid == 0) dw[e] = s;
  }
  sync_threads();
  if (tid == 0) {
    const float* wg = weights + (static_cast<long long>(b) * G + g) * E;
    double dot = 0.0;
    for (int e = 0; e < E; ++e) dot += static_cast<double>(wg[e]) * dw[e];
    for (int e = 0; e < E; ++e)
      grad_gate_logits[(static_cast<long long>(b) * G + g) * E + e] = static_cast<float>(wg[e] * (dw[e] - dot));
  }
}

inline void check_shapes(const char* op, int B, int G, int C, int64_t HW, int E) {
  MOESEG_CHECK(B >= 1 && C >= 1 && HW >= 1 && E >= 1, op, ": need B, C, HW, E >= 1, got B=", B, " C=", C,
               " HW=", HW, " E=", E);
  MOESEG_CHECK(G == 1 || G == C, op, ": gate groups G=", G, " must be 1 or C=", C);
  MOESEG_CHECK(C <= 65535 && B <= 65535, op, ": C=", C, " and B=", B, " must fit the grid's y/z (65535)");
}

}  // namespace detail

void gate_softmax_combine_forward(const float* gate_logits, const float* const* expert_logits, float* out,
                                  float* weights, int B, int G, int C, int64_t HW, int E, cudaStream_t stream) {
  using namespace detail;
  check_shapes("gate_softmax_combine_forward", B, G, C, HW, E);
  bool vec = HW % 4 == 0 && is_aligned16(out);
  for (int e = 0; e < E; ++e) vec = vec && is_aligned16(expert_logits[e]);
  const int chunks = gsc_chunks(B, C, HW);
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(C), static_cast<unsigned>(B));
  const size_t smem = static_cast<size_t>(E) * sizeof(float);
  for (int e0 = 0; e0 < E; e0 += kExpertsPerPass) {
    const int ne = E - e0 < kExpertsPerPass ? E - e0 : kExpertsPerPass;
    ExpertPtrs x{};
    for (int k = 0; k < ne; ++k) x.p[k] = expert_logits[e0 + k];
    if (vec)
      MOESEG_LAUNCH(gate_softmax_combine_forward_kernel<4>, grid, kGscBlock, smem, stream)(
          gate_logits, x, e0, ne, out, weights, G, C, static_cast<long long>(HW), E, e0 > 0 ? 1 : 0);
    else
      MOESEG_LAUNCH(gate_softmax_combine_forward_kernel<1>, grid, kGscBlock, smem, stream)(
          gate_logits, x, e0, ne, out, weights, G, C, static_cast<long long>(HW), E, e0 > 0 ? 1 : 0);
    check_launch("gate_softmax_combine_forward");
  }
}

size_t gate_softmax_combine_backward_workspace_floats(int B, int C, int64_t HW, int E) {
  return static_cast<size_t>(B) * C * detail::gsc_chunks(B, C, HW) * E;
}

void gate_softmax_combine_backward(const float* grad_out, const float* weights, const float* const* expert_logits,
                                   float* grad_gate_logits, float* const* grad_expert_logits, float* workspace,
                                   int B, int G, int C, int64_t HW, int E, cudaStream_t stream) {
  using namespace detail;
  check_shapes("gate_softmax_combine_backward", B, G, C, HW, E);
  bool vec = HW % 4 == 0 && is_aligned16(grad_out);
  for (int e = 0; e < E; ++e) {
    vec = vec && is_aligned16(expert_logits[e]);
    if (grad_expert_logits) vec = vec && is_aligned16(grad_expert_logits[e]);
  }
  const int chunks = gsc_chunks(B, C, HW);
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(C), static_cast<unsigned>(B));
  const int has_dx = grad_expert_logits != nullptr ? 1 : 0;
  for (int e0 = 0; e0 < E; e0 += kExpertsPerPass) {
    const int ne = E - e0 < kExpertsPerPass ? E - e0 : kExpertsPerPass;
    ExpertPtrs x{};
    GradPtrs dx{};
    for (int k = 0; k < ne; ++k) {
      x.p[k] = expert_logits[e0 + k];
      dx.p[k] = has_dx ? grad_expert_logits[e0 + k] : nullptr;
    }
    if (vec)
      MOESEG_LAUNCH(gate_softmax_combine_backward_partial_kernel<4>, grid, kGscBlock, 0, stream)(
          grad_out, weights, x, dx, has_dx, e0, ne, workspace, G, C, static_cast<long long>(HW), E);
    else
      MOESEG_LAUNCH(gate_softmax_combine_backward_partial_kernel<1>, grid, kGscBlock, 0, stream)(
          grad_out, weights, x, dx, has_dx, e0, ne, workspace, G, C, static_cast<long long>(HW), E);
    check_launch("gate_softmax_combine_backward (partial dots)");
  }
  const dim3 grid2(static_cast<unsigned>(G), static_cast<unsigned>(B));
  MOESEG_LAUNCH(gate_softmax_combine_backward_gate_kernel, grid2, kGscBlock, static_cast<size_t>(E) * sizeof(double),
                stream)(workspace, weights, grad_gate_logits, G, C, E, chunks);
  check_launch("gate_softmax_combine_backward (gate)");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
