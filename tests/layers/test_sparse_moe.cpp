// SparseMoE (layers/sparse_moe.h): the sort-based dispatch against a dense reference loop (every
// token through its chosen experts one by one, weighted sum, routing recomputed on the host) for
// ConvMoE / BlockMoE, per image and per patch, k = 1 and 2, N = 4; experts without tokens get no
// gradient; float64 gradient checks through router, noise and experts; the balancing losses
// against values computed by hand in PyTorch (numbers below); capacity drops; determinism under a
// seed; the routers; bad input named.
// Run: build/tests/test_layers -tc='sparse_moe*'
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/autograd.h"
#include "core/cuda_emulation.h"
#include "core/allocator.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "kernels/softmax.h"
#include "layers/conv2d_layer.h"
#include "layers/moe_balancing.h"
#include "layers/resnet_blocks.h"
#include "layers/sparse_moe.h"
#include "support/gradcheck.h"
#include "support/skip.h"

using namespace moeseg;
using moeseg::testing::expect_close;
using moeseg::testing::expect_error;
using moeseg::testing::rand_input;

namespace {

constexpr testing::Tolerance kTol{1e-11, 1e-9};

SparseMoEConfig config(int64_t k, MoeTokens tokens, int64_t patch = 3) {
  SparseMoEConfig c;
  c.name = "layer4.1.conv2";
  c.num_experts = 4;
  c.k = k;
  c.tokens = tokens;
  c.patch = patch;
  return c;
}

Tensor param(const Module& m, const std::string& name) { return m.state_dict().at(name); }

// Token t of x [B, C, H, W] as [1, C, h, w] (a copy built on the host).
Tensor token_of(const Tensor& x, const SparseMoEConfig& cfg, int64_t t) {
  const int64_t c = x.size(1), hh = x.size(2), ww = x.size(3);
  const int64_t p = cfg.tokens == MoeTokens::PerImage ? 0 : cfg.patch;
  const int64_t th = p ? p : hh, tw = p ? p : ww, nw = p ? ww / p : 1, nh = p ? hh / p : 1;
  const int64_t b = t / (nh * nw), i = (t / nw) % nh, j = t % nw;
  auto xv = x.detach().to_vector<double>();
  std::vector<double> out(static_cast<size_t>(c * th * tw));
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t u = 0; u < th; ++u)
      for (int64_t v = 0; v < tw; ++v)
        out[static_cast<size_t>((ch * th + u) * tw + v)] =
            xv[static_cast<size_t>(((b * c + ch) * hh + i * th + u) * ww + j * tw + v)];
  return Tensor::from_vector<double>(out, {1, c, th, tw});
}

struct RefRouting {
  std::vector<std::vector<int64_t>> idx;   // [T][k]
  std::vector<std::vector<double>> w;      // [T][k]
};

// GAP -> linear -> softmax -> top-k -> renormalise, on the host.
RefRouting reference_routing(SparseMoE& moe, const Tensor& x) {
  const auto& cfg = moe.config();
  auto wv = param(moe, "router.linear.weight").to_vector<double>();
  auto bv = param(moe, "router.linear.bias").to_vector<double>();
  const int64_t c = x.size(1), n = cfg.num_experts;
  const int64_t per_img = cfg.tokens == MoeTokens::PerImage ? 1 : (x.size(2) / cfg.patch) * (x.size(3) / cfg.patch);
  RefRouting r;
  for (int64_t t = 0; t < x.size(0) * per_img; ++t) {
    auto tok = token_of(x, cfg, t).to_vector<double>();
    const int64_t hw = static_cast<int64_t>(tok.size()) / c;
    std::vector<double> logit(static_cast<size_t>(n));
    for (int64_t e = 0; e < n; ++e) {
      double s = bv[static_cast<size_t>(e)];
      for (int64_t ch = 0; ch < c; ++ch) {
        double g = 0;
        for (int64_t q = 0; q < hw; ++q) g += tok[static_cast<size_t>(ch * hw + q)];
        s += wv[static_cast<size_t>(e * c + ch)] * g / static_cast<double>(hw);
      }
      logit[static_cast<size_t>(e)] = s;
    }
    double mx = *std::max_element(logit.begin(), logit.end()), z = 0;
    std::vector<double> p(logit.size());
    for (size_t e = 0; e < p.size(); ++e) z += (p[e] = std::exp(logit[e] - mx));
    for (auto& v : p) v /= z;
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    order.resize(static_cast<size_t>(cfg.k));
    double sw = 0;
    for (auto e : order) sw += p[static_cast<size_t>(e)];
    std::vector<double> w;
    for (auto e : order) w.push_back(p[static_cast<size_t>(e)] / sw);
    r.idx.push_back(order);
    r.w.push_back(w);
  }
  return r;
}

// The dense loop: y_t = sum_s w[t, s] * E_idx[t,s](token t), each token alone, put back in place.
Tensor dense_reference(SparseMoE& moe, const Tensor& x, const RefRouting& r) {
  NoGradGuard ng;
  const auto& cfg = moe.config();
  const int64_t b = x.size(0), hh = x.size(2), ww = x.size(3);
  std::vector<double> out;
  int64_t co = -1;
  for (size_t t = 0; t < r.idx.size(); ++t) {
    Tensor tok = token_of(x, cfg, static_cast<int64_t>(t));
    Tensor yt;
    for (size_t s = 0; s < r.idx[t].size(); ++s) {
      Tensor ys = scale(moe.expert(r.idx[t][s]).forward(tok), r.w[t][s]);
      yt = yt.defined() ? add(yt, ys) : ys;
    }
    co = yt.size(1);
    if (out.empty()) out.assign(static_cast<size_t>(b * co * hh * ww), 0.0);
    auto yv = yt.to_vector<double>();
    const int64_t th = yt.size(2), tw = yt.size(3), nw = ww / tw, nh = hh / th;
    const int64_t bi = static_cast<int64_t>(t) / (nh * nw), i = (static_cast<int64_t>(t) / nw) % nh,
                  j = static_cast<int64_t>(t) % nw;
    for (int64_t ch = 0; ch < co; ++ch)
      for (int64_t u = 0; u < th; ++u)
        for (int64_t v = 0; v < tw; ++v)
          out[static_cast<size_t>(((bi * co + ch) * hh + i * th + u) * ww + j * tw + v)] =
              yv[static_cast<size_t>((ch * th + u) * tw + v)];
  }
  return Tensor::from_vector<double>(out, {b, co, hh, ww});
}

// The layer's gate equals the host routing (so the dense loop used the same experts).
void check_same_routing(SparseMoE& moe, const RefRouting& r) {
  auto idx = moe.last_indices().to_vector<int64_t>();
  auto w = moe.last_weights().to_vector<double>();
  const size_t k = static_cast<size_t>(moe.config().k);
  REQUIRE(idx.size() == r.idx.size() * k);
  for (size_t t = 0; t < r.idx.size(); ++t)
    for (size_t s = 0; s < k; ++s) {
      CHECK(idx[t * k + s] == r.idx[t][s]);
      CHECK(std::abs(w[t * k + s] - r.w[t][s]) < 1e-12);
    }
}

// Random running statistics so that eval-mode BatchNorm is not the identity.
void randomise_bn(Module& m, uint64_t seed) {
  Generator g(seed);
  for (auto& [name, t] : m.state_dict()) {
    if (name.find("running_mean") != std::string::npos) uniform_(t, -0.3, 0.3, g);
    if (name.find("running_var") != std::string::npos) uniform_(t, 0.5, 1.5, g);
    if (name.find("bn") != std::string::npos && name.ends_with(".weight")) uniform_(t, 0.5, 1.5, g);
  }
}

void check_against_dense(SparseMoE& moe, const Tensor& x, const std::string& what) {
  Tensor y = moe.forward(x);
  RefRouting r = reference_routing(moe, x);
  check_same_routing(moe, r);
  Tensor ref = dense_reference(moe, x, r);
  CHECK(y.sizes() == ref.sizes());
  CHECK(expect_close(y, ref, kTol, what));
  // Every expert is used at least once in these cases, so the loop covers the dispatch of each.
  for (int64_t kept : moe.routing_stats().kept) CHECK(kept > 0);
}

}  // namespace

TEST_CASE("sparse_moe: ConvMoE per image and per patch equals the dense loop, k 1 and 2, N 4") {
  for (int64_t k : {1, 2})
    for (MoeTokens tok : {MoeTokens::PerImage, MoeTokens::PerPatch}) {
      CAPTURE(k);
      CAPTURE(static_cast<int>(tok));
      Generator gen(11 + k);
      auto moe = make_conv_moe(config(k, tok), 3, 5, 3, gen);
      moe->to(DType::Float64);
      // Per image: 12 images so that every expert gets some; per patch: 3 images of 6x9 -> 18 patches.
      Tensor x = tok == MoeTokens::PerImage ? rand_input({12, 3, 5, 7}, -2, 2, 21)
                                            : rand_input({3, 3, 6, 9}, -2, 2, 22);
      // Spread the routing: a strong router weight so that GAPs of different tokens pick different experts.
      { NoGradGuard ng; mul_(param(*moe, "router.linear.weight"), 8.0); }
      check_against_dense(*moe, x, "ConvMoE k=" + std::to_string(k));
    }
}

TEST_CASE("sparse_moe: BlockMoE per image and per patch equals the dense loop in eval, k 1 and 2, N 4") {
  for (int64_t k : {1, 2})
    for (MoeTokens tok : {MoeTokens::PerImage, MoeTokens::PerPatch}) {
      CAPTURE(k);
      CAPTURE(static_cast<int>(tok));
      Generator gen(31 + k);
      auto moe = make_block_moe(config(k, tok, 2), 3, 4, gen);   // 3 -> 4 channels: with a downsample
      moe->to(DType::Float64);
      randomise_bn(*moe, 5);
      moe->eval();
      Tensor x = tok == MoeTokens::PerImage ? rand_input({12, 3, 4, 5}, -2, 2, 23)
                                            : rand_input({2, 3, 6, 6}, -2, 2, 24);
      { NoGradGuard ng; mul_(param(*moe, "router.linear.weight"), 8.0); }
      check_against_dense(*moe, x, "BlockMoE k=" + std::to_string(k));
    }
}

TEST_CASE("sparse_moe: BlockMoE in training normalises each expert over the tokens routed to it") {
  // In training BatchNorm uses the statistics of the expert's batch, i.e. of its slice: the
  // reference runs each expert once on its tokens stacked in token order and combines.
  Generator gen(41);
  auto moe = make_block_moe(config(2, MoeTokens::PerImage), 4, 4, gen);   // 4 -> 4: no downsample
  moe->to(DType::Float64);
  Tensor x = rand_input({10, 4, 3, 3}, -2, 2, 25);
  { NoGradGuard ng; mul_(param(*moe, "router.linear.weight"), 8.0); }
  Tensor y = moe->forward(x);
  RefRouting r = reference_routing(*moe, x);
  check_same_routing(*moe, r);
  NoGradGuard ng;
  std::vector<Tensor> per_token(10);
  for (int64_t e = 0; e < 4; ++e) {
    std::vector<Tensor> toks;
    std::vector<std::pair<size_t, double>> who;
    for (size_t t = 0; t < 10; ++t)
      for (size_t s = 0; s < 2; ++s)
        if (r.idx[t][s] == e) {
          toks.push_back(token_of(x, moe->config(), static_cast<int64_t>(t)));
          who.push_back({t, r.w[t][s]});
        }
    REQUIRE(!toks.empty());
    Tensor ye = moe->expert(e).forward(concat(toks, 0));
    for (size_t q = 0; q < who.size(); ++q) {
      Tensor c = scale(ye.narrow(0, static_cast<int64_t>(q), 1), who[q].second);
      per_token[who[q].first] = per_token[who[q].first].defined() ? add(per_token[who[q].first], c) : c;
    }
  }
  CHECK(expect_close(y, concat(per_token, 0), kTol, "BlockMoE training"));
}

TEST_CASE("sparse_moe: experts that get no token are not run and get no gradient") {
  Generator gen(51);
  auto moe = make_conv_moe(config(1, MoeTokens::PerPatch, 2), 2, 3, 3, gen);
  moe->to(DType::Float64);
  {
    NoGradGuard ng;   // expert 2 wins every token
    param(*moe, "router.linear.bias").copy_(Tensor::from_vector<double>({0.0, 0.0, 50.0, 0.0}, {4}));
  }
  Tensor x = rand_input({2, 2, 4, 4}, -1, 1, 26);
  sum(moe->forward(x)).backward();
  CHECK(moe->routing_stats().kept == std::vector<int64_t>{0, 0, 8, 0});
  for (int64_t e = 0; e < 4; ++e) {
    CAPTURE(e);
    for (auto& [name, p] : moe->expert(e).named_parameters()) {
      CAPTURE(name);
      Tensor grad = p.grad();
      if (e == 2) {
        REQUIRE(grad.defined());
        CHECK(sum(square(grad)).item() > 0.0);
      } else {
        CHECK((!grad.defined() || sum(square(grad)).item() == 0.0));
      }
    }
  }
}

namespace {

// Autograd's J^T v against central differences for x and every parameter of the layer (the
// parameters are perturbed in place through their handles). The noise generator is reseeded at
// each evaluation so that every evaluation draws the same noise.
void gradcheck_layer(SparseMoE& moe, const Tensor& x, bool with_losses, const std::string& what) {
  std::vector<Tensor> inputs{x};
  for (auto& [name, p] : moe.named_parameters()) inputs.push_back(p);
  auto fn = [&](const std::vector<Tensor>&) {
    moe.noise_generator().manual_seed(99);
    Tensor y = moe.forward(x).flatten();
    if (!with_losses) return y;
    const auto& l = moe.balancing_losses();
    return concat({y, l.importance.unsqueeze(0), l.load.unsqueeze(0), l.switch_loss.unsqueeze(0),
                   l.entropy.unsqueeze(0)}, 0);
  };
  auto pairs = testing::compare_gradients(fn, inputs, {1e-6, 1e-6, 1e-5, 1234});
  REQUIRE(pairs.size() == inputs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    CHECK(expect_close(pairs[i].analytic, pairs[i].numeric, {1e-6, 1e-5}, what + ": input " + std::to_string(i)));
    CHECK(sum(square(pairs[i].numeric)).item() > 0.0);   // every input (router, noise, expert) matters here
  }
}

}  // namespace

TEST_CASE("sparse_moe: float64 gradients through router, noise and experts match finite differences") {
  SUBCASE("ConvMoE per patch, k 2, GAP-linear router, learned noise, capacity, all four losses") {
    Generator gen(61);
    SparseMoEConfig c = config(2, MoeTokens::PerPatch, 2);
    c.noise = MoeNoise::ShazeerLearned;
    c.capacity_factor = 1.5;
    auto moe = make_conv_moe(c, 2, 3, 3, gen);
    moe->to(DType::Float64);
    Tensor x = rand_input({2, 2, 4, 4}, -1, 1, 27);
    gradcheck_layer(*moe, x, true, "ConvMoE");
  }
  SUBCASE("BlockMoE per image, k 1, conv 1x1 router") {
    Generator gen(62);
    SparseMoEConfig c = config(1, MoeTokens::PerImage);
    c.num_experts = 2;
    c.router = MoeRouterKind::Conv1x1Gap;
    auto moe = make_block_moe(c, 2, 2, gen);
    moe->to(DType::Float64);
    Tensor x = rand_input({6, 2, 3, 3}, -1, 1, 28);
    {
      // Two experts that both get images: a router that separates the six inputs.
      NoGradGuard ng;
      mul_(param(*moe, "router.conv.weight"), 10.0);
    }
    moe->forward(x);
    REQUIRE(moe->routing_stats().kept[0] > 1);   // BatchNorm over a batch of one would be degenerate
    REQUIRE(moe->routing_stats().kept[1] > 1);
    gradcheck_layer(*moe, x, true, "BlockMoE");   // k = 1: w = 1, the router learns through the losses
  }
}

TEST_CASE("sparse_moe: balancing losses equal the values computed by hand") {
  // T = 3, N = 4, k = 2; numbers from PyTorch (float64): probs = softmax(noisy), G = scatter of
  // the renormalised top-2, load by the port's _prob_in_top_k with torch.distributions.Normal.
  Tensor clean = Tensor::from_vector<double>({0.3, -0.2, 1.1, 0.05, -0.7, 0.4, 0.2, 0.9, 1.5, -1.0, 0.1, 0.6}, {3, 4});
  Tensor sd = Tensor::from_vector<double>({0.5, 0.8, 0.3, 1.2, 0.9, 0.4, 0.7, 0.6, 0.35, 1.1, 0.5, 0.75}, {3, 4});
  Tensor eps = Tensor::from_vector<double>({0.1, -0.3, 0.2, 0.5, 1.2, -0.4, 0.3, -0.8, -0.6, 0.9, 0.05, 0.2}, {3, 4});
  Tensor noisy = add(clean, mul(eps, sd));
  Tensor probs = softmax(noisy, 1);
  auto [vals, idx] = topk(probs, 2, 1);
  CHECK(idx.to_vector<int64_t>() == std::vector<int64_t>{2, 3, 3, 2, 0, 3});
  Tensor w = div(vals, sum(vals, {1}, true));
  Tensor imp = moe_importance(w, idx, 4);
  Tensor imp_ref = Tensor::from_vector<double>({0.6318124177361018, 0.0, 1.1223064953015542, 1.2458810869623442}, {4});
  CHECK(expect_close(imp, imp_ref, kTol, "importance"));
  CHECK(cv_squared(imp).item() == doctest::Approx(0.56946873083332).epsilon(1e-10));
  Tensor load = moe_smooth_load(clean, noisy, sd, idx, 2);
  Tensor load_ref =
      Tensor::from_vector<double>({1.3506466394503238, 0.689846878984478, 1.4891250664393951, 1.944973342135691}, {4});
  CHECK(expect_close(load, load_ref, kTol, "smooth load"));
  CHECK(cv_squared(load).item() == doctest::Approx(0.14374008817934003).epsilon(1e-10));
  Tensor hard = moe_hard_load(idx, 4, DType::Float64);
  CHECK(hard.to_vector<double>() == std::vector<double>{1, 0, 2, 3});
  CHECK(cv_squared(hard).item() == doctest::Approx(0.7407407407078189).epsilon(1e-10));
  CHECK(moe_switch_loss(probs, idx).item() == doctest::Approx(1.1143701497207728).epsilon(1e-12));
  CHECK(moe_entropy_loss(probs).item() == doctest::Approx(0.03401838801997359).epsilon(1e-10));
  // Balanced routing: switch loss 1, entropy loss 0, CV² 0.
  Tensor uniform = Tensor::full({4, 4}, 0.25, DType::Float64);
  Tensor diag = Tensor::from_vector<int64_t>({0, 1, 2, 3}, {4, 1});
  CHECK(moe_switch_loss(uniform, diag).item() == doctest::Approx(1.0).epsilon(1e-14));
  CHECK(std::abs(moe_entropy_loss(uniform).item()) < 1e-14);
  CHECK(cv_squared(moe_hard_load(diag, 4, DType::Float64)).item() == 0.0);
  // k = N: every expert always chosen, the smooth load is T for each.
  auto all = topk(noisy, 4, 1).second;
  CHECK(moe_smooth_load(clean, noisy, sd, all, 4).to_vector<double>() == std::vector<double>{3, 3, 3, 3});
}

TEST_CASE("sparse_moe: the layer reports its losses, weighted, and the smooth load only while the noise is on") {
  Generator gen(71);
  SparseMoEConfig c = config(2, MoeTokens::PerPatch, 2);
  c.noise = MoeNoise::ShazeerLearned;
  c.importance_weight = 0.1;
  c.load_weight = 0.2;
  c.switch_weight = 0.0;   // left out of aux_losses
  c.entropy_weight = 0.5;
  auto moe = make_conv_moe(c, 2, 2, 1, gen);
  moe->to(DType::Float64);
  Tensor x = rand_input({2, 2, 4, 4}, -1, 1, 29);
  moe->forward(x);
  auto aux = moe->aux_losses();
  CHECK(aux.size() == 3);
  REQUIRE(aux.count("layer4.1.conv2.importance") == 1);
  REQUIRE(aux.count("layer4.1.conv2.load") == 1);
  REQUIRE(aux.count("layer4.1.conv2.entropy") == 1);
  const auto& l = moe->balancing_losses();
  CHECK(aux["layer4.1.conv2.importance"].item() == doctest::Approx(0.1 * l.importance.item()).epsilon(1e-14));
  CHECK(aux["layer4.1.conv2.load"].item() == doctest::Approx(0.2 * l.load.item()).epsilon(1e-14));
  CHECK(aux["layer4.1.conv2.entropy"].item() == doctest::Approx(0.5 * l.entropy.item()).epsilon(1e-14));
  CHECK(l.load.requires_grad());          // the normal-CDF estimate is differentiable
  moe->eval();
  moe->forward(x);
  CHECK(!moe->balancing_losses().load.requires_grad());   // counts at eval (no noise)
  Tensor counts = moe_hard_load(moe->last_indices(), 4, DType::Float64);
  CHECK(moe->balancing_losses().load.item() == doctest::Approx(cv_squared(counts).item()).epsilon(1e-14));
}

TEST_CASE("sparse_moe: capacity drops the overflow in training and nothing at eval") {
  Generator gen(81);
  SparseMoEConfig c = config(1, MoeTokens::PerImage);
  c.capacity_factor = 1.0;   // C = ceil(1 * 8 / 4 * 1.0) = 2
  auto moe = make_conv_moe(c, 2, 2, 3, gen);
  moe->to(DType::Float64);
  {
    NoGradGuard ng;   // every image to expert 1
    param(*moe, "router.linear.bias").copy_(Tensor::from_vector<double>({0.0, 40.0, 0.0, 0.0}, {4}));
  }
  Tensor x = rand_input({8, 2, 3, 3}, -1, 1, 30);
  Tensor y = moe->forward(x);
  const auto& st = moe->routing_stats();
  CHECK(st.capacity == 2);
  CHECK(st.dropped == 6);
  CHECK(st.requested == std::vector<int64_t>{0, 8, 0, 0});
  CHECK(st.kept == std::vector<int64_t>{0, 2, 0, 0});
  NoGradGuard ng;
  Tensor e1 = moe->expert(1).forward(x);   // w = 1 (k = 1)
  CHECK(expect_close(y.narrow(0, 0, 2), e1.narrow(0, 0, 2), kTol, "kept images"));
  CHECK(sum(square(y.narrow(0, 2, 6))).item() == 0.0);   // dropped images contribute nothing
  moe->eval();
  Tensor ye = moe->forward(x);
  CHECK(moe->routing_stats().dropped == 0);
  CHECK(moe->routing_stats().capacity == -1);
  CHECK(expect_close(ye, e1, kTol, "eval: no capacity"));
}

TEST_CASE("sparse_moe: the same seeds give the same layer and noise, another noise seed other routing weights") {
  auto build = [](uint64_t noise_seed) {
    Generator gen(91);
    SparseMoEConfig c = config(2, MoeTokens::PerPatch, 2);
    c.noise = MoeNoise::ShazeerLearned;
    c.noise_seed = noise_seed;
    auto moe = make_conv_moe(c, 3, 2, 3, gen);
    moe->to(DType::Float64);
    return moe;
  };
  Tensor x = rand_input({2, 3, 4, 4}, -1, 1, 31);
  auto a = build(5), b = build(5), other = build(6);
  Tensor ya = a->forward(x), yb = b->forward(x), yo = other->forward(x);
  CHECK(ya.to_vector<double>() == yb.to_vector<double>());
  CHECK(a->last_weights().to_vector<double>() == b->last_weights().to_vector<double>());
  CHECK(a->last_weights().to_vector<double>() != other->last_weights().to_vector<double>());
  // The generator advances: a second forward draws other noise; reseeded, the first again.
  Tensor ya2 = a->forward(x);
  CHECK(ya2.to_vector<double>() != ya.to_vector<double>());
  a->noise_generator().manual_seed(5);
  CHECK(a->forward(x).to_vector<double>() == ya.to_vector<double>());
  // Eval: no noise, so both seeds route alike.
  a->eval();
  other->eval();
  CHECK(a->forward(x).to_vector<double>() == other->forward(x).to_vector<double>());
}

TEST_CASE("sparse_moe: routers (conv 1x1 then GAP, fixed random projection) and state-dict names") {
  Generator gen(101);
  SparseMoEConfig c = config(1, MoeTokens::PerImage);
  c.router = MoeRouterKind::Conv1x1Gap;
  auto conv = make_block_moe(c, 3, 3, gen);
  conv->to(DType::Float64);
  auto sd = conv->state_dict();
  CHECK(sd.count("router.conv.weight") == 1);
  CHECK(sd.count("router.conv.bias") == 1);
  CHECK(sd.count("experts.3.conv2.weight") == 1);
  CHECK(sd.count("experts.0.bn1.running_mean") == 1);
  Tensor x = rand_input({3, 3, 4, 4}, -1, 1, 32);
  // GAP(conv1x1(x)) = W GAP(x) + b.
  Tensor logits = conv->router().forward(x);
  auto wv = sd.at("router.conv.weight").to_vector<double>();
  auto bv = sd.at("router.conv.bias").to_vector<double>();
  auto xv = x.detach().to_vector<double>();
  std::vector<double> ref(12);
  for (int t = 0; t < 3; ++t)
    for (int e = 0; e < 4; ++e) {
      double s = bv[e];
      for (int ch = 0; ch < 3; ++ch) {
        double g = 0;
        for (int q = 0; q < 16; ++q) g += xv[(t * 3 + ch) * 16 + q];
        s += wv[e * 3 + ch] * g / 16;
      }
      ref[t * 4 + e] = s;
    }
  CHECK(expect_close(logits, Tensor::from_vector<double>(ref, {3, 4}), kTol, "conv1x1 router"));

  c.router = MoeRouterKind::RandomProjection;
  auto fixed = make_conv_moe(c, 3, 2, 1, gen);
  fixed->to(DType::Float64);
  CHECK(fixed->router().named_parameters().empty());                    // not trained
  CHECK(fixed->state_dict().count("router.projection") == 1);           // but saved
  Tensor proj = fixed->state_dict().at("router.projection");
  Tensor gap = mean(x, {2, 3});
  CHECK(expect_close(fixed->router().forward(x), matmul(gap, proj.transpose(0, 1)), kTol, "random projection"));
}

TEST_CASE("sparse_moe: bad input is refused naming the layer and the value") {
  Generator gen(111);
  auto make = [&](int64_t k, std::optional<double> factor) {
    SparseMoEConfig c = config(k, MoeTokens::PerImage);
    c.capacity_factor = factor;
    return make_conv_moe(c, 2, 2, 3, gen);
  };
  expect_error([&] { make(5, std::nullopt); }, {"layer4.1.conv2", "k = 5", "N = 4"});
  expect_error([&] { make(0, std::nullopt); }, {"layer4.1.conv2", "k = 0"});
  expect_error([&] { make(1, 0.0); }, {"layer4.1.conv2", "capacity factor", "got 0"});
  expect_error([&] { make(1, -1.5); }, {"layer4.1.conv2", "capacity factor", "got -1.5"});
  // Mismatched experts: a 3x3 and a 5x5 conv.
  std::vector<std::shared_ptr<Module>> experts;
  for (int64_t kk : {3, 3, 5, 3}) experts.push_back(std::make_shared<Conv2d>(2, 2, kk, 1, kk / 2, 1, 1, true, gen));
  expect_error([&] { SparseMoE(config(1, MoeTokens::PerImage), 2, experts, gen); },
               {"layer4.1.conv2", "identical parameter shapes", "expert 2", "[2, 2, 5, 5]"});
  expect_error([&] { make_conv_moe(config(1, MoeTokens::PerImage), 2, 2, 2, gen); },
               {"layer4.1.conv2", "odd kernel", "got 2"});
  // NaN scores.
  auto moe = make(1, std::nullopt);
  Tensor x = Tensor::zeros({2, 2, 3, 3});
  x.data<float>()[9 * 2 + 4] = std::numeric_limits<float>::quiet_NaN();   // image 1
  expect_error([&] { moe->forward(x); }, {"layer4.1.conv2", "router score of token 1", "nan"});
  // Wrong channels, a map the patch does not tile.
  expect_error([&] { moe->forward(Tensor::zeros({1, 3, 3, 3})); }, {"layer4.1.conv2", "[B, 2, H, W]"});
  auto patch = make_conv_moe(config(1, MoeTokens::PerPatch, 4), 2, 2, 3, gen);
  expect_error([&] { patch->forward(Tensor::zeros({1, 2, 6, 8})); }, {"layer4.1.conv2", "6x8", "patch size 4"});
}

TEST_CASE("sparse_moe: on the CUDA device the layer equals the CPU, forward, losses and gradients") {
  // The GPU when this binary has its backend, else the emulated CUDA device (core/cuda_emulation.h).
  if (!device_available(DeviceType::CUDA) && !enable_cuda_emulation()) {
    moeseg::testing::skip("no CUDA device and the emulated one could not be enabled");
    return;
  }
  const Device cuda{DeviceType::CUDA, 0};
  auto build = [] {
    Generator gen(121);
    SparseMoEConfig c = config(2, MoeTokens::PerPatch, 2);
    c.noise = MoeNoise::ShazeerLearned;
    c.capacity_factor = 1.0;
    c.importance_weight = c.load_weight = c.switch_weight = c.entropy_weight = 1.0;
    return make_conv_moe(c, 3, 4, 3, gen);
  };
  auto cpu = build(), dev = build();
  dev->to(cuda);
  Tensor xc = rand_input({2, 3, 4, 6}, -1, 1, 33).detach().to(DType::Float32);
  Tensor xd = xc.to(cuda);
  xc.set_requires_grad(true);
  xd.set_requires_grad(true);
  auto loss = [](SparseMoE& m, const Tensor& x) {
    Tensor l = sum(square(m.forward(x)));
    for (auto& [name, a] : m.aux_losses()) l = add(l, a.to(l.device()));
    return l;
  };
  Tensor lc = loss(*cpu, xc), ld = loss(*dev, xd);
  CHECK(dev->routing_stats().kept == cpu->routing_stats().kept);
  CHECK(dev->routing_stats().dropped == cpu->routing_stats().dropped);
  CHECK(ld.to(Device{}).item() == doctest::Approx(lc.item()).epsilon(1e-5));
  lc.backward();
  ld.backward();
  CHECK(expect_close(xd.grad().to(Device{}), xc.grad(), {1e-5, 1e-4}, "dx on cuda"));
  auto pc = cpu->named_parameters(), pd = dev->named_parameters();
  REQUIRE(pc.size() == pd.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    CAPTURE(pc[i].first);
    REQUIRE(pc[i].second.grad().defined() == pd[i].second.grad().defined());
    if (pc[i].second.grad().defined())
      CHECK(expect_close(pd[i].second.grad().to(Device{}), pc[i].second.grad(), {1e-5, 1e-4}, pc[i].first));
  }
}
