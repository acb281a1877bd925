// Tests of the sparse-MoE dispatch ops (kernels/moe_dispatch.h): routing plans built by hand
// (ties, an expert nobody picked, k = 2, capacity drops), the permute / un-permute round trip,
// the grouped linear and the whole dispatch against dense per-token loops, float64
// finite-difference gradients, PyTorch fixtures (tools/fixtures/cases_moe.py) and bad input.
// Run: ./build/tests/test_ops -tc='moe_*'
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "kernels/moe_dispatch.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using namespace moeseg::testing;

MOESEG_OP_TEST("moe_permute", "grad");
MOESEG_OP_TEST("moe_permute", "torch");
MOESEG_OP_TEST("moe_unpermute_combine", "grad");
MOESEG_OP_TEST("moe_unpermute_combine", "torch");
MOESEG_OP_TEST("moe_grouped_linear", "grad");
MOESEG_OP_TEST("moe_grouped_linear", "torch");

namespace {

Tensor indices(const std::vector<int64_t>& v, int64_t k) {
  return Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size()) / k, k});
}

// y[t] = sum_s w[t, s] * (W[idx[t, s]] x[t] + b[idx[t, s]]) over the pairs the plan kept: the
// dense per-token loop the whole dispatch must equal.
Tensor dense_reference(const Tensor& x, const Tensor& idx, const Tensor& w, const Tensor& W, const Tensor& b,
                       const MoeRoutingPlan& plan) {
  const int64_t T = x.size(0), k = idx.size(1), D = x.size(1), Do = W.size(1);
  std::vector<double> y(T * Do, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < k; ++s) {
      if (plan.position[t * k + s] < 0) continue;
      const int64_t e = static_cast<int64_t>(idx.at({t, s}));
      for (int64_t o = 0; o < Do; ++o) {
        double acc = b.defined() ? b.at({e, o}) : 0.0;
        for (int64_t j = 0; j < D; ++j) acc += W.at({e, o, j}) * x.at({t, j});
        y[t * Do + o] += w.at({t, s}) * acc;
      }
    }
  return Tensor::from_vector<double>(y, {T, Do});
}

// A routing with ties and one expert that no token picked; k = 2, N = 5 (expert 3 empty).
const std::vector<int64_t> kIdx = {1, 0,   // token 0
                                   1, 2,   // token 1
                                   0, 1,   // token 2
                                   4, 1,   // token 3
                                   2, 0};  // token 4

}  // namespace

TEST_CASE("moe_routing_plan: counts, offsets and a stable counting sort (ties in token order)") {
  MoeRoutingPlan p = moe_routing_plan(indices(kIdx, 2), 5);
  CHECK(p.tokens == 5);
  CHECK(p.k == 2);
  CHECK(p.requested == std::vector<int64_t>{3, 4, 2, 0, 1});
  CHECK(p.counts == std::vector<int64_t>{3, 4, 2, 0, 1});
  CHECK(p.offsets == std::vector<int64_t>{0, 3, 7, 9, 9, 10});
  // pair p = t*2 + s; expert 0 gets pairs 1, 4, 9; expert 1: 0, 2, 5, 7; expert 2: 3, 8; expert 4: 6.
  CHECK(p.order == std::vector<int64_t>{1, 4, 9, 0, 2, 5, 7, 3, 8, 6});
  CHECK(p.position == std::vector<int64_t>{3, 0, 4, 7, 1, 5, 9, 6, 8, 2});
  CHECK(p.dropped == 0);
  CHECK(p.kept() == 10);
}

TEST_CASE("moe_routing_plan: capacity drops the later tokens of a full expert") {
  MoeRoutingPlan p = moe_routing_plan(indices(kIdx, 2), 5, 2);
  CHECK(p.requested == std::vector<int64_t>{3, 4, 2, 0, 1});
  CHECK(p.counts == std::vector<int64_t>{2, 2, 2, 0, 1});
  CHECK(p.offsets == std::vector<int64_t>{0, 2, 4, 6, 6, 7});
  // expert 0 keeps pairs 1, 4 (drops 9); expert 1 keeps 0, 2 (drops 5, 7).
  CHECK(p.order == std::vector<int64_t>{1, 4, 0, 2, 3, 8, 6});
  CHECK(p.position == std::vector<int64_t>{2, 0, 3, 4, 1, -1, 6, -1, 5, -1});
  CHECK(p.dropped == 3);
  CHECK(p.capacity == 2);
  CHECK(contains(p.str(), "dropped=3"));
  // A capacity nobody reaches changes nothing.
  MoeRoutingPlan q = moe_routing_plan(indices(kIdx, 2), 5, 4);
  CHECK(q.dropped == 0);
  CHECK(q.order == moe_routing_plan(indices(kIdx, 2), 5).order);
}

TEST_CASE("moe_permute: gathers rows in expert order, k = 1 and k = 2") {
  Tensor x = Tensor::from_vector<double>({0, 10, 1, 11, 2, 12, 3, 13, 4, 14}, {5, 2});
  MoeRoutingPlan p = moe_routing_plan(indices(kIdx, 2), 5);
  std::vector<double> xp = moe_permute(x, p).to_vector<double>();
  std::vector<double> expected;
  for (int64_t pair : p.order) expected.insert(expected.end(), {double(pair / 2), double(pair / 2 + 10)});
  CHECK(xp == expected);
  CHECK(xp[0] == 0.0);   // expert 0's first pair is token 0 slot 1
  CHECK(xp[4] == 4.0);   // then token 2, then token 4
  MoeRoutingPlan p1 = moe_routing_plan(indices({2, 0, 2, 1, 0}, 1), 3);
  CHECK(moe_permute(x, p1).select(1, 0).to_vector<double>() == std::vector<double>{1, 4, 3, 0, 2});
}

TEST_CASE("moe_permute and moe_unpermute_combine: the round trip gives back x times the kept weight") {
  Tensor x = rand_input({5, 7}, -1, 1, 3).detach();
  std::vector<double> wv = {0.25, 0.75, 0.5, 0.5, 0.1, 0.9, 0.6, 0.4, 1.0, 0.0};
  Tensor w = Tensor::from_vector<double>(wv, {5, 2});
  for (std::optional<int64_t> cap : {std::optional<int64_t>{}, std::optional<int64_t>{2}}) {
    MoeRoutingPlan p = moe_routing_plan(indices(kIdx, 2), 5, cap);
    Tensor y = moe_unpermute_combine(moe_permute(x, p), p, w);
    std::vector<double> expected(35);
    for (int64_t t = 0; t < 5; ++t) {
      double kept = 0;
      for (int64_t s = 0; s < 2; ++s)
        if (p.position[t * 2 + s] >= 0) kept += wv[t * 2 + s];
      for (int64_t j = 0; j < 7; ++j) expected[t * 7 + j] = kept * x.at({t, j});
    }
    INFO("capacity " << (cap ? *cap : -1));
    expect_close(y, Tensor::from_vector<double>(expected, {5, 7}), kTolF64, "round trip");
  }
  // With the capacity, token 2 lost slot 1 (weight 0.9) and token 3 slot 1 (0.4): y = 0.1 x, 0.6 x.
  MoeRoutingPlan pc = moe_routing_plan(indices(kIdx, 2), 5, 2);
  Tensor yc = moe_unpermute_combine(moe_permute(x, pc), pc, w);
  CHECK(yc.at({2, 3}) == doctest::Approx(0.1 * x.at({2, 3})));
  CHECK(yc.at({3, 0}) == doctest::Approx(0.6 * x.at({3, 0})));
}

TEST_CASE("moe_grouped_linear: the whole dispatch equals the dense per-token loop") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (std::optional<int64_t> cap : {std::optional<int64_t>{}, std::optional<int64_t>{2}}) {
      for (bool with_bias : {true, false}) {
        INFO(dtype_name(dt) << " capacity " << (cap ? *cap : -1) << " bias " << with_bias);
        Tensor x = rand_input({5, 6}, -1, 1, 11).detach(), W = rand_input({5, 3, 6}, -1, 1, 12).detach();
        Tensor b = with_bias ? rand_input({5, 3}, -1, 1, 13).detach() : Tensor();
        Tensor w = rand_input({5, 2}, 0, 1, 14).detach();
        MoeRoutingPlan p = moe_routing_plan(indices(kIdx, 2), 5, cap);
        Tensor y = moe_unpermute_combine(
            moe_grouped_linear(moe_permute(x.to(dt), p), p, W.to(dt), with_bias ? b.to(dt) : Tensor()), p, w.to(dt));
        CHECK(y.dtype() == dt);
        expect_close(y.to(DType::Float64), dense_reference(x, indices(kIdx, 2), w, W, b, p),
                     dt == DType::Float64 ? kTolF64 : Tolerance{1e-5, 1e-4}, "dispatch vs dense loop");
      }
    }
  }
}

TEST_CASE("moe_grouped_linear: large enough for the threaded paths, same as the dense loop") {
  const int64_t T = 300, k = 2, N = 7, D = 40, Do = 33;
  std::vector<int64_t> iv(T * k);
  for (int64_t t = 0; t < T; ++t) {
    iv[t * k] = (t * 5 + t / 3) % N;
    iv[t * k + 1] = (iv[t * k] + 1 + t % 3) % N;
  }
  Tensor idx = indices(iv, k);
  Tensor x = rand_input({T, D}, -1, 1, 21).detach(), W = rand_input({N, Do, D}, -1, 1, 22).detach();
  Tensor b = rand_input({N, Do}, -1, 1, 23).detach(), w = rand_input({T, k}, 0, 1, 24).detach();
  MoeRoutingPlan p = moe_routing_plan(idx, N, 70);
  CHECK(p.dropped > 0);
  Tensor y = moe_unpermute_combine(moe_grouped_linear(moe_permute(x, p), p, W, b), p, w);
  expect_close(y, dense_reference(x, idx, w, W, b, p), kTolF64, "threaded dispatch vs dense loop");
}

TEST_CASE("moe_grouped_linear: an expert without tokens is not run and gets zero gradient") {
  // Expert 3 got no token: NaN weights there must not reach the output (it is never multiplied).
  Tensor x = rand_input({5, 4}, -1, 1, 31).detach();
  std::vector<double> Wv = rand_input({5, 3, 4}, -1, 1, 32).detach().to_vector<double>();
  for (int i = 0; i < 12; ++i) Wv[3 * 12 + i] = std::numeric_limits<double>::quiet_NaN();
  Tensor W = Tensor::from_vector<double>(Wv, {5, 3, 4}).set_requires_grad(true);
  Tensor b = rand_input({5, 3}, -1, 1, 33);
  MoeRoutingPlan p = moe_routing_plan(indices(kIdx, 2), 5);
  Tensor xp = moe_permute(x, p);
  Tensor yp = moe_grouped_linear(xp, p, W, b);
  for (double v : yp.to_vector<double>()) CHECK(std::isfinite(v));
  auto g = autograd::grad(yp, {W, b}, Tensor::ones(yp.sizes(), DType::Float64));
  std::vector<double> gW = g[0].to_vector<double>(), gb = g[1].to_vector<double>();
  for (int i = 0; i < 12; ++i) CHECK(gW[3 * 12 + i] == 0.0);
  for (int o = 0; o < 3; ++o) CHECK(gb[3 * 3 + o] == 0.0);
  // Expert 4 got one token (token 3): its bias gradient is that one row of ones.
  for (int o = 0; o < 3; ++o) CHECK(gb[4 * 3 + o] == 1.0);
  CHECK(gb[1 * 3] == 4.0);   // expert 1: four rows
}

TEST_CASE("moe_dispatch: gradients") {
  for (std::optional<int64_t> cap : {std::optional<int64_t>{}, std::optional<int64_t>{2}}) {
    INFO("capacity " << (cap ? *cap : -1));
    MoeRoutingPlan p = moe_routing_plan(indices(kIdx, 2), 5, cap);
    CHECK(check_gradients("moe_permute", [&](const std::vector<Tensor>& v) { return moe_permute(v[0], p); },
                          {rand_input({5, 3}, -1, 1, 41)}));
    CHECK(check_gradients("moe_unpermute_combine",
                          [&](const std::vector<Tensor>& v) { return moe_unpermute_combine(v[0], p, v[1]); },
                          {rand_input({p.kept(), 4}, -1, 1, 42), rand_input({5, 2}, 0, 1, 43)}));
    CHECK(check_gradients("moe_grouped_linear",
                          [&](const std::vector<Tensor>& v) { return moe_grouped_linear(v[0], p, v[1], v[2]); },
                          {rand_input({p.kept(), 4}, -1, 1, 44), rand_input({5, 3, 4}, -1, 1, 45),
                           rand_input({5, 3}, -1, 1, 46)}));
    CHECK(check_gradients("moe_grouped_linear",
                          [&](const std::vector<Tensor>& v) { return moe_grouped_linear(v[0], p, v[1]); },
                          {rand_input({p.kept(), 4}, -1, 1, 47), rand_input({5, 2, 4}, -1, 1, 48)}));
    // The whole chain, through x, the router weights, W and b.
    CHECK(check_gradients(
        "moe_unpermute_combine",
        [&](const std::vector<Tensor>& v) {
          return moe_unpermute_combine(moe_grouped_linear(moe_permute(v[0], p), p, v[2], v[3]), p, v[1]);
        },
        {rand_input({5, 4}, -1, 1, 51), rand_input({5, 2}, 0, 1, 52), rand_input({5, 3, 4}, -1, 1, 53),
         rand_input({5, 3}, -1, 1, 54)}));
  }
}

namespace {

MoeRoutingPlan fixture_plan(std::map<std::string, Tensor>& in, const Fixture& f) {
  std::optional<int64_t> cap;
  if (!f.params["capacity"].is_null()) cap = f.params["capacity"].get<int64_t>();
  MoeRoutingPlan p = moe_routing_plan(in.at("idx"), f.params["num_experts"].get<int64_t>(), cap);
  // torch's plan (stable argsort, rank < capacity) must be ours.
  CHECK_MESSAGE(p.order == f.tensor("out.order").to_vector<int64_t>(), f.name, ": sorted order differs from torch");
  CHECK_MESSAGE(p.counts == f.tensor("out.counts").to_vector<int64_t>(), f.name, ": counts differ from torch");
  return p;
}

}  // namespace

TEST_CASE("moe_dispatch: matches PyTorch") {
  for (const char* name : {"moe_permute_t7_k2_n4_empty", "moe_permute_t9_k1_n3_cap2"}) {
    INFO("case " << name);
    run_fixture("moe_permute", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return moe_permute(in.at("x"), fixture_plan(in, f));
    });
  }
  for (const char* name : {"moe_unpermute_combine_t7_k2_n4", "moe_unpermute_combine_t10_k2_n3_cap5"}) {
    INFO("case " << name);
    run_fixture("moe_unpermute_combine", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return moe_unpermute_combine(in.at("yp"), fixture_plan(in, f), in.at("w"));
    });
  }
  for (const char* name : {"moe_grouped_linear_t8_k2_n5_bias", "moe_grouped_linear_t6_k1_n3_nobias"}) {
    INFO("case " << name);
    run_fixture("moe_grouped_linear", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      Tensor b = in.count("bias") ? in.at("bias") : Tensor();
      return moe_grouped_linear(in.at("xp"), fixture_plan(in, f), in.at("weight"), b);
    });
  }
  run_fixture("moe_grouped_linear", "moe_dispatch_layer_t11_k2_n5_cap3",
              [](std::map<std::string, Tensor>& in, const Fixture& f) {
                MoeRoutingPlan p = fixture_plan(in, f);
                CHECK(p.dropped == 7);
                return moe_unpermute_combine(
                    moe_grouped_linear(moe_permute(in.at("x"), p), p, in.at("weight"), in.at("bias")), p, in.at("w"));
              });
}

TEST_CASE("moe_dispatch: bad input names the op and the value") {
  Tensor idx = indices(kIdx, 2);
  expect_error([&] { moe_routing_plan(idx, 1); }, {"moe_routing_plan", "k = 2 > N = 1"});
  expect_error([&] { moe_routing_plan(indices({0, 5, 1, 2}, 2), 5); },
               {"moe_routing_plan", "expert index 5 at token 0 slot 1", "[0, 5)"});
  expect_error([&] { moe_routing_plan(indices({0, -1}, 1), 3); }, {"expert index -1", "token 1"});
  expect_error([&] { moe_routing_plan(idx, 5, 0); }, {"moe_routing_plan", "capacity must be > 0, got 0"});
  expect_error([&] { moe_routing_plan(idx, 5, -3); }, "got -3");
  expect_error([&] { moe_routing_plan(Tensor::zeros({5, 2}), 5); }, {"moe_routing_plan", "int64"});
  expect_error([&] { moe_routing_plan(Tensor::zeros({10}, DType::Int64), 5); }, "[T, k]");
  expect_error([&] { moe_routing_plan(idx, 0); }, "got 0");

  MoeRoutingPlan p = moe_routing_plan(idx, 5, 2);   // 7 kept pairs of 10
  expect_error([&] { moe_permute(Tensor::zeros({4, 3}), p); }, {"moe_permute", "4 tokens", "T=5"});
  expect_error([&] { moe_permute(Tensor::zeros({5, 3}, DType::Int64), p); }, {"moe_permute", "float32 or float64"});
  expect_error([&] { moe_unpermute_combine(Tensor::zeros({10, 3}), p, Tensor::zeros({5, 2})); },
               {"moe_unpermute_combine", "one row per kept pair (7"});
  expect_error([&] { moe_unpermute_combine(Tensor::zeros({7, 3}), p, Tensor::zeros({5, 3})); },
               {"moe_unpermute_combine", "must be [5, 2]"});
  expect_error([&] { moe_unpermute_combine(Tensor::zeros({7, 3}), p, Tensor::zeros({5, 2}, DType::Float64)); },
               "moe_unpermute_combine");
  expect_error([&] { moe_grouped_linear(Tensor::zeros({7, 4}), p, Tensor::zeros({4, 3, 4})); },
               {"moe_grouped_linear", "N = 5"});
  expect_error([&] { moe_grouped_linear(Tensor::zeros({7, 4}), p, Tensor::zeros({5, 3, 6})); },
               {"moe_grouped_linear", "D = 4"});
  expect_error([&] { moe_grouped_linear(Tensor::zeros({6, 4}), p, Tensor::zeros({5, 3, 4})); },
               {"moe_grouped_linear", "one row per kept pair (7"});
  expect_error([&] { moe_grouped_linear(Tensor::zeros({7, 4}), p, Tensor::zeros({5, 3, 4}), Tensor::zeros({5, 4})); },
               {"moe_grouped_linear", "bias", "[5, 3]"});
  MoeRoutingPlan broken = p;
  broken.offsets.pop_back();
  expect_error([&] { moe_permute(Tensor::zeros({5, 3}), broken); }, {"moe_permute", "malformed"});
}
