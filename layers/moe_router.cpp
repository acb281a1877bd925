// The router of a sparse MoE layer and the JSON names of its kinds and noises; the maths are in
// moe_router.h.
#include "layers/moe_router.h"

#include <array>
#include <cmath>
#include <utility>

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

constexpr std::array<MoeRouterKind, 5> kRouterKinds{MoeRouterKind::GapLinear, MoeRouterKind::Conv1x1Gap,
                                                    MoeRouterKind::RandomProjection, MoeRouterKind::Conv3x3Gap,
                                                    MoeRouterKind::TwoConvBnGap};
constexpr std::array<MoeNoise, 3> kNoises{MoeNoise::None, MoeNoise::ShazeerLearned, MoeNoise::StdNormalized};

// The enum value called `name` among `all`, or an error naming the context, the name and all names.
template <typename E, size_t M>
E parse_name(const std::string& name, const std::array<E, M>& all, const char* (*name_of)(E), const char* what,
             const std::string& context) {
  std::string known;
  for (E e : all) {
    if (name == name_of(e)) return e;
    known += (known.empty() ? "" : ", ") + std::string(name_of(e));
  }
  MOESEG_FAIL(context.empty() ? std::string("moe ") + what : context, ": unknown ", what, " '", name, "' (known: ",
              known, ")");
}

}  // namespace

const char* moe_router_kind_name(MoeRouterKind kind) {
  switch (kind) {
    case MoeRouterKind::GapLinear: return "gap_linear";
    case MoeRouterKind::Conv1x1Gap: return "conv1x1_gap";
    case MoeRouterKind::RandomProjection: return "random_projection";
    case MoeRouterKind::Conv3x3Gap: return "conv3x3_gap";
    case MoeRouterKind::TwoConvBnGap: return "two_conv_bn_gap";
  }
  return "?";
}

MoeRouterKind moe_router_kind_from_name(const std::string& name, const std::string& context) {
  return parse_name(name, kRouterKinds, moe_router_kind_name, "router kind", context);
}

const char* moe_noise_name(MoeNoise noise) {
  switch (noise) {
    case MoeNoise::None: return "none";
    case MoeNoise::ShazeerLearned: return "shazeer_learned";
    case MoeNoise::StdNormalized: return "std_normalized";
  }
  return "?";
}

MoeNoise moe_noise_from_name(const std::string& name, const std::string& context) {
  return parse_name(name, kNoises, moe_noise_name, "router noise", context);
}

MoeRouter::MoeRouter(MoeRouterKind kind, int64_t in_channels, int64_t num_experts, MoeNoise noise, Generator& gen,
                     double noise_std)
    : Module("MoeRouter"), kind_(kind), noise_(noise), in_(in_channels), n_(num_experts), noise_std_(noise_std) {
  MOESEG_CHECK(in_channels > 0 && num_experts > 0, "MoeRouter: in_channels ", in_channels, " and num_experts ",
               num_experts, " must be positive");
  MOESEG_CHECK(std::isfinite(noise_std) && noise_std > 0.0, "MoeRouter: noise_std must be > 0 and finite, got ",
               noise_std);
  const int64_t mid = kMoeRouterMidChannels;
  switch (kind) {
    case MoeRouterKind::GapLinear:
      linear_ = register_module("linear", std::make_shared<Linear>(in_channels, num_experts, true, gen));
      break;
    case MoeRouterKind::Conv1x1Gap:
      conv_ = register_module("conv", std::make_shared<Conv2d>(in_channels, num_experts, 1, 1, 0, 1, 1, true, gen));
      break;
    case MoeRouterKind::Conv3x3Gap:
      conv_ = register_module("conv", std::make_shared<Conv2d>(in_channels, num_experts, 3, 1, 1, 1, 1, true, gen));
      break;
    case MoeRouterKind::TwoConvBnGap:
      conv_ = register_module("conv1", std::make_shared<Conv2d>(in_channels, mid, 3, 1, 1, 1, 1, false, gen));
      bn_ = register_module("bn1", std::make_shared<BatchNorm2d>(mid));
      conv2_ = register_module("conv2", std::make_shared<Conv2d>(mid, num_experts, 1, 1, 0, 1, 1, true, gen));
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

Tensor MoeRouter::clean_logits(const Tensor& tokens, const Tensor& gap) {
  switch (kind_) {
    case MoeRouterKind::GapLinear: return linear_->forward(gap);
    case MoeRouterKind::Conv1x1Gap:
    case MoeRouterKind::Conv3x3Gap: return mean(conv_->forward(tokens), {2, 3});
    case MoeRouterKind::TwoConvBnGap:
      return mean(conv2_->forward(relu(bn_->forward(conv_->forward(tokens)))), {2, 3});
    case MoeRouterKind::RandomProjection:
      return matmul(gap, projection_.detach().to(gap.dtype()).transpose(0, 1));
  }
  MOESEG_FAIL("MoeRouter: unknown router kind ", static_cast<int>(kind_));
}

// logits / (population std over the experts + 1e-6) + ε·σ (moe_router.h).
Tensor MoeRouter::std_normalized(const Tensor& logits, Generator& noise_gen) const {
  Tensor scaled = logits;
  if (n_ > 1) {
    Tensor centred = sub(logits, mean(logits, {1}, true));
    Tensor s = add_scalar(sqrt(mean(square(centred), {1}, true)), kMoeStdNormalizedEps);   // [T, 1]
    scaled = div(logits, s);
  }
  Tensor eps = randn(logits.sizes(), logits.dtype(), noise_gen);
  if (logits.device() != eps.device()) eps = eps.to(logits.device());
  return add(scaled, scale(eps, noise_std_));
}

MoeRouterOutput MoeRouter::route(const Tensor& tokens, Generator* noise_gen) {
  check_dim(tokens, 4, "MoeRouter", "tokens");
  MOESEG_CHECK(tokens.size(1) == in_, "MoeRouter: tokens ", tokens.str(), " have ", tokens.size(1),
               " channels, the router expects ", in_);
  Tensor gap = mean(tokens, {2, 3});   // [T, C]
  MoeRouterOutput out;
  out.logits = clean_logits(tokens, gap);
  out.noisy = out.logits;
  if (!noise_active()) return out;
  MOESEG_CHECK(noise_gen != nullptr, "MoeRouter: the training noise needs a generator");
  if (noise_ == MoeNoise::StdNormalized) {
    out.noisy = std_normalized(out.logits, *noise_gen);
    return out;
  }
  out.noise_std = add_scalar(softplus(noise_linear_->forward(gap)), 0.01);
  Tensor eps = randn(out.logits.sizes(), out.logits.dtype(), *noise_gen);
  if (out.logits.device() != eps.device()) eps = eps.to(out.logits.device());
  out.noisy = add(out.logits, mul(eps, out.noise_std));
  return out;
}

}  // namespace moeseg
