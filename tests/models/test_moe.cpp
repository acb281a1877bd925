// Model-level MoE and ensemble tests against PyTorch (tests/fixtures/models/moe_*.safetensors,
// made by tools/fixtures/make_model_fixtures.py): two frozen FRRN-A experts (width 1/16, 5
// classes, input 2x3x32x48); for each gate variant (simple, simple+conv, class-wise,
// class-wise+conv, resolution-independent) the same weights and input give the same logits, gate
// weights and expert logits, and one CE loss backward gives the same gradients for the gate (and
// final conv) parameters. Also: frozen experts get no gradient and keep their BatchNorm
// statistics (and the reference quirk, when asked for, does not), parameter counts equal to
// torch's (160,899 for the FRRN simple gate at 480x640), checkpoint and flatten-size errors.
// Run: build/tests/test_models -tc="moe*"
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "kernels/cross_entropy.h"
#include "models/ensemble.h"
#include "models/frrn.h"
#include "models/moe.h"
#include "models/registry.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

namespace {

std::string fixture_path(const std::string& name) { return std::string(MOESEG_FIXTURE_DIR) + "/models/" + name; }



const TensorFile& experts_fixture() {
  static TensorFile f = load_safetensors(fixture_path("moe_experts.safetensors"));
  return f;
}

// The fixture's two experts, loaded (FRRN-A, width 1/16, 5 classes).
std::vector<std::shared_ptr<SegmentationModel>> fixture_experts() {
  std::vector<std::shared_ptr<SegmentationModel>> v;
  for (int i = 1; i <= 2; ++i) {
    FRRNConfig c;
    c.num_classes = 5;
    c.width = 0.0625;
    auto e = std::make_shared<FRRN>(c);
    e->load_state_dict(testing::tensors_with_prefix(experts_fixture(), "expert" + std::to_string(i) + "."));
    v.push_back(e);
  }
  return v;
}

std::shared_ptr<MoE> fixture_moe(const TensorFile& f, bool bn_quirk = false) {
  auto p = nlohmann::json::parse(f.metadata.at("params"));
  MoEConfig m;
  m.gate_type = parse_gate_type(p.at("gate").get<std::string>(), "fixture params: key 'gate'");
  m.with_conv = p.at("with_conv").get<bool>();
  m.input_h = p.at("input")[0].get<int64_t>();
  m.input_w = p.at("input")[1].get<int64_t>();
  m.pool_h = p.at("pool")[0].get<int64_t>();
  m.pool_w = p.at("pool")[1].get<int64_t>();
  m.experts_bn_train_mode = bn_quirk;
  auto moe = std::make_shared<MoE>(fixture_experts(), m);
  // Gate (+ conv) from the fixture, experts as already loaded: strict on the non-expert part.
  auto sd = testing::tensors_with_prefix(f, "sd.");
  for (auto& [k, v] : moe->state_dict())
    if (k.rfind("expert", 0) == 0) sd[k] = v;
  moe->load_state_dict(sd);
  return moe;
}

void check_variant(const std::string& name) {
  CAPTURE(name);
  TensorFile f = load_safetensors(fixture_path("moe_" + name + ".safetensors"));
  auto moe = fixture_moe(f);
  moe->train();   // gate training: the experts stay in eval mode (frozen)
  auto before = moe->experts()[0]->state_dict();
  std::map<std::string, std::vector<float>> stats_before;
  for (auto& [k, v] : before)
    if (k.find("running_") != std::string::npos) stats_before[k] = v.to_vector<float>();

  ModelOutput o = moe->forward_detailed(experts_fixture().get("x"));
  double err = testing::max_relative_error(o.logits, f.get("logits"));
  INFO("logits relative error " << err);
  CHECK(err <= 1e-4);
  CHECK(testing::max_relative_error(o.gate, f.get("gate")) <= 1e-4);
  REQUIRE(o.member_logits.size() == 2);
  CHECK(o.member_logits[0].shape() == o.logits.shape());

  Tensor loss = cross_entropy(o.logits, experts_fixture().get("target"), Tensor(), 255);
  loss.backward();
  int checked = 0;
  for (auto& [k, p] : moe->named_parameters()) {
    if (k.rfind("expert", 0) == 0) {
      CHECK_MESSAGE(!p.grad().defined(), k);
      CHECK_MESSAGE(!p.requires_grad(), k);
      continue;
    }
    REQUIRE_MESSAGE(p.grad().defined(), k);
    const double gerr = testing::max_relative_error(p.grad(), f.get("grad." + k));
    CHECK_MESSAGE(gerr <= 1e-4, k << " gradient relative error " << gerr);
    ++checked;
  }
  CHECK(checked == static_cast<int>(moe->trainable_parameters().size()));
  for (auto& [k, v] : stats_before)
    CHECK_MESSAGE(moe->experts()[0]->state_dict().at(k).to_vector<float>() == v, k << " changed");
}

}  // namespace

TEST_CASE("moe: simple gate = PyTorch (logits, gate, gradients)") { check_variant("simple"); }
TEST_CASE("moe: simple gate + conv = PyTorch") { check_variant("simple_conv"); }
TEST_CASE("moe: class-wise gate = PyTorch") { check_variant("classwise"); }
TEST_CASE("moe: class-wise gate + conv = PyTorch") { check_variant("classwise_conv"); }
TEST_CASE("moe: resolution-independent gate (adaptive pool) = PyTorch") { check_variant("simple_pool"); }

TEST_CASE("moe: ensembles (mean, max) = PyTorch") {
  for (const char* mode : {"mean", "max"}) {
    CAPTURE(mode);
    TensorFile f = load_safetensors(fixture_path(std::string("moe_ensemble_") + mode + ".safetensors"));
    Ensemble ens(fixture_experts(), parse_ensemble_mode(mode, "test"));
    CHECK(to_string(ens.mode()) == mode);
    ens.train();   // experts stay in eval mode
    NoGradGuard ng;
    ModelOutput o = ens.forward_detailed(experts_fixture().get("x"));
    CHECK(testing::max_relative_error(o.logits, f.get("logits")) <= 1e-4);
    CHECK(o.member_logits.size() == 2);
    CHECK(ens.num_parameters(/*trainable_only=*/true) == 0);
  }
}

TEST_CASE("moe: the reference quirk (experts' BatchNorm in train mode) is opt-in and changes the statistics") {
  TensorFile f = load_safetensors(fixture_path("moe_simple.safetensors"));
  auto moe = fixture_moe(f, /*bn_quirk=*/true);
  moe->train();
  CHECK(moe->experts()[0]->is_training());
  const std::string key = "first.bn.running_mean";
  auto before = moe->experts()[0]->state_dict().at(key).to_vector<float>();
  moe->forward_detailed(experts_fixture().get("x"));
  CHECK(moe->experts()[0]->state_dict().at(key).to_vector<float>() != before);
  // Parameters are still frozen.
  for (auto& p : moe->experts()[0]->parameters()) CHECK_FALSE(p.requires_grad());
}

TEST_CASE("moe: parameter counts equal PyTorch's (FRRN gates at 480x640)") {
  auto counts = nlohmann::json::parse(load_safetensors(fixture_path("frrn_param_counts.safetensors")).metadata.at("counts"));
  GateConfig g;   // FRRN-A taps of two experts at 480x640: 768 x 30 x 40
  CHECK(make_gate(g)->num_parameters() == 160899);
  CHECK(make_gate(g)->num_parameters() == counts.at("gate_simple_frrn_480x640_e2").get<int64_t>());
  g.type = GateType::Classwise;
  CHECK(make_gate(g)->num_parameters() == counts.at("gate_classwise_frrn_480x640_e2_c38").get<int64_t>());
  CHECK(make_gate(g)->num_parameters() == 38 * 160899);
  GateConfig p;
  p.in_channels = 3 * 384;
  p.num_experts = 3;
  p.pool_h = 30;
  p.pool_w = 40;
  CHECK(make_gate(p)->num_parameters() == counts.at("gate_simple_frrn_pool30x40_e3").get<int64_t>());

  // End to end: the MoE sizes its gate from the experts' taps and the input size.
  std::vector<std::shared_ptr<SegmentationModel>> experts;
  for (int i = 0; i < 2; ++i) {
    FRRNConfig c;
    experts.push_back(std::make_shared<FRRN>(c));
  }
  MoEConfig m;
  m.with_conv = true;
  MoE moe(experts, m);
  CHECK(moe.gating()->num_parameters() == 160899);
  CHECK(moe.final_conv()->num_parameters() == counts.at("conv3x3_c38").get<int64_t>());
  CHECK(moe.num_parameters(/*trainable_only=*/true) == 160899 + 12996);
  CHECK(moe.num_parameters() == 2 * counts.at("frrn_a_c38").get<int64_t>() + 160899 + 12996);
}

TEST_CASE("moe: state-dict names are the reference's") {
  TensorFile f = load_safetensors(fixture_path("moe_classwise_conv.safetensors"));
  auto moe = fixture_moe(f);
  auto sd = moe->state_dict();
  for (const char* n : {"expert1.first.conv.weight", "expert2.out_conv.bias", "gating.gates.0.conv1.weight",
                        "gating.gates.4.fc2.bias", "gating.gates.2.fc1.weight", "conv3x3.weight"})
    CHECK_MESSAGE(sd.count(n) == 1, n);
  CHECK(sd.count("conv3x3.bias") == 0);
  MoEConfig m;
  m.input_h = 32;
  m.input_w = 48;
  m.reference_unused_expert = true;
  FRRNConfig c;
  c.num_classes = 5;
  c.width = 0.0625;
  MoE ref(fixture_experts(), m, std::make_shared<FRRN>(c));
  auto rsd = ref.state_dict();
  CHECK(rsd.count("expert.first.conv.weight") == 1);
  CHECK(rsd.count("gating.conv1.weight") == 1);
  CHECK(rsd.count("gating.fc1.weight") == 1);
  CHECK(rsd.at("gating.fc1.weight").shape() == Shape{128, 6});   // 32x48 input: 2x3 tap
}

TEST_CASE("moe: a fixed-size gate names the expected and actual flatten size") {
  TensorFile f = load_safetensors(fixture_path("moe_simple.safetensors"));
  auto moe = fixture_moe(f);   // built for 32x48: tap 2x3 = 6 features
  moe->eval();
  NoGradGuard ng;
  Tensor x = Tensor::full({1, 3, 64, 96}, 0.5);
  CHECK_THROWS_WITH_AS(moe->forward_detailed(x), doctest::Contains("has 24 features (4x6) but fc1 expects 6 (2x3)"), Error);
  // The resolution-independent gate runs at any size.
  TensorFile fp = load_safetensors(fixture_path("moe_simple_pool.safetensors"));
  auto pooled = fixture_moe(fp);
  pooled->eval();
  CHECK(pooled->forward_detailed(x).logits.shape() == Shape{1, 5, 64, 96});
}

TEST_CASE("moe: checkpoint errors list missing and unexpected tensors") {
  TensorFile f = load_safetensors(fixture_path("moe_simple.safetensors"));
  auto moe = fixture_moe(f);
  auto sd = moe->state_dict();
  sd.erase("gating.fc2.bias");
  sd["gating.fc3.weight"] = Tensor::zeros({2});
  const std::string path = "/tmp/moeseg_test_moe_ckpt.safetensors";
  save_safetensors(path, sd);
  try {
    load_checkpoint(*moe, path);
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("gating.fc2.bias") != std::string::npos);
    CHECK(msg.find("gating.fc3.weight") != std::string::npos);
  }
  std::remove(path.c_str());
}

TEST_CASE("moe: the tap is checked at construction against every expert's taps") {
  // Taps are per-model names (FRRN frrnlayer1..N, DeepLabv3+ aspp / layer4 / low_level), kept as
  // strings and checked once, here: the message names the tap, the expert and its taps.
  MoEConfig m;
  m.input_h = 32;
  m.input_w = 48;
  m.tap = "frrnlayer9";
  std::string msg = expect_error([&] { MoE moe(fixture_experts(), m); }, {"tap 'frrnlayer9'", "expert 1", "frrnlayer4"});
  m.tap = "aspp";   // a DeepLabv3+ tap on FRRN experts
  msg = expect_error([&] { MoE moe(fixture_experts(), m); }, {"tap 'aspp'", "expert 1"});
  CHECK(contains(msg, "frrnlayer1"));
  // Every tap an FRRN-A names is accepted (and sizes the gate from its channels).
  const auto names = fixture_experts()[0]->tap_names();
  REQUIRE(names.size() >= 4);
  for (const std::string& tap : names) {
    CAPTURE(tap);
    m.tap = tap;
    MoE ok(fixture_experts(), m);
    CHECK(ok.member_taps() == std::vector<std::string>{tap});
  }
}
