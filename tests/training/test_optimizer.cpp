// Optimiser tests: SGD (momentum, dampening, Nesterov, weight decay), Adam (L2, AMSGrad) and
// AdamW against torch.optim runs (tests/fixtures/optim/, made by
// tools/fixtures/make_optim_fixtures.py), a step worked out by hand, skipping of parameters
// without gradients, and a state_dict round trip through safetensors that must continue
// bit-exactly. Run: build/tests/test_training
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "training/optimizer.h"

using namespace moeseg;

namespace {

TensorFile load_case(const std::string& name) {
  return load_safetensors(std::string(MOESEG_FIXTURE_DIR) + "/optim/" + name + ".safetensors");
}

std::unique_ptr<Optimizer> make_optimizer(const nlohmann::json& meta, NamedParameters params) {
  const auto& o = meta["options"];
  const std::string kind = meta["optimizer"];
  if (kind == "SGD") {
    SGDOptions s;
    s.lr = o["lr"];
    s.momentum = o.value("momentum", 0.0);
    s.dampening = o.value("dampening", 0.0);
    s.weight_decay = o.value("weight_decay", 0.0);
    s.nesterov = o.value("nesterov", false);
    return std::make_unique<SGD>(std::move(params), s);
  }
  AdamOptions a;
  a.lr = o["lr"];
  if (o.contains("betas")) { a.beta1 = o["betas"][0]; a.beta2 = o["betas"][1]; }
  a.eps = o.value("eps", 1e-8);
  a.weight_decay = o.value("weight_decay", kind == "AdamW" ? 0.01 : 0.0);
  a.amsgrad = o.value("amsgrad", false);
  if (kind == "AdamW") return std::make_unique<AdamW>(std::move(params), a);
  return std::make_unique<Adam>(std::move(params), a);
}

// Largest |a - b| / (atol + rtol |b|) over the elements; <= 1 passes.
double worst_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]) / (atol + rtol * std::abs(vb[i])));
  return worst;
}

void run_case(const std::string& name, DType dt) {
  TensorFile f = load_case(name);
  auto meta = nlohmann::json::parse(f.metadata.at("case"));
  const int steps = meta["steps"];
  NamedParameters params;
  for (const std::string p : meta["params"])
    params.emplace_back(p, f.get("init." + p).to(dt).clone().set_requires_grad(true));
  auto opt = make_optimizer(meta, params);
  const char* ref = dt == DType::Float64 ? "f64." : "f32.";
  // float64 agrees to rounding; float32 follows torch's operation order, so only the odd ulp
  // (from FMA contraction differences in torch's scalar tails) may differ.
  const double atol = dt == DType::Float64 ? 1e-14 : 1e-7, rtol = dt == DType::Float64 ? 1e-12 : 1e-6;
  for (int k = 0; k < steps; ++k) {
    opt->set_lr(meta["lrs"][k]);
    for (auto& [p, t] : params) t.set_grad(f.get("grad." + std::to_string(k) + "." + p).to(dt).clone());
    opt->step();
    for (auto& [p, t] : params) {
      const double r = worst_ratio(t, f.get(ref + std::to_string(k) + "." + p), atol, rtol);
      INFO(name, " ", dtype_name(dt), " step ", k, " param ", p, " worst error ratio ", r);
      CHECK(r <= 1.0);
    }
  }
}

const char* kCases[] = {"sgd_plain", "sgd_momentum", "sgd_nesterov_wd", "sgd_dampening_wd",
                        "adam",      "adam_l2_amsgrad", "adamw",         "adamw_lr_change"};

}  // namespace

TEST_CASE("optimisers match torch.optim step by step (float64 and float32)") {
  for (const char* c : kCases) {
    run_case(c, DType::Float64);
    run_case(c, DType::Float32);
  }
}

TEST_CASE("SGD with Nesterov momentum and weight decay: two steps by hand") {
  // p = 1, lr = 0.1, momentum 0.9, wd 0.5, grads 2 then -1 (float64).
  // step 1: d = 2 + 0.5*1 = 2.5; buf = 2.5; d = 2.5 + 0.9*2.5 = 4.75; p = 1 - 0.475 = 0.525
  // step 2: d = -1 + 0.5*0.525 = -0.7375; buf = 0.9*2.5 - 0.7375 = 1.5125;
  //         d = -0.7375 + 0.9*1.5125 = 0.62375; p = 0.525 - 0.062375 = 0.462625
  Tensor p = Tensor::full({1}, 1.0, DType::Float64).set_requires_grad(true);
  SGD opt({{"p", p}}, SGDOptions{0.1, 0.9, 0.0, 0.5, true});
  p.set_grad(Tensor::full({1}, 2.0, DType::Float64));
  opt.step();
  CHECK(p.item() == doctest::Approx(0.525).epsilon(1e-14));
  p.set_grad(Tensor::full({1}, -1.0, DType::Float64));
  opt.step();
  CHECK(p.item() == doctest::Approx(0.462625).epsilon(1e-14));
}

TEST_CASE("Adam: first step moves each parameter by lr against the gradient's sign") {
  // With bias correction, m_hat = g and v_hat = g^2 after one step, so the update is
  // lr * g / (|g| + eps) ~ lr * sign(g) whatever the gradient's size.
  Tensor p = Tensor::from_vector<double>({0.0, 0.0, 0.0}, {3}).set_requires_grad(true);
  Adam opt({{"p", p}}, AdamOptions{0.01, 0.9, 0.999, 1e-8, 0.0, false});
  p.set_grad(Tensor::from_vector<double>({1e-3, -5.0, 200.0}, {3}));
  opt.step();
  auto v = p.to_vector<double>();
  CHECK(v[0] == doctest::Approx(-0.01).epsilon(1e-4));
  CHECK(v[1] == doctest::Approx(0.01).epsilon(1e-6));
  CHECK(v[2] == doctest::Approx(-0.01).epsilon(1e-6));
}

TEST_CASE("AdamW decays decoupled from the gradient, Adam's L2 goes through the moments") {
  // Zero gradient: AdamW still shrinks p by (1 - lr*wd) and then takes a zero Adam step;
  // Adam with L2 sees gradient wd*p and moves by ~lr.
  Tensor a = Tensor::full({1}, 2.0, DType::Float64).set_requires_grad(true);
  Tensor b = Tensor::full({1}, 2.0, DType::Float64).set_requires_grad(true);
  AdamW w({{"a", a}}, AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.5, false});
  Adam l2({{"b", b}}, AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.5, false});
  a.set_grad(Tensor::zeros({1}, DType::Float64));
  b.set_grad(Tensor::zeros({1}, DType::Float64));
  w.step();
  l2.step();
  CHECK(a.item() == doctest::Approx(2.0 * (1 - 0.1 * 0.5)).epsilon(1e-14));
  CHECK(b.item() == doctest::Approx(2.0 - 0.1).epsilon(1e-6));
}

TEST_CASE("parameters without a gradient are skipped and keep no state") {
  Tensor p = Tensor::full({2}, 1.0).set_requires_grad(true);
  Tensor q = Tensor::full({2}, 1.0).set_requires_grad(true);
  Adam opt({{"p", p}, {"q", q}}, AdamOptions{});
  p.set_grad(Tensor::full({2}, 1.0));
  opt.step();
  CHECK(q.to_vector<float>() == std::vector<float>{1.f, 1.f});
  auto st = opt.state_dict();
  CHECK(st.count("state.p.step") == 1);
  CHECK(st.at("state.p.step").item() == 1);
  CHECK(st.count("state.q.step") == 0);
  CHECK(st.count("state.q.exp_avg") == 0);
}

TEST_CASE("state_dict round trip through safetensors continues bit-exactly") {
  for (const char* c : kCases) {
    TensorFile f = load_case(c);
    auto meta = nlohmann::json::parse(f.metadata.at("case"));
    const int steps = meta["steps"], split = steps / 2;
    auto fresh_params = [&] {
      NamedParameters ps;
      for (const std::string p : meta["params"]) ps.emplace_back(p, f.get("init." + p).to(DType::Float32).clone().set_requires_grad(true));
      return ps;
    };
    auto feed = [&](NamedParameters& ps, Optimizer& o, int k) {
      o.set_lr(meta["lrs"][k]);
      for (auto& [p, t] : ps) t.set_grad(f.get("grad." + std::to_string(k) + "." + p).to(DType::Float32).clone());
      o.step();
    };
    NamedParameters a = fresh_params();
    auto oa = make_optimizer(meta, a);
    for (int k = 0; k < split; ++k) feed(a, *oa, k);

    const std::string path = "test_optimizer_state_" + std::string(c) + ".safetensors";
    save_safetensors(path, oa->state_dict());
    // The resumed run: parameters copied from run a at the split, a new optimiser built with
    // different hyper-parameters on purpose (lr 0, momentum 0): load must restore them all.
    NamedParameters b = fresh_params();
    for (size_t i = 0; i < b.size(); ++i) b[i].second.copy_(a[i].second);
    nlohmann::json other = meta;
    other["options"]["lr"] = 0.0;
    if (other["optimizer"] == "SGD" && !other["options"].value("nesterov", false)) other["options"]["momentum"] = 0.0;
    auto ob = make_optimizer(other, b);
    ob->load_state_dict(load_safetensors(path).tensors);
    std::remove(path.c_str());

    for (int k = split; k < steps; ++k) {
      feed(a, *oa, k);
      feed(b, *ob, k);
    }
    for (size_t i = 0; i < a.size(); ++i) {
      INFO(c, " param ", a[i].first);
      CHECK(a[i].second.to_vector<float>() == b[i].second.to_vector<float>());
    }
  }
}

TEST_CASE("optimiser errors name the problem") {
  Tensor p = Tensor::zeros({2, 3}).set_requires_grad(true);
  SGD opt({{"w", p}}, SGDOptions{0.1, 0.9});
  p.set_grad(Tensor::ones({2, 3}));
  opt.step();
  auto st = opt.state_dict();
  st["state.w.momentum_buffer"] = Tensor::zeros({3, 2});
  st["state.nope.momentum_buffer"] = Tensor::zeros({1});
  try {
    opt.load_state_dict(st);
    FAIL("load_state_dict accepted a bad state");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("state.w.momentum_buffer") != std::string::npos);
    CHECK(msg.find("[3, 2]") != std::string::npos);
    CHECK(msg.find("nope") != std::string::npos);
  }
  CHECK_THROWS_AS(SGD({{"w", p}}, SGDOptions{0.1, 0.0, 0.0, 0.0, true}), Error);   // Nesterov without momentum
  p.set_grad(Tensor::ones({3, 2}));
  CHECK_THROWS_AS(opt.step(), Error);   // gradient of the wrong shape
}
