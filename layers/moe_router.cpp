// The router of a sparse MoE layer; the maths are in moe_router.h.
#include "layers/moe_router.h"

#include <cmath>

#include "core/autograd.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/reduce.h"

namespace moeseg {

namespace {

// softplus(x) = max(x, 0) + log(1 + exp(-|x|)): no overflow for large |x|.
Tensor softplus(const Tensor& x) {
  Tensor abs_x = mul(x, sign(x));
  return add(relu(x), log(add_scalar(exp(neg(abs_x)), 1.0)));
}

}  // namespace

const char* moe_router_kind_name(MoeRouterKind kind) {
  switch (kind) {
    case MoeRouterKind::GapLinear: return "gap_linear";
    case MoeRouterKind::Conv1x1Gap: return "conv1x1_gap";
    case MoeRouterKind::RandomProjection: return "random_projection";
  }
  return "?";
}

MoeRouter::MoeRouter(MoeRouterKind kind, int64_t in_channels, int64_t num_experts, MoeNoise noise, Generator& gen)
    : Module("MoeRouter"), kind_(kind), noise_(noise), in_(in_channels), n_(num_experts) {
  MOESEG_CHECK(in_channels > 0 && num_experts > 0, "MoeRouter: in_channels ", in_channels, " and num_experts ",
               num_experts, " must be positive");
  switch (kind) {
    case MoeRouterKind::GapLinear:
      linear_ = register_module("linear", std::make_shared<Linear>(in_channels, num_experts, true, gen));
      break;
    case MoeRouterKind::Conv1x1Gap:
      conv_ = register_module("conv", std::make_shared<Conv2d>(in_channels, num_experts, 1, 1, 0, 1, 1, true, gen));
      break;
    case MoeRouterKind::RandomProjection: {
      Tensor r = Tensor::empty({num_experts, in_channels});
      normal_(r, 0.0, 1.0 / std::sqrt(static_cast<double>(in_channels)), gen);
      projection_ = register_buffer("projection", r);
      break;
    }
  }
  if (noise == MoeNoise::ShazeerLearned)
    noise_linear_ = register_module("noise", std::make_shared<Linear>(in_channels, num_experts, true, gen));
}

MoeRouterOutput MoeRouter::route(const Tensor& tokens, Generator* noise_gen) {
  check_dim(tokens, 4, "MoeRouter", "tokens");
  MOESEG_CHECK(tokens.size(1) == in_, "MoeRouter: tokens ", tokens.str(), " have ", tokens.size(1),
               " channels, the router expects ", in_);
  Tensor gap = mean(tokens, {2, 3});   // [T, C]
  MoeRouterOutput out;
  switch (kind_) {
    case MoeRouterKind::GapLinear: out.logits = linear_->forward(gap); break;
    case MoeRouterKind::Conv1x1Gap: out.logits = mean(conv_->forward(tokens), {2, 3}); break;
    case MoeRouterKind::RandomProjection:
      out.logits = matmul(gap, projection_.detach().to(gap.dtype()).transpose(0, 1));
      break;
  }
  out.noisy = out.logits;
  if (noise_active()) {
    MOESEG_CHECK(noise_gen != nullptr, "MoeRouter: the training noise needs a generator");
    out.noise_std = add_scalar(softplus(noise_linear_->forward(gap)), 0.01);
    Tensor eps = randn(out.logits.sizes(), out.logits.dtype(), *noise_gen);
    if (out.logits.device() != eps.device()) eps = eps.to(out.logits.device());
    out.noisy = add(out.logits, mul(eps, out.noise_std));
  }
  return out;
}

}  // namespace moeseg
