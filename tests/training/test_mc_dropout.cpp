// training/mc_dropout.h and Dropout's Monte-Carlo mode: FRRN's out_dropout adds nothing to the
// state dict and, at rate 0, changes no output; MC-dropout at p > 0 gives samples that differ from
// each other and from the plain eval output, the same samples for the same seed (whatever the
// global generator did), other samples for another seed; the layers are exactly as before once the
// guard is gone; a model without Dropout and a rate outside [0, 1) are refused by name.
#include <doctest/doctest.h>

#include <cstring>

#include "core/autograd.h"
#include "core/error.h"
#include "core/rng.h"
#include "models/registry.h"
#include "training/mc_dropout.h"

using namespace moeseg;

namespace {

std::shared_ptr<SegmentationModel> tiny_frrn() {
  ModelOptions o;
  o.num_classes = 5;
  o.width = 0.125;
  o.seed = 3;
  auto m = make_model("frrn_a", o);
  m->eval();
  return m;
}

bool same(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.shape() == y.shape() && std::memcmp(x.data<float>(), y.data<float>(), sizeof(float) * x.numel()) == 0;
}

// A model with no Dropout anywhere.
struct NoDropoutModel : SegmentationModel {
  NoDropoutModel() : SegmentationModel("NoDropoutModel") {}
  SegmentationOutput forward_with_taps(const Tensor& x, const std::vector<std::string>&) override { return {x, {}}; }
  std::vector<std::string> tap_names() const override { return {}; }
  int64_t tap_channels(const std::string&) const override { return 0; }
  int64_t tap_stride(const std::string&) const override { return 1; }
  int64_t num_classes() const override { return 3; }
};

}  // namespace

TEST_CASE("mc dropout: FRRN out_dropout is invisible at rate 0 and in the state dict") {
  auto m = tiny_frrn();
  for (auto& [k, v] : m->state_dict()) CHECK(k.find("out_dropout") == std::string::npos);
  const Tensor x = rand({1, 3, 32, 32}, DType::Float32, default_generator());
  NoGradGuard ng;
  const Tensor plain = m->forward(x);
  {
    MonteCarloDropout mc(*m, 0.0, 7);
    CHECK(mc.layers() == 1);
    CHECK(same(m->forward(x), plain));
  }
  // training mode at rate 0 draws nothing and changes nothing either
  const uint64_t offset = default_generator().offset();
  m->train();
  Tensor t = m->forward(x);
  m->eval();
  CHECK(default_generator().offset() == offset);
}

TEST_CASE("mc dropout: samples vary, a seed reproduces them, the layers are restored") {
  auto m = tiny_frrn();
  const Tensor x = rand({2, 3, 32, 32}, DType::Float32, default_generator());
  Tensor plain;
  {
    NoGradGuard ng;
    plain = m->forward(x);
  }
  const ModelOutput a = mc_dropout_output(*m, x, 0.5, 3, 11);
  REQUIRE(a.member_logits.size() == 3);
  CHECK(same(a.logits, a.member_logits[0]));
  CHECK(!same(a.member_logits[0], a.member_logits[1]));
  CHECK(!same(a.member_logits[1], a.member_logits[2]));
  CHECK(!same(a.member_logits[0], plain));
  (void)rand({100}, DType::Float32, default_generator());   // move the global generator on
  const ModelOutput b = mc_dropout_output(*m, x, 0.5, 3, 11);
  for (size_t s = 0; s < 3; ++s) CHECK(same(a.member_logits[s], b.member_logits[s]));
  const ModelOutput c = mc_dropout_output(*m, x, 0.5, 3, 12);
  CHECK(!same(a.member_logits[0], c.member_logits[0]));
  NoGradGuard ng;
  CHECK(same(m->forward(x), plain));   // out of MC mode: eval is deterministic again
  CHECK(!m->is_training());
}

TEST_CASE("mc dropout: a model without Dropout, a rate of 1 or below 0 and zero samples are refused") {
  NoDropoutModel none;
  CHECK_THROWS_WITH_AS(MonteCarloDropout(none, 0.1, 0), doctest::Contains("NoDropoutModel has no Dropout layer"), Error);
  auto m = tiny_frrn();
  CHECK_THROWS_WITH_AS(MonteCarloDropout(*m, 1.0, 0), doctest::Contains("rate must be in [0, 1), got 1"), Error);
  CHECK_THROWS_WITH_AS(MonteCarloDropout(*m, -0.1, 0), doctest::Contains("got -0.1"), Error);
  const Tensor x = Tensor::zeros({1, 3, 32, 32});
  CHECK_THROWS_WITH_AS(mc_dropout_output(*m, x, 0.1, 0, 0), doctest::Contains("samples must be >= 1, got 0"), Error);
}
