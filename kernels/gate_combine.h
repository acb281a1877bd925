// The MoE's gating softmax fused with the weighted combination of the experts' logits:
//   weights[b, g, e] = softmax_e(gate_logits[b, g, e])
//   out[b, c, h, w]  = sum_e weights[b, g(c), e] * experts[e][b, c, h, w],  g(c) = 0 (G == 1, simple
//                      gate) or c (G == C, class-wise gate).
// gate_logits [B, G, E]; experts: E tensors [B, C, H, W] (any E >= 1). Differentiable in
// gate_logits and every expert. Returns {out, weights}; on a CUDA device (kernels/cuda/
// gate_softmax_combine.cu, one kernel each way) `weights` is a plain tensor without a graph (the
// gate statistics read it; the loss goes through `out`), on the CPU it is the softmax op's output.
// Tests: tests/ops/test_gate_combine.cpp, tests/device/.
#pragma once
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

std::pair<Tensor, Tensor> gate_softmax_combine(const Tensor& gate_logits, const std::vector<Tensor>& experts);

}  // namespace moeseg
