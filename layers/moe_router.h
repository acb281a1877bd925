// The router of a sparse MoE layer (layers/sparse_moe.h; reference-systems §5.2 "Router nets").
// Maps tokens [T, C, h, w] (an image or a patch each) to expert logits [T, N]:
//   GapLinear         logits = W · GAP(x) + b                  children "linear" (Linear C -> N)
//   Conv1x1Gap        logits = GAP(conv1x1(x))                 child "conv" (Conv2d C -> N, bias)
//   RandomProjection  logits = R · GAP(x), R [N, C] ~ N(0, 1/C) drawn once from the generator,
//                     a buffer "projection" (saved, never trained)
// Training noise (noise = ShazeerLearned, applied only in training mode):
//   σ = softplus(W_noise · GAP(x)) + 0.01,  noisy = logits + ε · σ,  ε ~ N(0, 1) from the
//   generator passed to route() (Shazeer et al. 2017, noisy top-k gating; child "noise", a
//   Linear C -> N with bias). In eval mode, or with noise None, noisy = logits and σ is undefined.
// Cost per token: C·h·w adds for the GAP, 2·C·N FLOPs per head (the 1x1 conv router: 2·C·N·h·w).
// Tested by tests/layers/test_sparse_moe.cpp.
#pragma once
#include <memory>
#include <string>

#include "core/rng.h"
#include "layers/conv2d_layer.h"
#include "layers/linear_layer.h"
#include "layers/module.h"

namespace moeseg {

enum class MoeRouterKind { GapLinear, Conv1x1Gap, RandomProjection };
enum class MoeNoise { None, ShazeerLearned };

struct MoeRouterOutput {
  Tensor logits;      // [T, N] clean
  Tensor noisy;       // [T, N] logits + noise (the logits themselves without noise)
  Tensor noise_std;   // [T, N] σ, undefined without noise
};

class MoeRouter : public Module {
 public:
  MoeRouter(MoeRouterKind kind, int64_t in_channels, int64_t num_experts, MoeNoise noise,
            Generator& gen = default_generator());
  // noise_gen: draws ε when the noise is on and the module is training (required then).
  MoeRouterOutput route(const Tensor& tokens, Generator* noise_gen);
  Tensor forward(const Tensor& tokens) override { return route(tokens, nullptr).logits; }

  MoeRouterKind kind() const { return kind_; }
  MoeNoise noise() const { return noise_; }
  bool noise_active() const { return noise_ == MoeNoise::ShazeerLearned && is_training(); }

 private:
  MoeRouterKind kind_;
  MoeNoise noise_;
  int64_t in_, n_;
  std::shared_ptr<Linear> linear_, noise_linear_;
  std::shared_ptr<Conv2d> conv_;
  Tensor projection_;
};

const char* moe_router_kind_name(MoeRouterKind kind);

}  // namespace moeseg
