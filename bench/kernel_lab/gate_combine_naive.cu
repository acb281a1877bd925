// Kernel lab v1 of the MoE gate softmax + combine forward: one thread per output element. Each
// thread recomputes the softmax of its E gate logits (E exps) and reads its E expert values with
// scalar loads; the thread of (b, g) at c == g-first, p == 0 also publishes the weights. The
// bytes moved are the same as production (each expert value read once); what differs is the
// per-element softmax, 4-byte accesses and the integer divisions of the flat index.
// Run by bench/kernel_lab (kernel_lab).
#include "bench/kernel_lab/lab_kernels.cuh"
#include "core/error.h"
#include "kernels/device_helpers.cuh"

namespace moeseg::lab::MOESEG_KERNEL_NS {
namespace {

struct NaiveExperts {
  const float* p[kNaiveMaxExperts];
};

__global__ void gate_combine_naive_kernel(const float* gate_logits, NaiveExperts x, float* out, float* weights, int G,
                                          int C, long long HW, int E, long long total) {
  for (long long i = dev::global_index_x(); i < total; i += dev::grid_stride_x()) {
    const long long p = i % HW;
    const int c = static_cast<int>((i / HW) % C);
    const long long b = i / (HW * C);
    const int g = G == 1 ? 0 : c;
    const float* z = gate_logits + (b * G + g) * E;
    float m = z[0];
    for (int e = 1; e < E; ++e) m = z[e] > m ? z[e] : m;
    float s = 0.f;
    for (int e = 0; e < E; ++e) s += expf(z[e] - m);
    const bool publish = p == 0 && (G != 1 || c == 0);
    float acc = 0.f;
    for (int e = 0; e < E; ++e) {
      const float we = expf(z[e] - m) / s;
      acc += we * x.p[e][i];
      if (publish) weights[(b * G + g) * E + e] = we;
    }
    out[i] = acc;
  }
}

}  // namespace

void gate_softmax_combine_forward_naive(const float* gate_logits, const float* const* expert_logits, float* out,
                                        float* weights, int B, int G, int C, int64_t HW, int E, cudaStream_t stream) {
  MOESEG_CHECK(B >= 1 && C >= 1 && HW >= 1 && (G == 1 || G == C) && E >= 1 && E <= kNaiveMaxExperts,
               "gate_softmax_combine_forward_naive: need B, C, HW >= 1, G in {1, C}, 1 <= E <= ", kNaiveMaxExperts,
               "; got B=", B, " G=", G, " C=", C, " HW=", HW, " E=", E);
  NaiveExperts x{};
  for (int e = 0; e < E; ++e) x.p[e] = expert_logits[e];
  const long long total = 1ll * B * C * HW;
  const int block = 256;
  const long long blocks = (total + block - 1) / block;
  MOESEG_LAUNCH(gate_combine_naive_kernel, static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), block, 0,
                stream)(gate_logits, x, out, weights, G, C, static_cast<long long>(HW), E, total);
  const cudaError_t err = cudaGetLastError();
  MOESEG_CHECK(err == cudaSuccess, "gate_softmax_combine_forward_naive: launch failed: ", cudaGetErrorString(err));
}

}  // namespace moeseg::lab::MOESEG_KERNEL_NS
