// Counts the floating-point work of the ops that actually run on this thread while a
// FlopCountScope is open: what a model costs per image, as run (a sparse MoE's experts without
// tokens are not run, so they add nothing). Convention: 2 FLOPs per multiply-add of the
// convolutions, linear layers and matrix products (conv2d, linear, matmul); elementwise ops,
// normalisation, pooling and resampling are not counted (a few percent of a CNN). Backward
// passes count nothing (the scope is meant for inference). Scopes nest: the innermost one
// counts. Tested by tests/models/test_moe_insertion.cpp (a conv and a linear by hand, a
// DeepLabv3+ against its analytic count, a ConvMoE with k of N experts run).
#pragma once
#include <cstdint>

namespace moeseg {

class FlopCountScope {
 public:
  FlopCountScope();
  ~FlopCountScope();
  FlopCountScope(const FlopCountScope&) = delete;
  FlopCountScope& operator=(const FlopCountScope&) = delete;
  double flops() const { return flops_; }
  void add(double f) { flops_ += f; }

 private:
  double flops_ = 0;
  FlopCountScope* outer_;
};

// Adds `flops` to the innermost open scope of this thread; nothing when none is open.
void count_flops(double flops);

}  // namespace moeseg
