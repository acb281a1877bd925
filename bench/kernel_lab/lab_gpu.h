// Shared by the GPU half of the kernel lab (lab_gpu.cpp, lab_baselines.cpp, lab_baselines_frru.cpp;
// builds with CUDA only): the event timer and the library baselines (cuDNN, cuBLAS) on the lab's problems.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "bench/kernel_lab/lab_problems.h"

namespace moeseg::lab::gpu {

// Median over `repeats` timed calls (after one untimed warm-up), in milliseconds, each call
// bracketed by cudaEvents on the default stream.
double median_ms(const std::function<void()>& launch, int repeats);

struct Baseline {
  std::string name;         // e.g. "cudnn fp32-fma algo 1"
  double ms = 0;            // median
  bool validated = false;   // output compared with the CPU reference
  ErrorStats err;
  std::string note;         // why it is missing, or what it computes differently
};

// cudnnConvolutionForward with the fastest algorithm cudnnFind... reports, FP32 FMA math (the
// arithmetic of our kernel) and default math (TF32 tensor cores allowed on Ampere and later).
std::vector<Baseline> conv_baselines(const ConvProblem& p, const ConvData& d, const float* x, const float* w,
                                     int repeats);
// The combine as cuBLAS strided-batched GEMMs (m = pixels of a gate row, n = 1, k = E) on a
// contiguous copy of the experts; the E softmax weights come from the host (negligible work).
Baseline gate_baseline(const GateProblem& p, const GateData& d, const std::vector<const float*>& experts, int repeats);
// cudnnSoftmaxForward(LOG, CHANNEL) over the logits: the library's log-softmax alone (writes
// N*C*HW floats where the fused kernel writes two per pixel; no NLL, no reduction).
Baseline ce_baseline(const CeProblem& p, const float* logits, int repeats);
// The same composition as the unfused pool_concat from library calls: cudnnPoolingForward (max,
// k3, stride f, pad 1) writing straight into the z channels of the concat buffer (a strided
// output descriptor; a packed temporary + copy where cuDNN refuses it) and cudaMemcpy2DAsync of y
// into its channels. No argmax indices (cuDNN's backward recomputes them). No library kernel does
// the fused pool + concat.
Baseline frru_pool_baseline(const FrruProblem& p, const FrruPoolData& d, const float* y, const float* z, int repeats);
// conv1x1_upsample_add from library calls where one exists: cudnnConvolutionForward (1x1, FP32
// FMA math) + cudnnAddTensor (bias) into the low-res map, moeseg's upsample_bilinear2d_forward
// (cuDNN has no align_corners bilinear resize), cudnnOpTensor (add) for z_out. No library kernel
// does the fused piece.
Baseline frru_upadd_baseline(const FrruProblem& p, const FrruUpData& d, const float* y, const float* z, const float* w,
                             const float* b, int repeats);
// Bytes the baselines above move (their own composition's traffic).
double frru_pool_baseline_bytes(const FrruProblem& p);
double frru_upadd_baseline_bytes(const FrruProblem& p);

}  // namespace moeseg::lab::gpu
