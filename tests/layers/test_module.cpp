// Module tree tests: PyTorch dotted names for nested Sequentials, parameter counts, a torch
// state_dict loaded and run (tests/fixtures/layers/small_net.safetensors, made by
// tools/fixtures/make_layer_fixtures.py), safetensors round trip, load_state_dict error lists,
// freezing (no gradients, BatchNorm kept in eval), train/eval recursion, initialisation.
// Run: build/tests/test_layers
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>

#include "core/autograd.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "kernels/reduce.h"
#include "layers/activation_layers.h"
#include "layers/batch_norm_layer.h"
#include "layers/conv2d_layer.h"
#include "layers/linear_layer.h"
#include "layers/sequential.h"

using namespace moeseg;

namespace {

// The network of make_layer_fixtures.py.
struct Block : Module {
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<ReLU> relu;
  explicit Block(Generator& g) : Module("Block") {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(8, 8, 3, 1, 2, 2, 1, false, g));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(8));
    relu = register_module("relu", std::make_shared<ReLU>());
  }
  Tensor forward(const Tensor& x) override { return relu->forward(bn1->forward(conv1->forward(x))); }
};

struct Net : Module {
  std::shared_ptr<Sequential> stem, layer1;
  std::shared_ptr<Conv2d> head;
  explicit Net(uint64_t seed = 0) : Module("Net") {
    Generator g(seed);
    stem = register_module("stem", make_sequential(std::make_shared<Conv2d>(3, 8, 3, 1, 0, 1, 1, false, g),
                                                   std::make_shared<BatchNorm2d>(8), std::make_shared<ReLU>()));
    layer1 = register_module("layer1", std::make_shared<Sequential>());
    layer1->push_back(std::make_shared<Block>(g)).push_back(std::make_shared<Block>(g));
    head = register_module("head", std::make_shared<Conv2d>(8, 4, 1, 1, 0, 1, 1, true, g));
  }
  Tensor forward(const Tensor& x) override { return head->forward(layer1->forward(stem->forward(x))); }
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (auto& [n, t] : v) out.push_back(n);
  return out;
}

TensorFile small_net_fixture() {
  return load_safetensors(std::string(MOESEG_FIXTURE_DIR) + "/layers/small_net.safetensors");
}

std::map<std::string, Tensor> torch_state(const TensorFile& f) {
  std::map<std::string, Tensor> sd;
  for (auto& [k, v] : f.tensors)
    if (k.rfind("sd.", 0) == 0) sd[k.substr(3)] = v;
  return sd;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

}  // namespace

TEST_CASE("dotted names follow PyTorch's state_dict for nested Sequentials") {
  Net net;
  // Lists printed by torch for the same nn.Module tree (make_layer_fixtures.py).
  const std::vector<std::string> params = {
      "stem.0.weight",         "stem.1.weight",      "stem.1.bias",           "layer1.0.conv1.weight",
      "layer1.0.bn1.weight",   "layer1.0.bn1.bias",  "layer1.1.conv1.weight", "layer1.1.bn1.weight",
      "layer1.1.bn1.bias",     "head.weight",        "head.bias"};
  CHECK(names_of(net.named_parameters()) == params);
  const std::vector<std::string> buffers = {
      "stem.1.running_mean",       "stem.1.running_var",       "stem.1.num_batches_tracked",
      "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked",
      "layer1.1.bn1.running_mean", "layer1.1.bn1.running_var", "layer1.1.bn1.num_batches_tracked"};
  CHECK(names_of(net.named_buffers()) == buffers);

  auto sd = net.state_dict();
  TensorFile f = small_net_fixture();
  auto ref = torch_state(f);
  CHECK(sd.size() == ref.size());
  for (auto& [k, v] : ref) {
    INFO(k);
    REQUIRE(sd.count(k) == 1);
    CHECK(sd.at(k).sizes() == v.sizes());
  }
  const Tensor& nbt = sd.at("stem.1.num_batches_tracked");
  CHECK(nbt.dtype() == DType::Int64);
  CHECK(nbt.dim() == 0);
  CHECK(names_of(net.named_parameters("model")).front() == "model.stem.0.weight");
  auto mods = net.named_modules();
  CHECK(mods.size() == 15);   // Net, stem + 3, layer1 + 2 blocks x (1 + 3), head (as torch's named_modules)
  CHECK(mods[0].first == "");
  CHECK(mods[6].first == "layer1.0");
  CHECK(mods[7].first == "layer1.0.conv1");
  CHECK(mods[14].first == "head");
}

TEST_CASE("parameter counts match PyTorch") {
  CHECK(Conv2d(3, 48, 5, 1, 0, 1, 1, true).num_parameters() == 3648);
  CHECK(Conv2d(3, 48, 5, 1, 0, 1, 1, false).num_parameters() == 3600);
  CHECK(Conv2d(48, 48, 3, 1, 1, 1, 4, true).num_parameters() == 48 * 12 * 9 + 48);
  CHECK(BatchNorm2d(48).num_parameters() == 96);
  CHECK(Linear(10, 7).num_parameters() == 77);
  Net net;
  CHECK(net.num_parameters() == 1452);
  net.stem->freeze();
  CHECK(net.num_parameters(true) == 1452 - 8 * 3 * 9 - 16);
}

TEST_CASE("a torch state_dict loads and the network reproduces torch's outputs") {
  TensorFile f = small_net_fixture();
  Net net(99);
  net.load_state_dict(torch_state(f));
  Tensor x = f.get("x").to(DType::Float32);
  net.eval();
  {
    NoGradGuard ng;
    CHECK(max_abs_diff(net.forward(x), f.get("out_eval")) < 1e-4);
  }
  net.train();
  {
    NoGradGuard ng;
    CHECK(max_abs_diff(net.forward(x), f.get("out_train")) < 1e-4);
  }
  for (auto& [name, b] : net.named_buffers()) {
    INFO(name);
    const Tensor& want = f.get("after_train." + name);
    if (b.dtype() == DType::Int64) CHECK(b.item() == want.item());   // 3 + 1 forward = 4
    else CHECK(max_abs_diff(b, want) < 1e-5);
  }
}

TEST_CASE("state_dict round trip through safetensors") {
  Net a(1), b(2);
  a.train();
  {
    NoGradGuard ng;
    a.forward(rand({2, 3, 8, 8}));   // moves the running statistics and the batch counters
  }
  CHECK(max_abs_diff(a.state_dict().at("head.weight"), b.state_dict().at("head.weight")) > 0);
  const std::string path = "test_module_roundtrip.safetensors";
  a.save(path);
  b.load(path);
  std::remove(path.c_str());
  auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (auto& [k, v] : sa) {
    INFO(k);
    CHECK(sb.at(k).dtype() == v.dtype());
    if (v.dtype() == DType::Int64) CHECK(sb.at(k).item() == 1);
    else CHECK(sb.at(k).to_vector<float>() == v.to_vector<float>());
  }
  // Loading writes in place: the layer's own handles see the new values.
  CHECK(b.head->weight.to_vector<float>() == sa.at("head.weight").to_vector<float>());
}

TEST_CASE("load_state_dict lists every missing, unexpected and mis-shaped name, then changes nothing") {
  Net net(3);
  auto sd = Net(4).state_dict();
  sd.erase("stem.0.weight");
  sd.erase("layer1.1.bn1.running_var");
  sd["layer1.2.conv1.weight"] = Tensor::zeros({8, 8, 3, 3});
  sd["head.weight"] = Tensor::zeros({4, 8, 3, 3});
  const auto before = net.state_dict().at("head.bias").clone().to_vector<float>();
  try {
    net.load_state_dict(sd);
    FAIL("a bad state_dict was accepted");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("missing (2)") != std::string::npos);
    CHECK(msg.find("stem.0.weight") != std::string::npos);
    CHECK(msg.find("layer1.1.bn1.running_var") != std::string::npos);
    CHECK(msg.find("unexpected (1)") != std::string::npos);
    CHECK(msg.find("layer1.2.conv1.weight") != std::string::npos);
    CHECK(msg.find("mis-shaped (1)") != std::string::npos);
    CHECK(msg.find("head.weight (expected [4, 8, 1, 1], got [4, 8, 3, 3])") != std::string::npos);
  }
  CHECK(net.state_dict().at("head.bias").to_vector<float>() == before);

  // Not strict: missing and unexpected names are fine, a shape mismatch is still an error.
  CHECK_THROWS_AS(net.load_state_dict(sd, false), Error);
  sd.erase("head.weight");
  net.load_state_dict(sd, false);
  CHECK(net.state_dict().at("head.bias").to_vector<float>() == sd.at("head.bias").to_vector<float>());
}

TEST_CASE("freeze stops gradients and keeps BatchNorm in eval mode") {
  Net net(5);
  net.layer1->freeze();
  net.train();
  CHECK(net.is_training());
  CHECK(net.stem->is_training());
  CHECK_FALSE(net.layer1->is_training());
  auto block0 = std::dynamic_pointer_cast<Block>((*net.layer1)[0]);
  REQUIRE(block0);
  CHECK_FALSE(block0->bn1->is_training());
  CHECK(net.layer1->is_frozen());

  const auto rm_before = block0->bn1->running_mean.to_vector<float>();
  Tensor loss = sum(net.forward(rand({2, 3, 10, 10})));
  loss.backward();
  for (auto& [name, p] : net.named_parameters()) {
    INFO(name);
    CHECK(p.grad().defined() == (name.rfind("layer1.", 0) != 0));
  }
  CHECK(block0->bn1->running_mean.to_vector<float>() == rm_before);
  CHECK(block0->bn1->num_batches_tracked.item() == 0);
  CHECK(net.stem->child("1")->is_training());
  CHECK(std::dynamic_pointer_cast<BatchNorm2d>(net.stem->child("1"))->num_batches_tracked.item() == 1);

  // Without the flag a frozen module follows its parent's mode (fine-tuning BN statistics only).
  net.layer1->set_keep_eval_when_frozen(false);
  net.train();
  CHECK(net.layer1->is_training());
  net.layer1->unfreeze();
  CHECK_FALSE(net.layer1->is_frozen());
  for (auto& [name, p] : net.named_parameters()) CHECK(p.requires_grad());
  net.zero_grad();
  for (auto& [name, p] : net.named_parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("train/eval recurse through the tree") {
  Net net;
  net.eval();
  for (auto& [name, m] : net.named_modules()) {
    INFO(name);
    CHECK_FALSE(m->is_training());
  }
  net.train();
  for (auto& [name, m] : net.named_modules()) CHECK(m->is_training());
  // Dropout: identity in eval, zeros about p of the elements in training.
  Dropout drop(0.5);
  Tensor x = Tensor::ones({1000});
  drop.eval();
  CHECK(drop.forward(x).to_vector<float>() == x.to_vector<float>());
  drop.train();
  auto y = drop.forward(x).to_vector<float>();
  int zeros = 0;
  for (float v : y) {
    CHECK((v == 0.f || v == 2.f));
    zeros += v == 0.f;
  }
  CHECK(zeros > 400);
  CHECK(zeros < 600);
}

TEST_CASE("registration rejects bad and duplicate names") {
  Module m("Test");
  m.register_parameter("w", Tensor::zeros({2}));
  CHECK_THROWS_AS(m.register_parameter("w", Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(m.register_buffer("w", Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(m.register_module("a.b", std::make_shared<ReLU>()), Error);
  CHECK_THROWS_AS(m.register_parameter("", Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(m.register_parameter("i", Tensor::zeros({2}, DType::Int64)), Error);
  CHECK_THROWS_AS(m.forward(Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(m.child("nothing"), Error);
}

TEST_CASE("default initialisation: PyTorch's bounds, reproducible from the generator") {
  Generator g1(42), g2(42), g3(43);
  Conv2d a(6, 16, 3, 1, 1, 1, 2, true, g1), b(6, 16, 3, 1, 1, 1, 2, true, g2), c(6, 16, 3, 1, 1, 1, 2, true, g3);
  const double bound = 1.0 / std::sqrt(3.0 * 9.0);   // fan_in = in/groups * k * k
  auto w = a.weight.to_vector<float>();
  double lo = 1, hi = -1;
  for (float v : w) lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
  CHECK(lo >= -bound);
  CHECK(hi < bound);
  CHECK(lo < -0.8 * bound);   // 432 draws fill the interval
  CHECK(hi > 0.8 * bound);
  for (float v : a.bias.to_vector<float>()) CHECK(std::abs(v) <= bound);
  CHECK(w == b.weight.to_vector<float>());
  CHECK(w != c.weight.to_vector<float>());
  BatchNorm2d bn(5);
  CHECK(bn.weight.to_vector<float>() == std::vector<float>(5, 1.f));
  CHECK(bn.bias.to_vector<float>() == std::vector<float>(5, 0.f));
  CHECK(bn.running_var.to_vector<float>() == std::vector<float>(5, 1.f));
  CHECK(bn.momentum() == 0.1);
  CHECK(bn.eps() == 1e-5);
}

TEST_CASE("to(Float64) converts every float parameter and buffer in place, keeps integer buffers") {
  TensorFile f = small_net_fixture();
  Net net(99);
  net.load_state_dict(torch_state(f));
  const auto before = net.state_dict();
  Tensor x = f.get("x").to(DType::Float32);
  net.eval();
  Tensor y32;
  {
    NoGradGuard ng;
    y32 = net.forward(x);
  }
  sum(net.forward(x)).backward();
  REQUIRE(net.stem->parameters().front().grad().defined());
  net.to(DType::Float64);
  for (auto& [name, t] : net.state_dict()) {
    INFO(name);
    const Tensor& old = before.at(name);
    if (old.dtype() == DType::Int64) {
      CHECK(t.dtype() == DType::Int64);
      CHECK(t.item() == old.item());
    } else {
      CHECK(t.dtype() == DType::Float64);
      CHECK(t.to_vector<double>() == old.to(DType::Float64).to_vector<double>());   // exact widening
    }
  }
  // The handles the layers hold see the new dtype (the forward runs in float64), gradients are
  // dropped, requires_grad stays.
  CHECK(net.head->parameters().front().dtype() == DType::Float64);
  CHECK_FALSE(net.stem->parameters().front().grad().defined());
  CHECK(net.stem->parameters().front().requires_grad());
  NoGradGuard ng;
  Tensor y64 = net.forward(x.to(DType::Float64));
  CHECK(y64.dtype() == DType::Float64);
  CHECK(max_abs_diff(y64, y32) < 1e-4);
  CHECK(max_abs_diff(y64, f.get("out_eval")) < 1e-10);   // the fixture is torch's float64 result
  net.to(DType::Float32);
  CHECK(net.head->parameters().front().dtype() == DType::Float32);
}
