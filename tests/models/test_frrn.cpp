// FRRN-A/B tests: logits against PyTorch (tests/fixtures/models/frrn_a_w0125.safetensors, made by
// tools/fixtures/make_model_fixtures.py: FRRN-A at width 1/8, 5 classes, input 2x3x64x96, eval
// mode), the reference's state-dict names, parameter counts equal to torch's (full-width A and
// B, 38 classes), taps, table B and input sizes the reference cannot run.
// Run: build/tests/test_models -tc="frrn*"
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "models/frrn.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

namespace {

std::string fixture_path(const std::string& name) { return std::string(MOESEG_FIXTURE_DIR) + "/models/" + name; }



nlohmann::json torch_counts() {
  TensorFile f = load_safetensors(fixture_path("frrn_param_counts.safetensors"));
  return nlohmann::json::parse(f.metadata.at("counts"));
}

}  // namespace

TEST_CASE("frrn: FRRN-A logits equal PyTorch's (width 1/8, 2x3x64x96, eval)") {
  TensorFile f = load_safetensors(fixture_path("frrn_a_w0125.safetensors"));
  FRRNConfig c;
  c.num_classes = 5;
  c.width = 0.125;
  FRRN net(c);
  net.load_state_dict(testing::tensors_with_prefix(f, "sd."));   // strict: every name must match
  net.eval();
  NoGradGuard ng;
  SegmentationOutput o = net.forward_with_taps(f.get("x"), {"frrnlayer4"});
  const double err = testing::max_relative_error(o.logits, f.get("logits"));
  INFO("relative error " << err);
  CHECK(err <= 1e-4);
  CHECK(o.taps.at("frrnlayer4").shape() == Shape{2, 48, 4, 6});
}

TEST_CASE("frrn: state-dict names are the reference's") {
  FRRNConfig c;
  c.num_classes = 5;
  c.width = 0.125;
  FRRN net(c);
  auto sd = net.state_dict();
  for (const char* name :
       {"first.conv.weight", "first.conv.bias", "first.bn.running_var", "reslayers_in.0.conv1.weight",
        "reslayers_in.2.bn2.num_batches_tracked", "divide.weight", "divide.bias", "frrnlayer1.frr1.conv1.weight",
        "frrnlayer1.frr1.convz.bias", "frrnlayer1.nexts.1.bn2.weight", "frrnlayer2.nexts.2.conv2.weight",
        "frrnlayer4.nexts.0.convz.weight", "defrrnlayer1.frr1.bn1.running_mean", "defrrnlayer3.nexts.0.conv1.weight",
        "compress.weight", "compress.bias", "reslayers_out.2.conv2.weight", "out_conv.weight", "out_conv.bias"})
    CHECK_MESSAGE(sd.count(name) == 1, name);
  CHECK(sd.count("frrnlayer1.nexts.2.conv1.weight") == 0);   // stage 1 has 3 units: frr1 + nexts.0/1
  CHECK(sd.count("frrnlayer5.frr1.conv1.weight") == 0);
  CHECK(sd.count("first.conv.weight"));
  CHECK(sd.at("first.conv.weight").shape() == Shape{6, 3, 5, 5});
  // Exactly the fixture's (torch's) key set.
  TensorFile f = load_safetensors(fixture_path("frrn_a_w0125.safetensors"));
  auto ref = testing::tensors_with_prefix(f, "sd.");
  std::set<std::string> a, b;
  for (auto& [k, v] : sd) a.insert(k);
  for (auto& [k, v] : ref) b.insert(k);
  CHECK(a == b);
}

TEST_CASE("frrn: parameter counts equal PyTorch's") {
  auto counts = torch_counts();
  auto count = [](char table, int64_t classes, double width) {
    FRRNConfig c;
    c.table = table;
    c.num_classes = classes;
    c.width = width;
    return FRRN(c).num_parameters();
  };
  CHECK(count('A', 38, 1.0) == counts.at("frrn_a_c38").get<int64_t>());
  CHECK(count('A', 38, 1.0) == 17713238);
  CHECK(count('B', 38, 1.0) == counts.at("frrn_b_c38").get<int64_t>());
  CHECK(count('A', 19, 0.25) == counts.at("frrn_a_c19_w0.25").get<int64_t>());
  CHECK(count('A', 5, 0.125) == counts.at("frrn_a_c5_w0.125").get<int64_t>());
}

TEST_CASE("frrn: taps, width multiplier and table B") {
  FRRNConfig c;
  c.num_classes = 7;
  CHECK(FRRN(c).tap_channels("frrnlayer4") == 384);
  CHECK(FRRN(c).tap_stride("frrnlayer4") == 16);
  c.width = 0.0625;
  FRRN a(c);
  CHECK(a.scaled_table().res_channels == 2);
  CHECK(a.scaled_table().pool_channels == 3);
  CHECK(a.tap_channels("frrnlayer4") == 24);
  CHECK(a.tap_names() == std::vector<std::string>{"frrnlayer1", "frrnlayer2", "frrnlayer3", "frrnlayer4"});
  CHECK_THROWS_WITH_AS(a.tap_stride("aspp"), doctest::Contains("unknown tap 'aspp'"), Error);

  c.table = 'B';
  FRRN b(c);
  CHECK(b.tap_stride("frrnlayer5") == 32);
  CHECK(b.child("defrrnlayer4")->num_parameters() > 0);
  CHECK_THROWS_AS(b.child("defrrnlayer5"), Error);
  b.eval();
  NoGradGuard ng;
  Tensor x = Tensor::full({1, 3, 64, 96}, 0.5);
  auto o = b.forward_with_taps(x, {"frrnlayer5"});
  CHECK(o.logits.shape() == Shape{1, 7, 64, 96});
  CHECK(o.taps.at("frrnlayer5").shape() == Shape{1, 24, 2, 3});
}

TEST_CASE("frrn: input sizes not divisible by 16 run (the reference fails on them)") {
  FRRNConfig c;
  c.num_classes = 3;
  c.width = 0.0625;
  FRRN net(c);
  net.eval();
  NoGradGuard ng;
  auto o = net.forward_with_taps(Tensor::full({1, 3, 50, 70}, 0.25), {"frrnlayer4"});
  CHECK(o.logits.shape() == Shape{1, 3, 50, 70});
  CHECK(o.taps.at("frrnlayer4").shape() == Shape{1, 24, 4, 5});   // ceil(50/16), ceil(70/16)
  CHECK_THROWS_WITH_AS(net.forward(Tensor::zeros({1, 4, 32, 32})), doctest::Contains("4 channels"), Error);
}
