// The gate options of SparseMoE (layers/sparse_moe.h, layers/moe_gate.h, layers/moe_router.h;
// issue 12): the 3x3-conv and two-conv + BN routers against host loops, their parameter names and
// float64 gradient checks; the std-normalised noise (values, eval, gradients, weights and losses
// from the clean scores); the straight-through estimator; overflow re-assignment on hand-made
// batches with the expected assignment stated; the hard constraint; determinism under a seed; the
// JSON names of the enums and every bad input named; the host-side gate work on the CUDA device.
// Run: build/tests/test_layers -tc='sparse_moe gate*'
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <set>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_emulation.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "kernels/softmax.h"
#include "layers/moe_balancing.h"
#include "layers/moe_gate.h"
#include "layers/sparse_moe.h"
#include "support/gradcheck.h"
#include "support/skip.h"

using namespace moeseg;
using moeseg::testing::expect_close;
using moeseg::testing::expect_error;
using moeseg::testing::rand_input;

namespace {

constexpr testing::Tolerance kTol{1e-11, 1e-9};
const std::string kLayer = "layer4.1.conv2";

SparseMoEConfig config(int64_t n, int64_t k, MoeTokens tokens = MoeTokens::PerImage, int64_t patch = 2) {
  SparseMoEConfig c;
  c.name = kLayer;
  c.num_experts = n;
  c.k = k;
  c.tokens = tokens;
  c.patch = patch;
  return c;
}

Tensor param(const Module& m, const std::string& name) { return m.state_dict().at(name); }

std::set<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::set<std::string> out;
  for (auto& [name, t] : named) out.insert(name + t.str());
  return out;
}

// Host conv 3x3 (padding 1) or 1x1 of x [T, C, H, W] with weight [O, C, K, K] and bias [O] (or empty).
std::vector<double> host_conv(const std::vector<double>& x, int64_t t, int64_t c, int64_t h, int64_t w,
                              const std::vector<double>& wt, int64_t o, int64_t kk, const std::vector<double>& bias) {
  const int64_t pad = kk / 2;
  std::vector<double> y(static_cast<size_t>(t * o * h * w), 0.0);
  for (int64_t n = 0; n < t; ++n)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          double s = bias.empty() ? 0.0 : bias[static_cast<size_t>(oc)];
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t u = 0; u < kk; ++u)
              for (int64_t v = 0; v < kk; ++v) {
                const int64_t ii = i + u - pad, jj = j + v - pad;
                if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
                s += wt[static_cast<size_t>(((oc * c + ic) * kk + u) * kk + v)] *
                     x[static_cast<size_t>(((n * c + ic) * h + ii) * w + jj)];
              }
          y[static_cast<size_t>(((n * o + oc) * h + i) * w + j)] = s;
        }
  return y;
}

// Mean over H, W of y [T, O, H, W] -> [T, O].
Tensor host_gap(const std::vector<double>& y, int64_t t, int64_t o, int64_t hw) {
  std::vector<double> out(static_cast<size_t>(t * o), 0.0);
  for (int64_t n = 0; n < t * o; ++n) {
    for (int64_t q = 0; q < hw; ++q) out[static_cast<size_t>(n)] += y[static_cast<size_t>(n * hw + q)];
    out[static_cast<size_t>(n)] /= static_cast<double>(hw);
  }
  return Tensor::from_vector<double>(out, {t, o});
}

// Images whose channel c is the constant logits[t][c]: with a GAP-linear router of weight I and
// bias 0 the router logits are exactly `logits`.
Tensor constant_images(const std::vector<std::vector<double>>& logits, int64_t hw = 2) {
  const int64_t t = static_cast<int64_t>(logits.size()), c = static_cast<int64_t>(logits[0].size());
  std::vector<double> v;
  for (auto& row : logits)
    for (double l : row) v.insert(v.end(), static_cast<size_t>(hw * hw), l);
  return Tensor::from_vector<double>(v, {t, c, hw, hw});
}

void set_identity_router(SparseMoE& moe) {
  NoGradGuard ng;
  const int64_t n = moe.num_experts();
  std::vector<double> eye(static_cast<size_t>(n * n), 0.0);
  for (int64_t e = 0; e < n; ++e) eye[static_cast<size_t>(e * n + e)] = 1.0;
  param(moe, "router.linear.weight").copy_(Tensor::from_vector<double>(eye, {n, n}));
  param(moe, "router.linear.bias").copy_(Tensor::zeros({n}, DType::Float64));
}

// A ConvMoE (1x1 experts, C -> 2) routed by GAP-linear = identity, in float64.
std::shared_ptr<SparseMoE> identity_routed_moe(SparseMoEConfig c, uint64_t seed = 7) {
  Generator gen(seed);
  auto moe = make_conv_moe(c, c.num_experts, 2, 1, gen);
  moe->to(DType::Float64);
  set_identity_router(*moe);
  return moe;
}

// y[t] = Σ over kept slots of w · E_idx(x_t), computed token by token (NoGrad).
Tensor expected_output(SparseMoE& moe, const Tensor& x, const std::vector<std::vector<int64_t>>& idx,
                       const std::vector<std::vector<double>>& w) {
  NoGradGuard ng;
  std::vector<Tensor> rows;
  for (size_t t = 0; t < idx.size(); ++t) {
    Tensor tok = x.detach().narrow(0, static_cast<int64_t>(t), 1);
    Tensor y = scale(moe.expert(0).forward(tok), 0.0);
    for (size_t s = 0; s < idx[t].size(); ++s)
      if (w[t][s] != 0.0) y = add(y, scale(moe.expert(idx[t][s]).forward(tok), w[t][s]));
    rows.push_back(y);
  }
  return concat(rows, 0);
}

std::vector<double> softmax_row(const std::vector<double>& l) {
  double mx = l[0], z = 0;
  for (double v : l) mx = std::max(mx, v);
  std::vector<double> p;
  for (double v : l) p.push_back(std::exp(v - mx)), z += p.back();
  for (double& v : p) v /= z;
  return p;
}

// Autograd's J^T v against central differences for x and every parameter of the layer; the noise
// generator is reseeded at each evaluation so that every evaluation draws the same noise.
void gradcheck_layer(SparseMoE& moe, const Tensor& x, const std::string& what) {
  std::vector<Tensor> inputs{x};
  for (auto& [name, p] : moe.named_parameters()) inputs.push_back(p);
  auto fn = [&](const std::vector<Tensor>&) {
    moe.noise_generator().manual_seed(99);
    Tensor y = moe.forward(x).flatten();
    const auto& l = moe.balancing_losses();
    return concat({y, l.importance.unsqueeze(0), l.load.unsqueeze(0), l.switch_loss.unsqueeze(0),
                   l.entropy.unsqueeze(0)}, 0);
  };
  auto pairs = testing::compare_gradients(fn, inputs, {1e-6, 1e-6, 1e-5, 1234});
  REQUIRE(pairs.size() == inputs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    CHECK(expect_close(pairs[i].analytic, pairs[i].numeric, {1e-6, 1e-5}, what + ": input " + std::to_string(i)));
    CHECK(sum(square(pairs[i].numeric)).item() > 0.0);   // every input (router, experts) matters here
  }
}

}  // namespace

TEST_CASE("sparse_moe gate options: the JSON names of the enums round-trip and unknown names list the known ones") {
  CHECK(std::string(moe_router_kind_name(MoeRouterKind::Conv3x3Gap)) == "conv3x3_gap");
  CHECK(std::string(moe_router_kind_name(MoeRouterKind::TwoConvBnGap)) == "two_conv_bn_gap");
  for (auto kind : {MoeRouterKind::GapLinear, MoeRouterKind::Conv1x1Gap, MoeRouterKind::RandomProjection,
                    MoeRouterKind::Conv3x3Gap, MoeRouterKind::TwoConvBnGap})
    CHECK(moe_router_kind_from_name(moe_router_kind_name(kind)) == kind);
  CHECK(std::string(moe_noise_name(MoeNoise::StdNormalized)) == "std_normalized");
  for (auto noise : {MoeNoise::None, MoeNoise::ShazeerLearned, MoeNoise::StdNormalized})
    CHECK(moe_noise_from_name(moe_noise_name(noise)) == noise);
  CHECK(moe_overflow_from_name("drop") == MoeOverflow::Drop);
  CHECK(moe_overflow_from_name("reassign") == MoeOverflow::Reassign);
  CHECK(moe_tokens_from_name("per_patch") == MoeTokens::PerPatch);
  CHECK(moe_tokens_from_name(moe_tokens_name(MoeTokens::PerImage)) == MoeTokens::PerImage);
  expect_error([] { moe_router_kind_from_name("conv5x5_gap", kLayer); },
               {kLayer, "'conv5x5_gap'", "gap_linear", "conv1x1_gap", "random_projection", "conv3x3_gap",
                "two_conv_bn_gap"});
  expect_error([] { moe_noise_from_name("gaussian", kLayer); },
               {kLayer, "'gaussian'", "none", "shazeer_learned", "std_normalized"});
  expect_error([] { moe_overflow_from_name("spill", kLayer); }, {kLayer, "'spill'", "drop", "reassign"});
  expect_error([] { moe_tokens_from_name("per_pixel", kLayer); }, {kLayer, "'per_pixel'", "per_image", "per_patch"});
  expect_error([] { moe_router_kind_from_name("GapLinear"); }, {"router kind", "'GapLinear'"});   // names are exact
}

TEST_CASE("sparse_moe gate options: the 3x3-conv router, its names, shape and logits against a host loop") {
  Generator gen(201);
  SparseMoEConfig c = config(4, 1, MoeTokens::PerPatch, 2);
  c.router = MoeRouterKind::Conv3x3Gap;
  auto moe = make_conv_moe(c, 3, 2, 1, gen);
  moe->to(DType::Float64);
  CHECK(names_of(moe->router().named_parameters()) ==
        std::set<std::string>{"conv.weight" + Tensor::empty({4, 3, 3, 3}, DType::Float64).str(),
                              "conv.bias" + Tensor::empty({4}, DType::Float64).str()});
  CHECK(moe->state_dict().count("router.conv.weight") == 1);
  Tensor x = rand_input({3, 3, 5, 4}, -1, 1, 41);   // odd sizes
  Tensor logits = moe->router().forward(x);
  CHECK(logits.sizes() == Shape{3, 4});
  auto ref = host_conv(x.detach().to_vector<double>(), 3, 3, 5, 4,
                       param(*moe, "router.conv.weight").to_vector<double>(), 4, 3,
                       param(*moe, "router.conv.bias").to_vector<double>());
  CHECK(expect_close(logits, host_gap(ref, 3, 4, 20), kTol, "conv3x3 router"));
  // In the layer, per patch: [2, 3, 4, 6] -> 12 patches of 2x2, the output keeps the map.
  Tensor y = moe->forward(rand_input({2, 3, 4, 6}, -1, 1, 42));
  CHECK(y.sizes() == Shape{2, 2, 4, 6});
  CHECK(moe->last_indices().sizes() == Shape{12, 1});
}

TEST_CASE("sparse_moe gate options: the two-conv BN router, its names, shape and logits in eval and training") {
  Generator gen(211);
  SparseMoEConfig c = config(3, 2);
  c.router = MoeRouterKind::TwoConvBnGap;
  auto moe = make_conv_moe(c, 2, 2, 3, gen);
  moe->to(DType::Float64);
  auto dt = [](const Shape& s) { return Tensor::empty(s, DType::Float64).str(); };
  CHECK(names_of(moe->router().named_parameters()) ==
        std::set<std::string>{"conv1.weight" + dt({8, 2, 3, 3}), "bn1.weight" + dt({8}), "bn1.bias" + dt({8}),
                              "conv2.weight" + dt({3, 8, 1, 1}), "conv2.bias" + dt({3})});
  auto sd = moe->state_dict();
  CHECK(sd.count("router.bn1.running_mean") == 1);
  CHECK(sd.count("router.bn1.running_var") == 1);
  CHECK(sd.count("router.conv1.bias") == 0);
  {
    NoGradGuard ng;   // BatchNorm that is not the identity
    Generator g(5);
    uniform_(param(*moe, "router.bn1.running_mean"), -0.3, 0.3, g);
    uniform_(param(*moe, "router.bn1.running_var"), 0.5, 1.5, g);
    uniform_(param(*moe, "router.bn1.weight"), 0.5, 1.5, g);
    uniform_(param(*moe, "router.bn1.bias"), -0.5, 0.5, g);
  }
  const int64_t t = 4, h = 3, w = 5, hw = h * w;
  Tensor x = rand_input({t, 2, h, w}, -1, 1, 43);
  auto reference = [&](bool training) {
    auto y1 = host_conv(x.detach().to_vector<double>(), t, 2, h, w,
                        param(*moe, "router.conv1.weight").to_vector<double>(), 8, 3, {});
    auto g = param(*moe, "router.bn1.weight").to_vector<double>();
    auto b = param(*moe, "router.bn1.bias").to_vector<double>();
    auto rm = param(*moe, "router.bn1.running_mean").to_vector<double>();
    auto rv = param(*moe, "router.bn1.running_var").to_vector<double>();
    for (int64_t ch = 0; ch < 8; ++ch) {
      double m = rm[static_cast<size_t>(ch)], v = rv[static_cast<size_t>(ch)];
      if (training) {   // batch statistics over the tokens and pixels (biased variance)
        m = v = 0;
        for (int64_t n = 0; n < t; ++n)
          for (int64_t q = 0; q < hw; ++q) m += y1[static_cast<size_t>((n * 8 + ch) * hw + q)];
        m /= static_cast<double>(t * hw);
        for (int64_t n = 0; n < t; ++n)
          for (int64_t q = 0; q < hw; ++q) v += std::pow(y1[static_cast<size_t>((n * 8 + ch) * hw + q)] - m, 2);
        v /= static_cast<double>(t * hw);
      }
      for (int64_t n = 0; n < t; ++n)
        for (int64_t q = 0; q < hw; ++q) {
          double& e = y1[static_cast<size_t>((n * 8 + ch) * hw + q)];
          e = std::max(0.0, (e - m) / std::sqrt(v + 1e-5) * g[static_cast<size_t>(ch)] + b[static_cast<size_t>(ch)]);
        }
    }
    auto y2 = host_conv(y1, t, 8, h, w, param(*moe, "router.conv2.weight").to_vector<double>(), 3, 1,
                        param(*moe, "router.conv2.bias").to_vector<double>());
    return host_gap(y2, t, 3, hw);
  };
  moe->eval();
  Tensor eval_logits = moe->router().forward(x);
  CHECK(eval_logits.sizes() == Shape{4, 3});
  CHECK(expect_close(eval_logits, reference(false), kTol, "two-conv router, eval"));
  moe->train();
  Tensor ref_train = reference(true);   // before the forward updates the running statistics
  CHECK(expect_close(moe->router().forward(x), ref_train, kTol, "two-conv router, training"));
  CHECK(moe->forward(x).sizes() == Shape{4, 2, 3, 5});
}

TEST_CASE("sparse_moe gate options: float64 gradients through the 3x3-conv and two-conv routers") {
  SUBCASE("ConvMoE per patch, k 2, 3x3-conv router, all four losses") {
    Generator gen(221);
    SparseMoEConfig c = config(3, 2, MoeTokens::PerPatch, 2);
    c.router = MoeRouterKind::Conv3x3Gap;
    auto moe = make_conv_moe(c, 2, 3, 3, gen);
    moe->to(DType::Float64);
    gradcheck_layer(*moe, rand_input({2, 2, 4, 4}, -1, 1, 44), "conv3x3 router");
  }
  SUBCASE("ConvMoE per image, k 2, two-conv BN router (batch statistics), all four losses") {
    Generator gen(222);
    SparseMoEConfig c = config(3, 2);
    c.router = MoeRouterKind::TwoConvBnGap;
    auto moe = make_conv_moe(c, 2, 2, 3, gen);
    moe->to(DType::Float64);
    Tensor x = rand_input({6, 2, 3, 3}, -1, 1, 45);
    { NoGradGuard ng; mul_(param(*moe, "router.conv2.weight"), 4.0); }   // spread the routing
    moe->forward(x);
    for (int64_t kept : moe->routing_stats().kept) REQUIRE(kept > 0);   // every expert gets a gradient
    gradcheck_layer(*moe, x, "two-conv router");
  }
}

TEST_CASE("sparse_moe gate options: std-normalised noise, values, eval, gradients, clean weights and losses") {
  Generator gen(231);
  SparseMoEConfig c = config(4, 2);
  c.noise = MoeNoise::StdNormalized;
  c.noise_std = 0.5;
  auto moe = make_conv_moe(c, 3, 2, 3, gen);
  moe->to(DType::Float64);
  { NoGradGuard ng; mul_(param(*moe, "router.linear.weight"), 4.0); }
  Tensor x = rand_input({12, 3, 3, 4}, -1, 1, 46);

  SUBCASE("noisy = logits / (population std + 1e-6) + noise_std * eps, and no normalisation at eval") {
    Generator g(17), again(17);
    MoeRouterOutput r = moe->router().route(x, &g);
    CHECK(!r.noise_std.defined());
    auto l = r.logits.detach().to_vector<double>();
    auto eps = randn({12, 4}, DType::Float64, again).to_vector<double>();
    std::vector<double> ref(l.size());
    for (int64_t t = 0; t < 12; ++t) {
      double m = 0, v = 0;
      for (int64_t e = 0; e < 4; ++e) m += l[static_cast<size_t>(t * 4 + e)] / 4;
      for (int64_t e = 0; e < 4; ++e) v += std::pow(l[static_cast<size_t>(t * 4 + e)] - m, 2) / 4;
      for (int64_t e = 0; e < 4; ++e)
        ref[static_cast<size_t>(t * 4 + e)] =
            l[static_cast<size_t>(t * 4 + e)] / (std::sqrt(v) + 1e-6) + 0.5 * eps[static_cast<size_t>(t * 4 + e)];
    }
    CHECK(expect_close(r.noisy, Tensor::from_vector<double>(ref, {12, 4}), kTol, "std-normalised noise"));
    moe->eval();
    MoeRouterOutput re = moe->router().route(x, &g);
    CHECK(re.noisy.to_vector<double>() == re.logits.to_vector<double>());
  }
  SUBCASE("float64 gradients of the noisy scores in the tokens and the router parameters") {
    Tensor xs = rand_input({5, 3, 2, 2}, -1, 1, 47);
    std::vector<Tensor> inputs{xs};
    for (auto& [name, p] : moe->router().named_parameters()) inputs.push_back(p);
    auto fn = [&](const std::vector<Tensor>&) {
      Generator g(23);
      return moe->router().route(xs, &g).noisy.flatten();
    };
    auto pairs = testing::compare_gradients(fn, inputs, {1e-6, 1e-6, 1e-5, 4321});
    REQUIRE(pairs.size() == 3);
    for (auto& p : pairs) {
      CHECK(expect_close(p.analytic, p.numeric, {1e-7, 1e-6}, "d noisy"));
      CHECK(sum(square(p.numeric)).item() > 0.0);
    }
  }
  SUBCASE("the noisy scores choose, the clean softmax gives the weights and the balancing losses") {
    moe->noise_generator().manual_seed(3);
    moe->forward(x);
    moe->noise_generator().manual_seed(3);   // the same draw again: the router is the first to draw
    MoeRouterOutput r = moe->router().route(x, &moe->noise_generator());
    Tensor clean = softmax(r.logits, 1), noisy = softmax(r.noisy, 1);
    auto idx = moe->last_indices().to_vector<int64_t>();
    CHECK(idx == topk(noisy, 2, 1).second.to_vector<int64_t>());
    // The noise matters here: some token's experts differ from the clean top 2.
    CHECK(idx != topk(clean, 2, 1).second.to_vector<int64_t>());
    auto p = clean.to_vector<double>();
    auto w = moe->last_weights().to_vector<double>();
    for (size_t t = 0; t < 12; ++t) {
      const double a = p[t * 4 + static_cast<size_t>(idx[t * 2])], b = p[t * 4 + static_cast<size_t>(idx[t * 2 + 1])];
      CHECK(std::abs(w[t * 2] - a / (a + b)) < 1e-13);
      CHECK(std::abs(w[t * 2 + 1] - b / (a + b)) < 1e-13);
    }
    const auto& l = moe->balancing_losses();
    CHECK(l.entropy.item() == doctest::Approx(moe_entropy_loss(clean).item()).epsilon(1e-12));
    CHECK(std::abs(l.entropy.item() - moe_entropy_loss(noisy).item()) > 1e-6);
    CHECK(l.switch_loss.item() == doctest::Approx(moe_switch_loss(clean, moe->last_indices()).item()).epsilon(1e-12));
    CHECK(!l.load.requires_grad());   // no learned σ: the load is the counts
  }
  SUBCASE("float64 gradients through the layer with the noise on, capacity and re-assignment") {
    SparseMoEConfig cs = config(3, 2, MoeTokens::PerPatch, 2);
    cs.noise = MoeNoise::StdNormalized;
    cs.capacity_factor = 1.0;
    cs.overflow = MoeOverflow::Reassign;
    Generator g2(232);
    auto small = make_conv_moe(cs, 2, 3, 3, g2);
    small->to(DType::Float64);
    gradcheck_layer(*small, rand_input({2, 2, 4, 4}, -1, 1, 48), "std-normalised noise");
  }
}

TEST_CASE("sparse_moe gate options: straight-through weights are exactly 1 and the router gradient is that of p") {
  auto build = [](bool ste) {
    Generator gen(241);
    SparseMoEConfig c = config(3, 1);
    c.straight_through = ste;
    auto moe = make_conv_moe(c, 2, 2, 3, gen);
    moe->to(DType::Float64);
    { NoGradGuard ng; mul_(param(*moe, "router.linear.weight"), 6.0); }
    return moe;
  };
  Tensor x = rand_input({6, 2, 3, 3}, -1, 1, 49);
  Tensor g = rand_input({6, 2, 3, 3}, -1, 1, 50).detach();
  auto ste = build(true), ref = build(false), plain = build(false);
  Tensor y = ste->forward(x);
  for (double w : ste->last_weights().to_vector<double>()) CHECK(w == 1.0);
  auto idx = ste->last_indices().to_vector<int64_t>();
  CHECK(std::set<int64_t>(idx.begin(), idx.end()).size() > 1);   // more than one expert in use
  std::vector<std::vector<int64_t>> idx2;
  for (auto e : idx) idx2.push_back({e});
  CHECK(expect_close(y, expected_output(*ste, x, idx2, std::vector<std::vector<double>>(6, {1.0})), kTol,
                     "unweighted expert outputs"));
  sum(mul(y, g)).backward();
  // Reference: d/dθ Σ_t a_t · p_t(θ) with a_t = <g_t, E_idx(x_t)> held fixed, p = softmax(router).
  Tensor a;
  {
    NoGradGuard ng;
    a = sum(mul(expected_output(*ref, x, idx2, std::vector<std::vector<double>>(6, {1.0})), g), {1, 2, 3});
  }
  Tensor p = moe_gather_scores(softmax(ref->router().forward(x), 1), ste->last_indices());   // [6, 1]
  sum(mul(p.flatten(), a)).backward();
  for (const char* name : {"linear.weight", "linear.bias"}) {
    CAPTURE(name);
    Tensor gs, gr;
    for (auto& [n, t] : ste->router().named_parameters()) if (n == name) gs = t.grad();
    for (auto& [n, t] : ref->router().named_parameters()) if (n == name) gr = t.grad();
    REQUIRE(gs.defined());
    REQUIRE(gr.defined());
    CHECK(sum(square(gr)).item() > 1e-6);
    CHECK(expect_close(gs, gr, kTol, std::string("router gradient ") + name));
  }
  // Without the estimator the k = 1 weight p / p is constant: the router gets (almost) nothing.
  sum(mul(plain->forward(x), g)).backward();
  for (auto& [n, t] : plain->router().named_parameters())
    CHECK((!t.grad().defined() || sum(square(t.grad())).item() < 1e-20));
}

TEST_CASE("sparse_moe gate options: re-assignment of 6 tokens preferring expert 0, N 3, k 1, capacity 2") {
  // Logits per token (router = identity): tokens 0-4 rank the experts 0 > 1 > 2, token 5 ranks 0 > 2 > 1.
  // C = ceil(1 * 6 / 3 * 1.0) = 2. Expert 0 keeps tokens 0 and 1 (token order); 2, 3, 4, 5 overflow.
  // Round 1 (room: e1 2, e2 2): 2, 3, 4 propose e1, 5 proposes e2; accepted in token order: 2 and 3
  // to e1, 4 refused (e1 full), 5 to e2. Round 2 (room: e2 1): 4 proposes e2, accepted.
  // Final assignment [0, 0, 1, 1, 2, 2], nothing dropped; with one round 4 is dropped; with 0 = Drop.
  const std::vector<std::vector<double>> logits{{3, 2, 1}, {3, 2, 1}, {3, 2, 1}, {3, 2, 1}, {3, 2, 1}, {3, 1, 2}};
  Tensor x = constant_images(logits);
  auto run = [&](MoeOverflow overflow, int64_t rounds) {
    SparseMoEConfig c = config(3, 1);
    c.capacity_factor = 1.0;
    c.overflow = overflow;
    c.reassign_rounds = rounds;
    auto moe = identity_routed_moe(c);
    Tensor y = moe->forward(x);
    return std::make_pair(moe, y);
  };
  auto [moe, y] = run(MoeOverflow::Reassign, 25);
  const auto& st = moe->routing_stats();
  CHECK(moe->last_indices().to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1, 1, 2, 2});
  CHECK(st.capacity == 2);
  CHECK(st.reassigned == 4);
  CHECK(st.reassign_rounds == 2);
  CHECK(st.dropped == 0);
  CHECK(st.kept == std::vector<int64_t>{2, 2, 2});
  for (double w : moe->last_weights().to_vector<double>()) CHECK(w == 1.0);   // k = 1: renormalised
  const std::vector<std::vector<double>> ones(6, {1.0});
  CHECK(expect_close(y, expected_output(*moe, x, {{0}, {0}, {1}, {1}, {2}, {2}}, ones), kTol, "re-assigned outputs"));

  auto [one, y1] = run(MoeOverflow::Reassign, 1);
  CHECK(one->last_indices().to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1, 1, 0, 2});
  CHECK(one->routing_stats().dropped == 1);
  CHECK(one->routing_stats().reassign_rounds == 1);
  CHECK(one->routing_stats().kept == std::vector<int64_t>{2, 2, 1});
  CHECK(sum(square(y1.narrow(0, 4, 1))).item() == 0.0);   // token 4 dropped

  auto [zero, y0] = run(MoeOverflow::Reassign, 0);
  auto [drop, yd] = run(MoeOverflow::Drop, 25);
  CHECK(zero->last_indices().to_vector<int64_t>() == std::vector<int64_t>(6, 0));
  CHECK(zero->last_indices().to_vector<int64_t>() == drop->last_indices().to_vector<int64_t>());
  CHECK(zero->routing_stats().kept == std::vector<int64_t>{2, 0, 0});
  CHECK(zero->routing_stats().dropped == 4);
  CHECK(drop->routing_stats().dropped == 4);
  CHECK(y0.to_vector<double>() == yd.to_vector<double>());

  moe->eval();   // eval: plain top-k, no capacity, nothing re-assigned
  moe->forward(x);
  CHECK(moe->last_indices().to_vector<int64_t>() == std::vector<int64_t>(6, 0));
  CHECK(moe->routing_stats().reassigned == 0);
}

TEST_CASE("sparse_moe gate options: re-assignment with k 2 never repeats an expert of the token and renormalises") {
  // 4 tokens all ranking 0 > 1 > 2, k = 2, C = ceil(2 * 4 / 3) = 3. Token 3's slots overflow at
  // experts 0 and 1; both propose expert 2 (the only one not already theirs with room); slot 0 is
  // accepted, slot 1 then refused (the token already uses 2) and has nothing left: dropped.
  // Token 3 ends with experts [2, 1], weights p2, p1 renormalised, slot 1 dropped.
  Tensor x = constant_images({{3, 2, 1}, {3, 2, 1}, {3, 2, 1}, {3, 2, 1}});
  SparseMoEConfig c = config(3, 2);
  c.capacity_factor = 1.0;
  c.overflow = MoeOverflow::Reassign;
  auto moe = identity_routed_moe(c);
  Tensor y = moe->forward(x);
  CHECK(moe->last_indices().to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0, 1, 0, 1, 2, 1});
  CHECK(moe->routing_stats().reassigned == 1);
  CHECK(moe->routing_stats().dropped == 1);
  CHECK(moe->routing_stats().kept == std::vector<int64_t>{3, 3, 1});
  auto p = softmax_row({3, 2, 1});
  auto w = moe->last_weights().to_vector<double>();
  CHECK(std::abs(w[6] - p[2] / (p[1] + p[2])) < 1e-14);
  CHECK(std::abs(w[7] - p[1] / (p[1] + p[2])) < 1e-14);
  CHECK(std::abs(w[0] - p[0] / (p[0] + p[1])) < 1e-14);
  const double a = p[0] / (p[0] + p[1]), b = p[1] / (p[0] + p[1]);
  Tensor ref = expected_output(*moe, x, {{0, 1}, {0, 1}, {0, 1}, {2, 1}}, {{a, b}, {a, b}, {a, b}, {w[6], 0.0}});
  CHECK(expect_close(y, ref, kTol, "k = 2 re-assigned outputs"));
}

TEST_CASE("sparse_moe gate options: the hard constraint masks the dominant expert in training, at least k remain") {
  SUBCASE("N 4, k 2, tau 0.4: expert 0 holds 47.5 % of the batch and is masked") {
    // Router probs per token (logits = log p): expert 0's share (0.7 + 0.6 + 0.5 + 0.1) / 4 = 0.475.
    const std::vector<std::vector<double>> probs{
        {0.70, 0.15, 0.10, 0.05}, {0.60, 0.05, 0.25, 0.10}, {0.50, 0.30, 0.05, 0.15}, {0.10, 0.20, 0.30, 0.40}};
    std::vector<std::vector<double>> logits;
    for (auto& row : probs) {
      logits.push_back({});
      for (double q : row) logits.back().push_back(std::log(q));
    }
    Tensor x = constant_images(logits);
    SparseMoEConfig c = config(4, 2);
    c.hard_constraint_share = 0.4;
    auto moe = identity_routed_moe(c);
    moe->forward(x);
    CHECK(moe->routing_stats().masked == 1);
    CHECK(moe->routing_stats().masked_experts == std::vector<int64_t>{0});
    CHECK(moe->last_indices().to_vector<int64_t>() == std::vector<int64_t>{1, 2, 2, 3, 1, 3, 3, 2});
    auto w = moe->last_weights().to_vector<double>();
    CHECK(std::abs(w[0] - 0.6) < 1e-12);   // 0.15 / (0.15 + 0.10)
    CHECK(std::abs(w[1] - 0.4) < 1e-12);
    CHECK(std::abs(w[6] - 4.0 / 7.0) < 1e-12);   // 0.40 / (0.40 + 0.30)
    moe->eval();   // no constraint at eval
    moe->forward(x);
    CHECK(moe->routing_stats().masked == 0);
    CHECK(moe->last_indices().to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0, 2, 0, 1, 3, 2});
  }
  SUBCASE("N 3, k 2, tau 0.34: shares 0.5, 0.4, 0.1 would mask two, the less used one is unmasked") {
    const std::vector<double> row{std::log(0.5), std::log(0.4), std::log(0.1)};
    Tensor x = constant_images({row, row, row, row});
    SparseMoEConfig c = config(3, 2);
    c.hard_constraint_share = 0.34;
    auto moe = identity_routed_moe(c);
    moe->forward(x);
    CHECK(moe->routing_stats().masked == 1);
    CHECK(moe->routing_stats().masked_experts == std::vector<int64_t>{0});
    CHECK(moe->last_indices().to_vector<int64_t>() == std::vector<int64_t>{1, 2, 1, 2, 1, 2, 1, 2});
    CHECK(std::abs(moe->last_weights().to_vector<double>()[0] - 0.8) < 1e-12);
    // With a capacity (C = ceil(2 * 4 / 3) = 3) token 3's pairs at experts 1 and 2 overflow; the
    // only expert not already its own is the masked 0, so nothing takes them: dropped, not re-assigned.
    SparseMoEConfig cc = c;
    cc.capacity_factor = 1.0;
    cc.overflow = MoeOverflow::Reassign;
    auto capped = identity_routed_moe(cc);
    capped->forward(x);
    CHECK(capped->last_indices().to_vector<int64_t>() == std::vector<int64_t>{1, 2, 1, 2, 1, 2, 1, 2});
    CHECK(capped->routing_stats().reassigned == 0);
    CHECK(capped->routing_stats().dropped == 2);
    CHECK(capped->routing_stats().kept == std::vector<int64_t>{0, 3, 3});
  }
  SUBCASE("the mask itself: k experts always remain, the least used masked ones are freed first") {
    CHECK(moe_hard_constraint_mask({0.5, 0.4, 0.1}, 1, 0.34) == std::vector<bool>{true, true, false});
    CHECK(moe_hard_constraint_mask({0.5, 0.4, 0.1}, 2, 0.34) == std::vector<bool>{true, false, false});
    CHECK(moe_hard_constraint_mask({0.5, 0.4, 0.1}, 3, 0.34) == std::vector<bool>{false, false, false});
    CHECK(moe_hard_constraint_mask({2.0, 2.0, 2.0, 2.0}, 1, 0.26) == std::vector<bool>(4, false));   // share 0.25 each
    CHECK(moe_hard_constraint_mask({1.0, 0.0, 0.0}, 1, 1.0) == std::vector<bool>(3, false));   // share 1 is not > 1
  }
}

TEST_CASE("sparse_moe gate options: same seeds, same routing with std-normalised noise, re-assignment, mask") {
  auto build = [](uint64_t noise_seed) {
    Generator gen(251);
    SparseMoEConfig c = config(4, 2, MoeTokens::PerPatch, 2);
    c.noise = MoeNoise::StdNormalized;
    c.noise_std = 2.0;
    c.capacity_factor = 1.0;
    c.overflow = MoeOverflow::Reassign;
    c.hard_constraint_share = 0.3;
    c.noise_seed = noise_seed;
    auto moe = make_conv_moe(c, 3, 2, 3, gen);
    moe->to(DType::Float64);
    return moe;
  };
  Tensor x = rand_input({2, 3, 4, 6}, -1, 1, 51);
  auto a = build(5), b = build(5), other = build(6);
  Tensor ya = a->forward(x), yb = b->forward(x);
  other->forward(x);
  CHECK(ya.to_vector<double>() == yb.to_vector<double>());
  CHECK(a->last_indices().to_vector<int64_t>() == b->last_indices().to_vector<int64_t>());
  CHECK(a->routing_stats().kept == b->routing_stats().kept);
  CHECK(a->routing_stats().reassigned == b->routing_stats().reassigned);
  CHECK(a->last_indices().to_vector<int64_t>() != other->last_indices().to_vector<int64_t>());
  a->noise_generator().manual_seed(5);
  CHECK(a->forward(x).to_vector<double>() == ya.to_vector<double>());
}

TEST_CASE("sparse_moe gate options: bad gate options are refused naming the layer and the value") {
  Generator gen(261);
  auto make = [&](auto&& edit) {
    SparseMoEConfig c = config(4, 1);
    edit(c);
    return make_conv_moe(c, 2, 2, 3, gen);
  };
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  expect_error([&] { make([](SparseMoEConfig& c) { c.noise_std = 0.0; }); }, {kLayer, "noise_std", "got 0"});
  expect_error([&] { make([](SparseMoEConfig& c) { c.noise_std = -0.5; }); }, {kLayer, "noise_std", "got -0.5"});
  expect_error([&] { make([&](SparseMoEConfig& c) { c.noise_std = nan; }); }, {kLayer, "noise_std", "got nan"});
  expect_error([&] { make([&](SparseMoEConfig& c) { c.noise_std = inf; }); }, {kLayer, "noise_std", "got inf"});
  expect_error([&] { make([](SparseMoEConfig& c) { c.reassign_rounds = -1; }); },
               {kLayer, "reassign_rounds", "got -1"});
  expect_error([&] { make([](SparseMoEConfig& c) { c.hard_constraint_share = 0.25; }); },
               {kLayer, "hard_constraint_share", "(0.25, 1]", "N = 4", "got 0.25"});
  expect_error([&] { make([](SparseMoEConfig& c) { c.hard_constraint_share = 1.5; }); },
               {kLayer, "hard_constraint_share", "got 1.5"});
  expect_error([&] { make([&](SparseMoEConfig& c) { c.hard_constraint_share = nan; }); },
               {kLayer, "hard_constraint_share", "got nan"});
  expect_error([&] { make([](SparseMoEConfig& c) { c.k = 2, c.straight_through = true; }); },
               {kLayer, "straight-through", "k = 2"});
  // The edges of the ranges are accepted.
  CHECK(make([](SparseMoEConfig& c) { c.hard_constraint_share = 1.0; }) != nullptr);
  CHECK(make([](SparseMoEConfig& c) { c.hard_constraint_share = 0.2500001; }) != nullptr);
  CHECK(make([](SparseMoEConfig& c) { c.reassign_rounds = 0, c.straight_through = true; }) != nullptr);
  // Names from a config file.
  expect_error([] { moe_router_kind_from_name("two_conv_gap", kLayer); },
               {kLayer, "'two_conv_gap'", "two_conv_bn_gap"});
  expect_error([] { moe_noise_from_name("std", kLayer); }, {kLayer, "'std'", "std_normalized"});
  expect_error([] { moe_overflow_from_name("", kLayer); }, {kLayer, "''", "drop, reassign"});
}

TEST_CASE("sparse_moe gate options: on the CUDA device re-assignment, hard constraint and noise equal the CPU") {
  // The host-side integer work copies idx and scores off the device explicitly; on the emulated
  // device (core/cuda_emulation.h) a host read of device memory would fail instead.
  if (!device_available(DeviceType::CUDA) && !enable_cuda_emulation()) {
    moeseg::testing::skip("no CUDA device and the emulated one could not be enabled");
    return;
  }
  const Device cuda{DeviceType::CUDA, 0};
  auto build = [] {
    Generator gen(271);
    SparseMoEConfig c = config(4, 1, MoeTokens::PerPatch, 2);
    c.noise = MoeNoise::StdNormalized;
    c.noise_std = 1.0;
    c.capacity_factor = 1.5;
    c.overflow = MoeOverflow::Reassign;
    c.hard_constraint_share = 0.3;
    c.entropy_weight = c.switch_weight = 1.0;
    return make_conv_moe(c, 3, 2, 3, gen);
  };
  auto cpu = build(), dev = build();
  dev->to(cuda);
  Tensor xc = rand_input({2, 3, 4, 6}, -1, 1, 52).detach().to(DType::Float32);
  Tensor yc = cpu->forward(xc), yd = dev->forward(xc.to(cuda));
  // The case exercises both: some pairs are re-assigned and an expert is masked.
  CHECK(cpu->routing_stats().reassigned > 0);
  CHECK(cpu->routing_stats().masked > 0);
  CHECK(dev->last_indices().device() == cuda);
  CHECK(dev->last_indices().to_vector<int64_t>() == cpu->last_indices().to_vector<int64_t>());
  CHECK(dev->routing_stats().kept == cpu->routing_stats().kept);
  CHECK(dev->routing_stats().reassigned == cpu->routing_stats().reassigned);
  CHECK(dev->routing_stats().masked_experts == cpu->routing_stats().masked_experts);
  CHECK(expect_close(yd.to(Device{}), yc, {1e-5, 1e-4}, "output on cuda"));
  CHECK(expect_close(dev->last_weights().to(Device{}), cpu->last_weights(), {1e-6, 1e-5}, "weights on cuda"));
}
