// Sparse MoE layers inserted by name (models/moe_insertion.h) and what rests on it: which modules
// a pattern replaces in DeepLabv3+ ResNet-18 (every conv or block of layer4, or one named conv),
// the state-dict names, that an inserted layer really runs in the place of the old module (with
// copied experts the network computes exactly what it computed before, in float64), balancing
// losses and routing through forward_detailed, the registry's "sparse_moe" key, Module's
// replace_child rules, the FLOP counter (core/flop_counter.h) by hand, and the errors naming the
// layer, the key or the pattern.
// Run: build/tests/test_models -tc='*moe_insertion*'
#include <doctest/doctest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/flop_counter.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "layers/conv2d_layer.h"
#include "layers/linear_layer.h"
#include "layers/resnet_blocks.h"
#include "layers/sequential.h"
#include "layers/sparse_moe.h"
#include "models/deeplabv3plus.h"
#include "models/moe_insertion.h"
#include "models/registry.h"
#include "models/resnet.h"
#include "support/gradcheck.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;

namespace {

std::shared_ptr<SegmentationModel> small_deeplab() { return make_deeplabv3plus(18, 5, 16, 0.125); }

MoeInsertion insertion(const std::string& pattern, MoeInsertTarget target, int64_t n, int64_t k, bool copy = false) {
  MoeInsertion ins;
  ins.pattern = pattern;
  ins.target = target;
  ins.layer.num_experts = n;
  ins.layer.k = k;
  ins.copy_weights = copy;
  ins.seed = 3;
  return ins;
}

Tensor input(int64_t b = 2) {
  Generator g(5);
  Tensor x = Tensor::empty({b, 3, 64, 64});
  uniform_(x, -1.0, 1.0, g);
  return x;
}

// The model's float64 output on input() before and after the insertion (eval mode). float32 ->
// float64 -> float32 is exact, so the inserted network starts from the same weights.
std::pair<Tensor, Tensor> dense_then_moe(SegmentationModel& m, const MoeInsertion& ins) {
  m.eval();
  NoGradGuard ng;
  const Tensor x = input().to(DType::Float64);
  m.to(DType::Float64);
  const Tensor dense = m.forward(x);
  m.to(DType::Float32);
  insert_sparse_moe(m, ins);
  m.to(DType::Float64);
  return {dense, m.forward(x)};
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const Tensor d = sub(a, b);
  return max(mul(d, sign(d))).to(DType::Float64).item();
}

}  // namespace

TEST_CASE("moe_insertion: the pattern layer4 replaces every conv of layer4 and names them by their paths") {
  auto m = small_deeplab();
  const auto names = insert_sparse_moe(*m, insertion("layer4", MoeInsertTarget::Conv, 4, 1));
  const std::vector<std::string> expected = {"backbone.layer4.0.conv1", "backbone.layer4.0.conv2",
                                             "backbone.layer4.0.downsample.0", "backbone.layer4.1.conv1",
                                             "backbone.layer4.1.conv2"};
  CHECK(names == expected);
  const auto layers = sparse_moe_layers(*m);
  REQUIRE(layers.size() == 5);
  for (size_t i = 0; i < layers.size(); ++i) {
    CHECK(layers[i].first == expected[i]);
    CHECK(layers[i].second->config().name == expected[i]);
  }
  const auto sd = m->state_dict();
  CHECK(sd.count("backbone.layer4.0.conv1.experts.3.weight") == 1);
  CHECK(sd.count("backbone.layer4.0.conv1.router.linear.weight") == 1);
  CHECK(sd.count("backbone.layer4.0.conv1.weight") == 0);
  CHECK(sd.count("backbone.layer3.1.conv2.weight") == 1);   // outside the pattern: untouched
  // The experts keep the replaced conv's geometry (layer4 at output stride 16: dilation 2 in layer4.1).
  auto& e = dynamic_cast<Conv2d&>(layers[3].second->expert(2));
  CHECK(e.config().dilation == 2);
  CHECK(e.config().padding == 2);
  CHECK_FALSE(e.config().bias);
  m->eval();
  NoGradGuard ng;
  const Tensor y = m->forward(input());
  CHECK(y.sizes() == Shape{2, 5, 64, 64});
}

TEST_CASE("moe_insertion: with copied experts the network computes what it computed before, in float64") {
  for (auto [target, k] : {std::pair{MoeInsertTarget::Conv, int64_t{1}}, std::pair{MoeInsertTarget::Conv, int64_t{2}},
                           std::pair{MoeInsertTarget::Block, int64_t{1}}, std::pair{MoeInsertTarget::Block, int64_t{2}}}) {
    CAPTURE(static_cast<int>(target));
    CAPTURE(k);
    auto m = small_deeplab();
    const auto [dense, moe] = dense_then_moe(*m, insertion("layer4", target, 4, k, /*copy=*/true));
    // The inserted layers ran (they routed the batch) and each expert is the old module, so the
    // output is the dense one; k = 2 weights w + (1 - w) = 1 differ by rounding only.
    for (auto& [name, layer] : sparse_moe_layers(*m)) CHECK(layer->routing_stats().tokens == 2);
    CHECK(max_abs_diff(moe, dense) < 1e-10);
  }
  // PatchMoE: with the halo of the conv's reach (the default) each patch sees its neighbours, so
  // copied experts give the dense network again; without a halo the patch borders see zeros.
  for (int64_t halo : {int64_t{-1}, int64_t{0}}) {
    CAPTURE(halo);
    auto m = small_deeplab();
    MoeInsertion ins = insertion("layer4", MoeInsertTarget::Conv, 4, 2, /*copy=*/true);
    ins.layer.tokens = MoeTokens::PerPatch;
    ins.layer.patch = 2;
    ins.patch_halo = halo;
    const auto [dense, moe] = dense_then_moe(*m, ins);
    const auto layers = sparse_moe_layers(*m);
    CHECK(layers[1].second->config().patch_halo == (halo < 0 ? 1 : 0));   // layer4.0.conv2: the previous dilation 1
    CHECK(layers[3].second->config().patch_halo == (halo < 0 ? 2 : 0));   // layer4.1.conv1: dilation 2
    CHECK(layers[2].second->config().patch_halo == 0);                    // the 1x1 downsample: no reach
    CHECK(layers[0].second->routing_stats().tokens == 2 * 2 * 2);   // 4x4 map, 2x2 patches, 2 images
    if (halo < 0) CHECK(max_abs_diff(moe, dense) < 1e-10);
    else CHECK(max_abs_diff(moe, dense) > 1e-3);
  }
  // Fresh experts compute something else, so the check above would catch an insertion that left
  // the old modules running.
  auto m = small_deeplab();
  m->eval();
  NoGradGuard ng;
  const Tensor x = input();
  const Tensor dense = m->forward(x);
  insert_sparse_moe(*m, insertion("layer4", MoeInsertTarget::Conv, 4, 1));
  CHECK(max_abs_diff(m->forward(x), dense) > 1e-3);
}

TEST_CASE("moe_insertion: blocks, one named conv, and nothing inside an inserted layer is matched twice") {
  auto m = small_deeplab();
  CHECK(insert_sparse_moe(*m, insertion("layer4", MoeInsertTarget::Block, 4, 2)) ==
        std::vector<std::string>{"backbone.layer4.0", "backbone.layer4.1"});
  CHECK(m->state_dict().count("backbone.layer4.0.experts.1.downsample.0.weight") == 1);   // 128 -> 256·w: own downsample
  CHECK(m->state_dict().count("backbone.layer4.1.experts.1.downsample.0.weight") == 0);
  // The convs inside the BlockMoE's experts are not candidates any more.
  expect_error([&] { insert_sparse_moe(*m, insertion("layer4", MoeInsertTarget::Conv, 2, 1)); },
               {"pattern 'layer4' matches no Conv2d", "backbone.layer3.0.conv1"});
  auto one = small_deeplab();
  CHECK(insert_sparse_moe(*one, insertion("backbone.layer4.1.conv2", MoeInsertTarget::Conv, 8, 2)) ==
        std::vector<std::string>{"backbone.layer4.1.conv2"});
  CHECK(sparse_moe_layers(*one).size() == 1);
}

TEST_CASE("moe_insertion: refusals name the pattern, the module and its geometry") {
  auto m = small_deeplab();
  expect_error([&] { insert_sparse_moe(*m, insertion("layer9", MoeInsertTarget::Conv, 4, 1)); },
               {"pattern 'layer9' matches no Conv2d", "backbone.conv1", "in all)"});
  // Output stride 32: layer4.0.conv1 has stride 2, so it cannot be a ConvMoE / BlockMoE here.
  auto r = make_resnet(18, 32, 0.125);
  expect_error([&] { insert_sparse_moe(*r, insertion("layer4.0.conv1", MoeInsertTarget::Conv, 4, 1)); },
               {"layer4.0.conv1", "keeps the spatial size", "stride 2"});
  expect_error([&] { insert_sparse_moe(*r, insertion("layer4.0", MoeInsertTarget::Block, 4, 1)); },
               {"layer4.0", "BasicBlock has stride 2"});
  MoeInsertion bad = insertion("layer4", MoeInsertTarget::Conv, 2, 3);
  expect_error([&] { insert_sparse_moe(*m, bad); }, {"backbone.layer4.0.conv1", "1 <= k <= N", "k = 3"});
}

TEST_CASE("moe_insertion: replace_child only where the parent runs the new child") {
  Generator g(1);
  auto seq = make_sequential(std::make_shared<Conv2d>(2, 2, 1, 1, 0, 1, 1, true, g));
  auto lin = std::make_shared<Linear>(2, 2, true, g);
  seq->replace_child("0", lin);
  CHECK(seq->child("0") == lin);
  BasicBlock block(2, 2, 1, 1, nullptr, g);
  expect_error([&] { block.replace_child("bn1", lin); }, {"BasicBlock", "child 'bn1'", "cannot be replaced"});
  expect_error([&] { block.replace_child("conv7", lin); }, {"no child module 'conv7'", "conv1"});
  Module plain("Plain");
  plain.register_module("c", std::make_shared<Conv2d>(2, 2, 1, 1, 0, 1, 1, true, g));
  expect_error([&] { plain.replace_child("c", lin); }, {"Plain", "child 'c' (Conv2d) cannot be replaced"});
  // A replaced conv of a block is the one its forward runs.
  auto zero = std::make_shared<Conv2d>(2, 2, 3, 1, 1, 1, 1, false, g);
  zero->weight.detach().zero_();
  block.eval();
  NoGradGuard ng;
  Tensor x = Tensor::ones({1, 2, 4, 4});
  block.replace_child("conv2", zero);
  // conv2 = 0 -> bn2(0) = its bias term 0 after eval BN with running stats (0, 1): out = relu(x).
  CHECK(max_abs_diff(block.forward(x), relu(x)) < 1e-6);
}

TEST_CASE("moe_insertion: balancing losses and routing reach forward_detailed") {
  auto m = small_deeplab();
  MoeInsertion ins = insertion("backbone.layer4.1.conv2", MoeInsertTarget::Conv, 4, 1);
  ins.layer.importance_weight = 0.5;
  ins.layer.switch_weight = 0.25;
  insert_sparse_moe(*m, ins);
  m->train();
  const ModelOutput o = m->forward_detailed(input(4));
  REQUIRE(o.aux_losses.size() == 2);
  SparseMoE& layer = *sparse_moe_layers(*m)[0].second;
  const double imp = o.aux_losses.at("backbone.layer4.1.conv2.importance").to(DType::Float64).item();
  CHECK(imp == doctest::Approx(0.5 * layer.balancing_losses().importance.to(DType::Float64).item()).epsilon(1e-12));
  CHECK(o.aux_losses.count("backbone.layer4.1.conv2.switch") == 1);
  CHECK(o.extras.at("backbone.layer4.1.conv2.expert_indices").sizes() == Shape{4, 1});
  CHECK(o.extras.at("backbone.layer4.1.conv2.expert_weights").sizes() == Shape{4, 1});
  // The aux loss is differentiable into the router.
  o.aux_losses.at("backbone.layer4.1.conv2.importance").backward();
  CHECK(layer.router().named_parameters()[0].second.grad().defined());
}

TEST_CASE("moe_insertion: the registry's sparse_moe key, and its errors name the config entry and key") {
  nlohmann::json cfg = {{"model", "deeplabv3plus_resnet18"}, {"num_classes", 5}, {"width", 0.125},
                        {"sparse_moe", {{{"replace", "layer4.0"}, {"target", "block"}, {"num_experts", 2}},
                                        {{"replace", "layer4.1.conv2"}, {"tokens", "per_patch"}, {"patch", 2}, {"k", 2}}}}};
  auto m = make_model_from_config(cfg);
  const auto layers = sparse_moe_layers(*m);
  REQUIRE(layers.size() == 2);
  CHECK(layers[0].first == "backbone.layer4.0");
  CHECK(layers[1].first == "backbone.layer4.1.conv2");
  CHECK(layers[1].second->config().tokens == MoeTokens::PerPatch);
  CHECK(layers[1].second->config().k == 2);
  auto bad = [&](nlohmann::json entry, std::vector<std::string> needles) {
    nlohmann::json c = cfg;
    c["sparse_moe"] = nlohmann::json::array({entry});
    expect_error([&] { make_model_from_config(c, ""); }, needles);
  };
  bad({{"replace", "layer4"}, {"experts", 4}}, {"sparse_moe[0]", "experts"});
  bad({{"replace", "layer4"}, {"k", 5}, {"num_experts", 4}}, {"sparse_moe[0]", "key 'k' is 5"});
  bad({{"replace", "layer4"}, {"router", "mlp"}}, {"sparse_moe[0]: key 'router'", "mlp", "gap_linear", "two_conv_bn_gap"});
  bad({{"replace", "layer4"}, {"noise", "shazeer"}}, {"sparse_moe[0]: key 'noise'", "shazeer_learned"});
  bad({{"replace", "layer4"}, {"k", 2}, {"straight_through", true}}, {"sparse_moe[0]", "straight_through", "k = 2"});
  bad({{"replace", "layer4"}, {"hard_constraint_share", 0.2}}, {"sparse_moe[0]", "hard_constraint_share", "(0.25, 1]"});
  bad({{"replace", "layer4"}, {"overflow", "spill"}}, {"sparse_moe[0]: key 'overflow'", "reassign"});
  bad({{"replace", "layer4"}, {"capacity_factor", 0.0}}, {"key 'capacity_factor' must be > 0"});
  bad({{"replace", "nothing_here"}}, {"sparse_moe[0]", "pattern 'nothing_here' matches no Conv2d"});
  bad({{"target", "conv"}}, {"sparse_moe[0]", "replace"});
}

TEST_CASE("moe_insertion: the FLOP counter counts convs, linears and only the experts that run") {
  Generator g(2);
  Conv2d conv(3, 5, 3, 1, 1, 1, 1, true, g);
  Linear lin(6, 7, true, g);
  NoGradGuard ng;
  {
    FlopCountScope fc;
    conv.forward(Tensor::zeros({1, 3, 8, 8}));
    CHECK(fc.flops() == 2.0 * (5 * 8 * 8) * (3 * 9));
  }
  {
    FlopCountScope outer;
    lin.forward(Tensor::zeros({4, 6}));
    {
      FlopCountScope inner;   // the innermost scope counts
      lin.forward(Tensor::zeros({1, 6}));
      CHECK(inner.flops() == 2.0 * 6 * 7);
    }
    CHECK(outer.flops() == 2.0 * 4 * 6 * 7);
  }
  for (int64_t k : {1, 2}) {
    SparseMoEConfig c;
    c.num_experts = 4;
    c.k = k;
    auto moe = make_conv_moe(c, 3, 5, 3, g);
    moe->eval();
    FlopCountScope fc;
    moe->forward(Tensor::ones({2, 3, 8, 8}));
    // 2 images x k experts each x one 3->5 3x3 conv on 8x8, plus the router's linear 3 -> 4 on 2 tokens.
    CHECK(fc.flops() == 2.0 * k * 2.0 * (5 * 8 * 8) * (3 * 9) + 2.0 * 2 * 3 * 4);
  }
}
