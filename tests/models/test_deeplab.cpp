// DeepLabv3+ tests: PyTorch parity for a width-1/8 DeepLabv3+ on ResNet-50 at 65x97 (odd sizes)
// for output stride 16 and 8 in eval mode (logits and the three taps), one train-mode
// cross-entropy backward in float64 (loss, logits, gradients of named parameters, updated BN
// running statistics); state_dict names and shapes equal to the reference's; full-size parameter counts
// computed with torch (tools/fixtures/make_deeplab_fixtures.py); tap shapes, channels and strides;
// head initialisation; errors. Fixtures: tests/fixtures/models/deeplab_r50_w0125_*.safetensors.
// Run: build/tests/test_models -ts="*deeplab*"
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "kernels/cross_entropy.h"
#include "models/deeplabv3plus.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

namespace {

const std::string kDir = std::string(MOESEG_FIXTURE_DIR) + "/models/";

std::shared_ptr<Module> submodule(const std::shared_ptr<Module>& root, const std::string& dotted) {
  std::shared_ptr<Module> m = root;
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) m = m->child(part);
  return m;
}


void check_rel(const Tensor& actual, const Tensor& expected, const std::string& what, double tol = 1e-4) {
  const double e = testing::max_relative_error(actual, expected);
  INFO(what, ": relative error ", e, " (tolerance ", tol, ")");
  CHECK(e <= tol);
}

// The fixture network, weights loaded (strict).
std::shared_ptr<SegmentationModel> fixture_model(int output_stride) {
  auto m = make_deeplabv3plus(50, 5, output_stride, 0.125);
  m->load(kDir + "deeplab_r50_w0125_weights.safetensors");
  return m;
}

}  // namespace

TEST_CASE("deeplab: state_dict names and shapes equal the reference's") {
  const TensorFile w = load_safetensors(kDir + "deeplab_r50_w0125_weights.safetensors");
  auto sd = make_deeplabv3plus(50, 5, 16, 0.125)->state_dict();
  CHECK(sd.size() == w.tensors.size());
  CHECK(w.tensors.size() == 368);
  for (const auto& [name, t] : w.tensors) {
    INFO(name);
    REQUIRE(sd.count(name) == 1);
    CHECK(sd.at(name).sizes() == t.sizes());
  }
  for (const char* name : {"backbone.layer4.2.conv3.weight", "classifier.project.0.weight", "classifier.project.1.running_var",
                           "classifier.aspp.convs.0.0.weight", "classifier.aspp.convs.3.1.bias",
                           "classifier.aspp.convs.4.1.weight", "classifier.aspp.convs.4.2.running_mean",
                           "classifier.aspp.project.0.weight", "classifier.aspp.project.1.weight",
                           "classifier.classifier.0.weight", "classifier.classifier.1.num_batches_tracked",
                           "classifier.classifier.3.weight", "classifier.classifier.3.bias"}) {
    CHECK_MESSAGE(sd.count(name) == 1, name);
  }
}

TEST_CASE("deeplab: full-size parameter counts equal torch's") {
  // torch counts of the reference architecture with 38 classes (make_deeplab_fixtures.py prints
  // them; 21 classes: R50 39,761,845, R101 58,753,973); only the modules are built, nothing is run.
  // Full-size builds initialise up to 59 M parameters (seconds on 2 cores): each is built once
  // here and every full-size check uses it.
  CHECK(make_deeplabv3plus(18, 38, 16)->num_parameters() == 16022214);
  {
    auto r101 = std::dynamic_pointer_cast<DeepLabV3Plus>(make_deeplabv3plus(101, 38, 16));
    REQUIRE(r101 != nullptr);
    CHECK(r101->num_parameters() == 58758342);
    CHECK(r101->backbone().num_parameters() == 42500160);   // torchvision resnet101 without fc
    CHECK(r101->state_dict().size() == 674);                // torch's state_dict entries, buffers included
  }
  auto m = std::dynamic_pointer_cast<DeepLabV3Plus>(make_deeplabv3plus(50, 38, 16));
  REQUIRE(m != nullptr);
  CHECK(m->num_parameters() == 39766214);
  // The backbone part of ResNet-50 is torchvision's 23,508,032 (no fc).
  CHECK(m->backbone().num_parameters() == 23508032);
  CHECK(m->state_dict().at("classifier.classifier.0.weight").sizes() == Shape{256, 304, 3, 3});
  CHECK(m->state_dict().at("classifier.classifier.3.weight").sizes() == Shape{38, 256, 1, 1});
  CHECK(m->state_dict().at("classifier.aspp.project.0.weight").sizes() == Shape{256, 1280, 1, 1});
  CHECK(m->state_dict().at("classifier.aspp.convs.2.0.weight").sizes() == Shape{256, 2048, 3, 3});
  CHECK(m->state_dict().at("classifier.project.0.weight").sizes() == Shape{48, 256, 1, 1});
  // Taps of the full-size network (the gate is sized from these before any forward).
  CHECK(m->tap_names() == std::vector<std::string>{"aspp", "layer4", "low_level"});
  CHECK(m->tap_channels("aspp") == 256);
  CHECK(m->tap_channels("layer4") == 2048);
  CHECK(m->tap_channels("low_level") == 256);
  CHECK(m->tap_stride("aspp") == 16);
  CHECK(m->tap_stride("layer4") == 16);
  CHECK(m->tap_stride("low_level") == 4);
  CHECK(m->num_classes() == 38);
}

TEST_CASE("deeplab: taps, channels and strides, ASPP rates per output stride") {
  // Full-size taps are checked with the parameter counts; the structure below does not depend on
  // the width, so small models keep this case fast.
  for (int os : {16, 8}) {
    auto s = std::dynamic_pointer_cast<DeepLabV3Plus>(make_deeplabv3plus(101, 38, os, 0.0625));
    REQUIRE(s != nullptr);
    CHECK(s->tap_stride("aspp") == os);
    CHECK(s->tap_stride("low_level") == 4);
    CHECK(s->tap_channels("aspp") == 16);
    CHECK(s->tap_channels("layer4") == 128);
    const auto rates = s->aspp().rates();
    CHECK(rates == (os == 16 ? std::array<int64_t, 3>{6, 12, 18} : std::array<int64_t, 3>{12, 24, 36}));
    auto c3 = std::dynamic_pointer_cast<Conv2d>(submodule(s, "classifier.aspp.convs.3.0"));
    REQUIRE(c3 != nullptr);
    CHECK(c3->config().dilation == rates[2]);
    CHECK(c3->config().padding == rates[2]);
  }
  auto r18 = make_deeplabv3plus(18, 5, 16, 0.5);
  CHECK_THROWS_WITH_AS(r18->tap_channels("encoder"), doctest::Contains("unknown tap 'encoder'"), Error);
  CHECK_THROWS_WITH_AS(r18->tap_stride("encoder"), doctest::Contains("unknown tap 'encoder'"), Error);
  CHECK(r18->tap_channels("layer4") == 256);
  CHECK(r18->tap_channels("low_level") == 32);
}

TEST_CASE("deeplab: tap and logit shapes for OS16 and OS8 at 65x97") {
  NoGradGuard ng;
  Tensor x = Tensor::zeros({1, 3, 65, 97});
  for (int os : {16, 8}) {
    auto m = make_deeplabv3plus(18, 7, os, 0.0625);
    m->eval();
    auto out = m->forward_with_taps(x, {"aspp", "layer4", "low_level"});
    const Shape hw = os == 16 ? Shape{5, 7} : Shape{9, 13};
    CHECK(out.logits.sizes() == Shape{1, 7, 65, 97});
    CHECK(out.taps.at("aspp").sizes() == Shape{1, 16, hw[0], hw[1]});
    CHECK(out.taps.at("layer4").sizes() == Shape{1, 32, hw[0], hw[1]});
    CHECK(out.taps.at("low_level").sizes() == Shape{1, 4, 17, 25});
    CHECK(m->forward_with_taps(x, {"aspp"}).taps.size() == 1);
    CHECK(m->forward(x).sizes() == Shape{1, 7, 65, 97});
    CHECK_THROWS_WITH_AS(m->forward_with_taps(x, {"y"}), doctest::Contains("unknown tap 'y'"), Error);
  }
}

TEST_CASE("deeplab: PyTorch parity in eval mode, OS16 and OS8") {
  for (int os : {16, 8}) {
    const TensorFile f = load_safetensors(kDir + "deeplab_r50_w0125_os" + std::to_string(os) + ".safetensors");
    auto m = fixture_model(os);
    m->eval();
    NoGradGuard ng;
    auto out = m->forward_with_taps(f.get("in.x").to(DType::Float32), {"aspp", "layer4", "low_level"});
    const std::string tag = "os" + std::to_string(os) + " ";
    check_rel(out.logits, f.get("out.logits"), tag + "logits");
    check_rel(out.taps.at("aspp"), f.get("out.tap.aspp"), tag + "aspp");
    check_rel(out.taps.at("layer4"), f.get("out.tap.layer4"), tag + "layer4");
    check_rel(out.taps.at("low_level"), f.get("out.tap.low_level"), tag + "low_level");
  }
}

TEST_CASE("deeplab: PyTorch parity of one train-mode cross-entropy backward, in float64 (OS16)") {
  // This step is ill-conditioned: batch statistics over few values (the image-pooling BN
  // normalises 2 values per channel) amplify rounding errors by ~1e4, so a float32 run lands
  // ~1e-3 from the exact gradients, by an amount that depends on the summation order of the
  // CPU's BLAS kernel (torch's own float32 run is as far off). A float32 tolerance would hold on
  // one machine only. So the step runs in float64 on both sides (torch's float64 results are
  // stored in float64 in the fixture): amplified double rounding stays ~1e-12, and 1e-9 checks
  // the maths exactly on any CPU. A wrong op (dilation, BN backward, upsampling) is off by far
  // more; a BN backward perturbed by 1e-6 relative already fails here. The float32 network is
  // checked in eval mode above (well-conditioned), and every float32 kernel by its op fixtures.
  const TensorFile f = load_safetensors(kDir + "deeplab_r50_w0125_os16.safetensors");
  const auto params = nlohmann::json::parse(f.metadata.at("params"));
  const double tol = 1e-9;
  REQUIRE(f.get("train.in.x").dtype() == DType::Float64);
  auto m = fixture_model(16);
  m->to(DType::Float64);
  m->train();
  // Dropout's mask is random: the fixture switched that one module to eval; so do we.
  submodule(m, "classifier.aspp.project.3")->eval();
  Tensor logits = m->forward(f.get("train.in.x"));
  REQUIRE(logits.dtype() == DType::Float64);
  Tensor loss = cross_entropy(logits, f.get("train.in.target"));
  loss.backward();
  check_rel(logits, f.get("train.out.logits"), "train logits", tol);
  CHECK(loss.item() == doctest::Approx(f.get("train.out.loss").item()).epsilon(1e-12));

  std::map<std::string, Tensor> named;
  for (auto& [n, p] : m->named_parameters()) named[n] = p;
  for (const std::string n : params.at("grad_names")) {
    REQUIRE_MESSAGE(named.count(n) == 1, n);
    REQUIRE_MESSAGE(named.at(n).grad().defined(), n);
    REQUIRE(f.get("train.grad." + n).dtype() == DType::Float64);
    check_rel(named.at(n).grad(), f.get("train.grad." + n), "grad " + n, tol);
  }
  auto sd = m->state_dict();
  for (const std::string n : params.at("running_names")) check_rel(sd.at(n), f.get("train.state." + n), n, tol);
  CHECK(sd.at("backbone.bn1.num_batches_tracked").dtype() == DType::Int64);
  CHECK(sd.at("backbone.bn1.num_batches_tracked").item() == 4);   // 3 in the fixture, +1
}

TEST_CASE("deeplab: head initialisation (Kaiming normal fan_in, BN 1/0, default bias)") {
  // Width 1/2 (ASPP 128 channels on a 1024-channel layer4, low-level 24): a quarter of the
  // full-size cost, same rules.
  manual_seed(3);
  auto sd = make_deeplabv3plus(50, 19, 16, 0.5)->state_dict();
  auto std_of = [](const Tensor& t) {
    auto v = t.to_vector<float>();
    double s = 0, mean = 0;
    for (float x : v) mean += x;
    mean /= static_cast<double>(v.size());
    for (float x : v) s += (x - mean) * (x - mean);
    return std::sqrt(s / static_cast<double>(v.size()));
  };
  CHECK(std_of(sd.at("classifier.aspp.convs.1.0.weight")) == doctest::Approx(std::sqrt(2.0 / (1024 * 9))).epsilon(0.02));
  CHECK(std_of(sd.at("classifier.classifier.0.weight")) == doctest::Approx(std::sqrt(2.0 / (152 * 9))).epsilon(0.03));
  CHECK(std_of(sd.at("classifier.aspp.project.0.weight")) == doctest::Approx(std::sqrt(2.0 / 640)).epsilon(0.03));
  CHECK(sd.at("classifier.aspp.convs.4.2.weight").to_vector<float>() == std::vector<float>(128, 1.0f));
  CHECK(sd.at("classifier.project.1.bias").to_vector<float>() == std::vector<float>(24, 0.0f));
  // The final conv's bias keeps nn.Conv2d's default U(-1/sqrt(128), 1/sqrt(128)).
  for (float b : sd.at("classifier.classifier.3.bias").to_vector<float>()) CHECK(std::abs(b) <= 1.0 / std::sqrt(128.0));
  CHECK(std_of(sd.at("classifier.classifier.3.bias")) > 0.0);
}

TEST_CASE("deeplab: invalid configurations are refused") {
  CHECK_THROWS_WITH_AS(make_deeplabv3plus(50, 5, 32), doctest::Contains("output stride 32"), Error);
  CHECK_THROWS_WITH_AS(make_deeplabv3plus(152, 5, 16), doctest::Contains("ResNet-152"), Error);
  CHECK_THROWS_WITH_AS(make_deeplabv3plus(50, 0, 16), doctest::Contains("num_classes"), Error);
}
