// The router of a sparse MoE layer (layers/sparse_moe.h; reference-systems §5.2 "Router nets").
// Maps tokens [T, C, h, w] (an image or a patch each) to expert logits [T, N]. Kinds, their
// JSON names (moe_router_kind_name / moe_router_kind_from_name) and child names:
//   GapLinear     "gap_linear"        logits = W · GAP(x) + b          child "linear" (Linear C -> N)
//   Conv1x1Gap    "conv1x1_gap"       logits = GAP(conv1x1(x))         child "conv" (Conv2d C -> N, bias)
//   Conv3x3Gap    "conv3x3_gap"       logits = GAP(conv3x3(x))         child "conv" (Conv2d C -> N,
//                                     3x3, padding 1, bias; per patch the padding is zero at the
//                                     patch border, as for the experts)
//   TwoConvBnGap  "two_conv_bn_gap"   logits = GAP(conv2(relu(bn1(conv1(x)))))   the lineage's "2 convs
//                                     (mid 8 ch) + BN -> GAP": children "conv1" (Conv2d C -> 8, 3x3,
//                                     padding 1, no bias), "bn1" (BatchNorm2d(8): batch statistics
//                                     over the T tokens in training, running ones at eval), "conv2"
//                                     (Conv2d 8 -> N, 1x1, bias). (The lineage's two convs are both
//                                     3x3 without padding or bias and it has no ReLU; ours follows
//                                     the definition.)
//   RandomProjection "random_projection"  logits = R · GAP(x), R [N, C] ~ N(0, 1/C) drawn once from
//                                     the generator, a buffer "projection" (saved, never trained)
// Training noise (applied only in training mode; JSON names moe_noise_name / moe_noise_from_name):
//   None           "none"             noisy = logits
//   ShazeerLearned "shazeer_learned"  σ = softplus(W_noise · GAP(x)) + 0.01, noisy = logits + ε · σ,
//                                     ε ~ N(0, 1) from the generator passed to route() (Shazeer et
//                                     al. 2017; child "noise", a Linear C -> N with bias); noise_std
//                                     of the output is σ (the smooth load estimate needs it).
//   StdNormalized  "std_normalized"   the lineage's gate/topk.py: noisy = logits / s + ε · σ with
//                                     s[t] = sqrt((1/N) Σ_i (logits[t,i] − mean_t)²) + 1e-6 (the
//                                     population std over the N experts of token t, plus 1e-6 so a
//                                     token with equal logits stays finite; with N = 1 the logits are
//                                     not divided: s would be 0 and its gradient undefined), σ the
//                                     constant `noise_std` (default 0.1), ε ~ N(0, 1) from the
//                                     generator. noise_std of the output stays undefined (σ is not
//                                     a per-token learned std, there is no smooth load for it).
//                                     Dividing by s keeps each token's order of experts, so without
//                                     ε it would choose the same experts: at eval noisy = logits, no
//                                     normalisation. (The lineage divides by the std of the whole
//                                     [T, N] score matrix; the issue asks for the per-token one.)
// noisy is differentiable in the router's parameters and the tokens in every case.
// Cost per token: C·h·w adds for the GAP, 2·C·N FLOPs per linear head; the conv routers 2·C·N·K²·h·w
// (TwoConvBnGap 2·C·8·9·h·w + 2·8·N·h·w).
// Tested by tests/layers/test_sparse_moe.cpp and tests/layers/test_moe_gate_options.cpp.
#pragma once
#include <memory>
#include <string>

#include "core/rng.h"
#include "layers/batch_norm_layer.h"
#include "layers/conv2d_layer.h"
#include "layers/linear_layer.h"
#include "layers/module.h"

namespace moeseg {

enum class MoeRouterKind { GapLinear, Conv1x1Gap, RandomProjection, Conv3x3Gap, TwoConvBnGap };
enum class MoeNoise { None, ShazeerLearned, StdNormalized };

// JSON-friendly names; the parsers throw naming `context` (e.g. the layer), the unknown name and
// every known one.
const char* moe_router_kind_name(MoeRouterKind kind);
MoeRouterKind moe_router_kind_from_name(const std::string& name, const std::string& context = "");
const char* moe_noise_name(MoeNoise noise);
MoeNoise moe_noise_from_name(const std::string& name, const std::string& context = "");

inline constexpr int64_t kMoeRouterMidChannels = 8;   // TwoConvBnGap's middle width (the lineage's)
inline constexpr double kMoeStdNormalizedEps = 1e-6;  // added to the per-token std (StdNormalized)

struct MoeRouterOutput {
  Tensor logits;      // [T, N] clean
  Tensor noisy;       // [T, N] with the training noise (the logits themselves without noise)
  Tensor noise_std;   // [T, N] σ of ShazeerLearned, undefined otherwise
};

class MoeRouter : public Module {
 public:
  // noise_std: σ of StdNormalized (> 0, finite; unused by the other kinds).
  MoeRouter(MoeRouterKind kind, int64_t in_channels, int64_t num_experts, MoeNoise noise,
            Generator& gen = default_generator(), double noise_std = 0.1);
  // noise_gen: draws ε when the noise is on and the module is training (required then).
  MoeRouterOutput route(const Tensor& tokens, Generator* noise_gen);
  Tensor forward(const Tensor& tokens) override { return route(tokens, nullptr).logits; }

  MoeRouterKind kind() const { return kind_; }
  MoeNoise noise() const { return noise_; }
  bool noise_active() const { return noise_ != MoeNoise::None && is_training(); }

 private:
  Tensor clean_logits(const Tensor& tokens, const Tensor& gap);
  Tensor std_normalized(const Tensor& logits, Generator& noise_gen) const;

  MoeRouterKind kind_;
  MoeNoise noise_;
  int64_t in_, n_;
  double noise_std_;
  std::shared_ptr<Linear> linear_, noise_linear_;
  std::shared_ptr<Conv2d> conv_, conv2_;
  std::shared_ptr<BatchNorm2d> bn_;
  Tensor projection_;
};

}  // namespace moeseg
