// Tests of gate_softmax_combine (kernels/gate_combine.h): float64 finite-difference gradients
// through the gate logits and every expert (simple and class-wise gates, 1-3 experts), PyTorch
// fixtures (tools/fixtures/cases_nn.py, _gate_combine_cases), and errors naming the op.
// Run: ./build/tests/test_ops -tc='gate_softmax_combine*'
#include <doctest/doctest.h>

#include "kernels/gate_combine.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using namespace moeseg::testing;

MOESEG_OP_TEST("gate_softmax_combine", "grad");
MOESEG_OP_TEST("gate_softmax_combine", "torch");

TEST_CASE("gate_softmax_combine: gradients") {
  for (auto [g, e] : {std::pair<int64_t, int64_t>{1, 1}, {1, 2}, {3, 2}, {3, 3}}) {
    INFO("G " << g << " E " << e);
    std::vector<Tensor> in{rand_input({2, g, e}, -2, 2, 40 + g * 10 + e)};
    for (int64_t i = 0; i < e; ++i) in.push_back(rand_input({2, 3, 2, 3}, -1, 1, 50 + i));
    CHECK(check_gradients(
        "gate_softmax_combine",
        [](const std::vector<Tensor>& v) {
          return gate_softmax_combine(v[0], std::vector<Tensor>(v.begin() + 1, v.end())).first;
        },
        in));
  }
}

TEST_CASE("gate_softmax_combine: matches PyTorch") {
  for (const char* name : {"gate_softmax_combine_simple_e2", "gate_softmax_combine_classwise_e3"}) {
    INFO("case " << name);
    run_fixture("gate_softmax_combine", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      std::vector<Tensor> experts;
      for (int i = 0; i < f.params["experts"].get<int>(); ++i) experts.push_back(in.at("expert" + std::to_string(i)));
      return gate_softmax_combine(in.at("gate_logits"), experts).first;
    });
  }
}

TEST_CASE("gate_softmax_combine: the weights are the softmax over experts") {
  Tensor gl = Tensor::from_vector<float>({0.f, 0.f, 1.f, 0.f}, {2, 1, 2});
  Tensor a = Tensor::ones({2, 1, 1, 1}), b = Tensor::zeros({2, 1, 1, 1});
  auto [out, w] = gate_softmax_combine(gl, {a, b});
  CHECK(w.to_vector<float>()[0] == doctest::Approx(0.5f));
  CHECK(w.to_vector<float>()[2] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
  CHECK(out.to_vector<float>()[1] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
}

TEST_CASE("gate_softmax_combine: bad input names the op and the shapes") {
  Tensor e = Tensor::zeros({2, 3, 4, 4});
  expect_error([&] { gate_softmax_combine(Tensor::zeros({2, 1, 3}), {e, e}); }, "[B, G, 2]");
  expect_error([&] { gate_softmax_combine(Tensor::zeros({2, 2, 2}), {e, e}); }, "gate_softmax_combine");
  expect_error([&] { gate_softmax_combine(Tensor::zeros({2, 1, 2}), {e, Tensor::zeros({2, 3, 4, 5})}); },
               "expert 2");
  expect_error([&] { gate_softmax_combine(Tensor::zeros({2, 1, 0}), {}); }, "no experts");
}
