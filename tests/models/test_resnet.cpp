// ResNet backbone tests: torchvision state_dict names and parameter counts (numbers from
// torchvision / tools/fixtures/make_deeplab_fixtures.py), output-stride shapes, torchvision's
// dilation rule (previous_dilation), loading a torchvision-style checkpoint with its fc layer,
// initialisation statistics, and parity with PyTorch for a width-1/8 ResNet-18
// (tests/fixtures/models/deeplab_r18_w0125_resnet.safetensors).
// Run: build/tests/test_models -ts="*resnet*"
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "layers/conv2d_layer.h"
#include "models/resnet.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

namespace {

std::shared_ptr<Module> submodule(const std::shared_ptr<Module>& root, const std::string& dotted) {
  std::shared_ptr<Module> m = root;
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) m = m->child(part);
  return m;
}

int64_t dilation_of(const std::shared_ptr<Module>& root, const std::string& conv) {
  auto c = std::dynamic_pointer_cast<Conv2d>(submodule(root, conv));
  REQUIRE(c != nullptr);
  return c->config().dilation;
}


double std_of(const Tensor& t) {
  auto v = t.to(DType::Float64).to_vector<double>();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

}  // namespace

TEST_CASE("resnet: parameter counts equal torchvision's without fc") {
  // torchvision resnetN minus fc (checked by make_deeplab_fixtures.py); ResNet-101's 42,500,160
  // is checked through DeepLabv3+ in test_deeplab.cpp (one full-size build saved).
  const std::map<int, std::pair<int64_t, size_t>> expected = {
      {18, {11176512, 120}}, {34, {21284672, 216}}, {50, {23508032, 318}}};
  for (auto [depth, e] : expected) {
    auto net = make_resnet(depth, 16);
    CHECK_MESSAGE(net->num_parameters() == e.first, "resnet", depth);
    auto sd = net->state_dict();
    CHECK_MESSAGE(sd.size() == e.second, "resnet", depth);   // incl. BN buffers
    CHECK(sd.at("conv1.weight").sizes() == Shape{64, 3, 7, 7});
    CHECK(sd.at("layer4.1.conv2.weight").sizes() == Shape{512, 512, 3, 3});
    if (depth == 50) CHECK(sd.at("layer4.0.downsample.0.weight").sizes() == Shape{2048, 1024, 1, 1});
  }
}

TEST_CASE("resnet: state_dict names follow torchvision") {
  // Names do not depend on the width (full-size shapes are checked with the counts).
  auto sd = make_resnet(50, 16, 0.25)->state_dict();
  for (const char* name : {"conv1.weight", "bn1.weight", "bn1.running_var", "bn1.num_batches_tracked",
                           "layer1.0.conv1.weight", "layer1.0.conv3.weight", "layer1.0.bn3.bias",
                           "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean",
                           "layer2.3.conv2.weight", "layer3.5.bn2.weight", "layer4.0.downsample.0.weight",
                           "layer4.2.bn3.running_var"}) {
    CHECK_MESSAGE(sd.count(name) == 1, name);
  }
  CHECK(sd.count("layer1.1.downsample.0.weight") == 0);
  CHECK(sd.count("layer4.3.conv1.weight") == 0);
  CHECK(sd.count("fc.weight") == 0);
  CHECK(sd.size() == 318);

  // BasicBlock: layer1 has no downsample (64 -> 64), the other stages do.
  auto r18 = make_resnet(18, 32, 0.25)->state_dict();
  CHECK(r18.count("layer1.0.downsample.0.weight") == 0);
  CHECK(r18.count("layer2.0.downsample.0.weight") == 1);
  CHECK(r18.count("layer1.0.conv3.weight") == 0);
  CHECK(r18.size() == 120);
}

TEST_CASE("resnet: dilation follows torchvision's previous_dilation rule") {
  auto os16 = std::static_pointer_cast<Module>(make_resnet(50, 16, 0.125));
  CHECK(dilation_of(os16, "layer3.5.conv2") == 1);
  CHECK(dilation_of(os16, "layer4.0.conv2") == 1);   // first block keeps the previous dilation
  CHECK(dilation_of(os16, "layer4.1.conv2") == 2);
  CHECK(dilation_of(os16, "layer4.2.conv2") == 2);
  CHECK(std::dynamic_pointer_cast<Conv2d>(submodule(os16, "layer4.0.conv2"))->config().stride == 1);
  CHECK(std::dynamic_pointer_cast<Conv2d>(submodule(os16, "layer4.0.downsample.0"))->config().stride == 1);
  CHECK(std::dynamic_pointer_cast<Conv2d>(submodule(os16, "layer3.0.conv2"))->config().stride == 2);

  auto os8 = std::static_pointer_cast<Module>(make_resnet(101, 8, 0.0625));
  CHECK(dilation_of(os8, "layer2.0.conv2") == 1);
  CHECK(dilation_of(os8, "layer3.0.conv2") == 1);
  CHECK(dilation_of(os8, "layer3.1.conv2") == 2);
  CHECK(dilation_of(os8, "layer3.22.conv2") == 2);
  CHECK(dilation_of(os8, "layer4.0.conv2") == 2);
  CHECK(dilation_of(os8, "layer4.1.conv2") == 4);
  CHECK(std::dynamic_pointer_cast<Conv2d>(submodule(os8, "layer4.1.conv2"))->config().padding == 4);
}

TEST_CASE("resnet: feature shapes for output strides 32, 16 and 8 at odd input sizes") {
  Tensor x = Tensor::zeros({1, 3, 65, 97});
  NoGradGuard ng;
  struct Case { int depth, os; Shape layer4; };
  // 65x97 -> conv1 33x49 -> maxpool 17x25 (layer1) -> 9x13 -> 5x7 -> 3x4.
  for (const Case& c : {Case{50, 32, {1, 256, 3, 4}}, Case{50, 16, {1, 256, 5, 7}}, Case{50, 8, {1, 256, 9, 13}},
                        Case{18, 32, {1, 64, 3, 4}}, Case{18, 8, {1, 64, 9, 13}}, Case{34, 16, {1, 64, 5, 7}}}) {
    auto net = make_resnet(c.depth, c.os, 0.125);
    net->eval();
    CHECK(net->output_stride() == c.os);
    ResNetFeatures f = net->forward_features(x);
    const int64_t exp = c.depth >= 50 ? 4 : 1;
    CHECK(f.low_level.sizes() == Shape{1, 8 * exp, 17, 25});
    CHECK(f.out.sizes() == c.layer4);
    CHECK(net->low_level_channels() == 8 * exp);
    CHECK(net->out_channels() == c.layer4[1]);
  }
}

TEST_CASE("resnet: width multiplier scales every stage, invalid settings are refused") {
  auto net = make_resnet(50, 32, 0.25);
  auto sd = net->state_dict();
  CHECK(sd.at("conv1.weight").sizes() == Shape{16, 3, 7, 7});
  CHECK(sd.at("layer4.2.conv3.weight").sizes() == Shape{512, 128, 1, 1});
  CHECK(net->out_channels() == 512);
  CHECK_THROWS_WITH_AS(make_resnet(42, 32), doctest::Contains("depth 42"), Error);
  CHECK_THROWS_WITH_AS(make_resnet(50, 4), doctest::Contains("output stride 4"), Error);
  CHECK_THROWS_WITH_AS(make_resnet(50, 32, 0.0), doctest::Contains("width"), Error);
  CHECK_THROWS_WITH_AS(net->forward(Tensor::zeros({1, 1, 32, 32})), doctest::Contains("channels"), Error);
}

TEST_CASE("resnet: torchvision initialisation (Kaiming normal fan_out, BN 1/0)") {
  // Width 1/2 (stages 32/64/128/256): a quarter of the full-size cost, same rules.
  manual_seed(5);
  auto sd = make_resnet(50, 32, 0.5)->state_dict();
  // layer3.0.conv2: 128 out, 3x3 -> std sqrt(2 / 1152); 147k samples, so 2% is ~8 sigma.
  CHECK(std_of(sd.at("layer3.0.conv2.weight")) == doctest::Approx(std::sqrt(2.0 / (128 * 9))).epsilon(0.02));
  CHECK(std_of(sd.at("layer4.2.conv3.weight")) == doctest::Approx(std::sqrt(2.0 / 1024)).epsilon(0.02));
  CHECK(std_of(sd.at("layer4.0.downsample.0.weight")) == doctest::Approx(std::sqrt(2.0 / 1024)).epsilon(0.02));
  CHECK(sd.at("layer2.1.bn2.weight").to_vector<float>() == std::vector<float>(64, 1.0f));
  CHECK(sd.at("layer2.1.bn2.bias").to_vector<float>() == std::vector<float>(64, 0.0f));
}

TEST_CASE("resnet: PyTorch parity, ResNet-18 width 1/8, eval, 1x3x37x53") {
  const auto f = load_safetensors(std::string(MOESEG_FIXTURE_DIR) + "/models/deeplab_r18_w0125_resnet.safetensors");
  std::map<std::string, Tensor> weights;
  for (const auto& [k, v] : f.tensors)
    if (k.rfind("weight.", 0) == 0) weights[k.substr(7)] = v;
  auto net = make_resnet(18, 32, 0.125);
  net->load_state_dict(weights);   // strict: names and shapes must match exactly
  net->eval();
  NoGradGuard ng;
  ResNetFeatures out = net->forward_features(f.get("in.x").to(DType::Float32));
  const double e_low = testing::max_relative_error(out.low_level, f.get("out.low_level"));
  const double e_out = testing::max_relative_error(out.out, f.get("out.layer4"));
  INFO("relative error low_level ", e_low, ", layer4 ", e_out);
  CHECK(e_low <= 1e-4);
  CHECK(e_out <= 1e-4);
  CHECK(out.out.sizes() == Shape{1, 64, 2, 2});
}

TEST_CASE("resnet: a torchvision checkpoint (with fc) loads by name") {
  const auto f = load_safetensors(std::string(MOESEG_FIXTURE_DIR) + "/models/deeplab_r18_w0125_resnet.safetensors");
  std::map<std::string, Tensor> ckpt;
  for (const auto& [k, v] : f.tensors)
    if (k.rfind("weight.", 0) == 0) ckpt[k.substr(7)] = v;
  ckpt["fc.weight"] = Tensor::zeros({1000, 64});
  ckpt["fc.bias"] = Tensor::zeros({1000});
  auto net = make_resnet(18, 32, 0.125);
  CHECK_THROWS_WITH_AS(net->load_state_dict(ckpt, /*strict=*/true), doctest::Contains("fc.weight"), Error);
  net->load_state_dict(ckpt, /*strict=*/false);
  CHECK(testing::max_relative_error(net->state_dict().at("layer3.1.conv2.weight"), ckpt.at("layer3.1.conv2.weight")) == 0.0);
  CHECK(net->state_dict().at("bn1.num_batches_tracked").item() == ckpt.at("bn1.num_batches_tracked").item());
}
