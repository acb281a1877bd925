// Shared by the GPU half of the kernel lab (lab_gpu.cpp, lab_baselines.cpp; builds with CUDA
// only): the event timer and the library baselines (cuDNN, cuBLAS) on the lab's problems.
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

}  // namespace moeseg::lab::gpu
