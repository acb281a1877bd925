// Tests of the FRRU ops (kernels/frru.h): float64 finite-difference gradients through every
// argument, PyTorch fixtures (tools/fixtures/cases_nn.py, _frru_cases: torch.cat + max_pool2d and
// conv2d + interpolate(align_corners=True) + add), and errors that name the op and shapes.
// Run: ./build/tests/test_ops -tc='frru*'
#include <doctest/doctest.h>

#include "kernels/frru.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace moeseg;
using namespace moeseg::testing;

MOESEG_OP_TEST("frru_pool_concat", "grad");
MOESEG_OP_TEST("frru_pool_concat", "torch");
MOESEG_OP_TEST("frru_conv1x1_upsample_add", "grad");
MOESEG_OP_TEST("frru_conv1x1_upsample_add", "torch");

TEST_CASE("frru_pool_concat: gradients") {
  for (int64_t f : {2, 4}) {
    INFO("factor " << f);
    const int64_t H = 4 * f - 1, W = 3 * f + 1;   // odd full-resolution sizes
    const int64_t h = (H - 1) / f + 1, w = (W - 1) / f + 1;
    CHECK(check_gradients(
        "frru_pool_concat", [=](const std::vector<Tensor>& v) { return frru_pool_concat(v[0], v[1], f); },
        {rand_input({2, 3, h, w}, -1, 1, 10 + f), rand_input({2, 2, H, W}, -1, 1, 20 + f)}));
  }
}

TEST_CASE("frru_conv1x1_upsample_add: gradients") {
  CHECK(check_gradients(
      "frru_conv1x1_upsample_add",
      [](const std::vector<Tensor>& v) { return frru_conv1x1_upsample_add(v[0], v[1], v[2], v[3]); },
      {rand_input({2, 3, 3, 4}, -1, 1, 31), rand_input({2, 2, 6, 7}, -1, 1, 32), rand_input({2, 3, 1, 1}, -1, 1, 33),
       rand_input({2}, -1, 1, 34)}));
}

TEST_CASE("frru_pool_concat: matches PyTorch") {
  for (const char* name : {"frru_pool_concat_f2", "frru_pool_concat_f4"}) {
    INFO("case " << name);
    run_fixture("frru_pool_concat", name, [](std::map<std::string, Tensor>& in, const Fixture& f) {
      return frru_pool_concat(in.at("y"), in.at("z"), f.params["factor"]);
    });
  }
}

TEST_CASE("frru_conv1x1_upsample_add: matches PyTorch") {
  for (const char* name : {"frru_conv1x1_upsample_add_x2", "frru_conv1x1_upsample_add_odd"}) {
    INFO("case " << name);
    run_fixture("frru_conv1x1_upsample_add", name, [](std::map<std::string, Tensor>& in, const Fixture&) {
      return frru_conv1x1_upsample_add(in.at("y"), in.at("z"), in.at("weight"), in.at("bias"));
    });
  }
}

TEST_CASE("frru: bad input names the op and the shapes") {
  Tensor y = Tensor::zeros({1, 3, 4, 4}), z = Tensor::zeros({1, 2, 8, 8});
  expect_error([&] { frru_pool_concat(y, Tensor::zeros({1, 2, 12, 12}), 2); }, "frru_pool_concat");
  expect_error([&] { frru_pool_concat(y, Tensor::zeros({2, 2, 8, 8}), 2); }, "frru_pool_concat");
  expect_error([&] { frru_pool_concat(y, z, 0); }, "factor");
  expect_error([&] { frru_conv1x1_upsample_add(y, z, Tensor::zeros({2, 4, 1, 1}), Tensor()); }, "[2, 3, 1, 1]");
  expect_error([&] { frru_conv1x1_upsample_add(Tensor::zeros({1, 3, 9, 9}), z, Tensor::zeros({2, 3, 1, 1}), Tensor()); },
               "frru_conv1x1_upsample_add");
}
