// models/forward_inspect.h: every tensor of one forward pass, named. For an MoE the members'
// taps, their logits, the gate and the combined logits, equal to what forward_detailed returns
// (inspect_forward takes the members + combine_members route instead); for a plain FRRN every
// tap; for an ensemble its members' logits and no gate. The two summaries on hand-made tensors.
// Run: build/tests/test_models -tc="forward_inspect*"
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/rng.h"
#include "models/forward_inspect.h"
#include "models/registry.h"

using namespace moeseg;
using moeseg::testing::expect_error;

namespace {

nlohmann::json tiny_expert(uint64_t seed) { return {{"model", "frrn_a"}, {"width", 0.0625}, {"seed", seed}}; }

std::vector<std::string> names_of(const InspectedForward& f) {
  std::vector<std::string> n;
  for (const InspectedTensor& t : f.tensors) n.push_back(t.name);
  return n;
}

Shape shape_of(const InspectedForward& f, const std::string& name) {
  for (const InspectedTensor& t : f.tensors)
    if (t.name == name) return t.tensor.shape();
  FAIL("no tensor named ", name);
  return {};
}

void check_same(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  CHECK(a.to_vector<float>() == b.to_vector<float>());
}

Tensor random_image(int64_t h, int64_t w) {
  Generator gen(11);
  return rand({1, 3, h, w}, DType::Float32, gen);
}

}  // namespace

TEST_CASE("forward_inspect: an MoE lists its members' taps and logits, the gate and the logits of forward_detailed") {
  for (const char* gate : {"simple", "classwise"}) {
    INFO(gate);
    auto m = make_model_from_config({{"type", "moe"}, {"num_classes", 5}, {"experts", {tiny_expert(1), tiny_expert(2)}},
                                     {"gate", gate}, {"input_size", {32, 48}}, {"fc_features", 8}, {"seed", 3}});
    m->eval();
    NoGradGuard ng;
    const Tensor x = random_image(32, 48);
    const InspectedForward f = inspect_forward(*m, x);
    CHECK(names_of(f) == std::vector<std::string>{"input", "expert1.taps[frrnlayer4]", "expert1.logits",
                                                  "expert2.taps[frrnlayer4]", "expert2.logits", "gate", "logits"});
    CHECK(f.member_names == std::vector<std::string>{"expert1", "expert2"});
    CHECK(shape_of(f, "expert1.taps[frrnlayer4]") == Shape{1, 24, 2, 3});   // 384 x 1/16 channels, 1/16 size
    CHECK(shape_of(f, "gate") == Shape{1, std::string(gate) == "simple" ? 1 : 5, 2});
    const ModelOutput direct = m->forward_detailed(x);
    check_same(f.output.logits, direct.logits);
    check_same(f.output.gate, direct.gate);
    REQUIRE(f.output.member_logits.size() == 2);
    for (size_t e = 0; e < 2; ++e) check_same(f.output.member_logits[e], direct.member_logits[e]);
    const std::vector<double> w = mean_gate_weights(f.output.gate);
    REQUIRE(w.size() == 2);
    CHECK(w[0] + w[1] == doctest::Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("forward_inspect: a plain FRRN lists all its taps, an ensemble its members and no gate") {
  NoGradGuard ng;
  auto frrn = make_model_from_config({{"model", "frrn_a"}, {"num_classes", 4}, {"width", 0.0625}});
  frrn->eval();
  const Tensor x = random_image(32, 32);
  const InspectedForward f = inspect_forward(*frrn, x);
  CHECK(names_of(f) == std::vector<std::string>{"input", "taps[frrnlayer1]", "taps[frrnlayer2]", "taps[frrnlayer3]",
                                                "taps[frrnlayer4]", "logits"});
  CHECK(shape_of(f, "taps[frrnlayer2]") == Shape{1, 12, 8, 8});
  check_same(f.output.logits, frrn->forward(x));

  auto ens = make_model_from_config({{"type", "ensemble"}, {"num_classes", 4}, {"mode", "mean"},
                                     {"experts", {tiny_expert(1), tiny_expert(2)}}});
  ens->eval();
  const InspectedForward g = inspect_forward(*ens, x);
  CHECK(names_of(g) == std::vector<std::string>{"input", "member1.logits", "member2.logits", "logits"});
  CHECK(!g.output.gate.defined());
}

TEST_CASE("forward_inspect: gate means over groups and the argmax class histogram, on hand-made tensors") {
  // gate [2 images, G = 2, E = 3]; image 1's groups: (0.2, 0.3, 0.5) and (0.6, 0.3, 0.1).
  const Tensor gate = Tensor::from_vector<float>({1, 0, 0, 0, 1, 0, 0.2f, 0.3f, 0.5f, 0.6f, 0.3f, 0.1f}, {2, 2, 3});
  const std::vector<double> w = mean_gate_weights(gate, 1);
  REQUIRE(w.size() == 3);
  CHECK(w[0] == doctest::Approx(0.4));
  CHECK(w[1] == doctest::Approx(0.3));
  CHECK(w[2] == doctest::Approx(0.3));
  expect_error([&] { mean_gate_weights(gate, 2); }, {"mean_gate_weights", "image 2"});
  expect_error([&] { mean_gate_weights(Tensor::zeros({2, 3})); }, {"mean_gate_weights", "[N, G, E]"});

  // logits [1, C = 3, 1, 5]: argmax per pixel 2, 0, 2, 1, 0 -> class 0 twice, class 2 twice (the
  // lower class first on a tie), class 1 once.
  const Tensor logits = Tensor::from_vector<float>({5, 9, 0, 0, 7,  //
                                                    0, 0, 0, 9, 0,  //
                                                    8, 1, 4, 1, 0},
                                                   {1, 3, 1, 5});
  const auto h = argmax_class_histogram(logits);
  CHECK(h == std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 2}, {1, 1}});
  expect_error([&] { argmax_class_histogram(logits, 1); }, {"argmax_class_histogram", "image 1"});
}
