// The pieces of the sparse-MoE evaluation (training/sparse_moe_evaluation.h) by hand: usage
// entropy and CV, the majority label of each token's patch (ignore pixels left out, ties to the
// lower class, an all-ignore patch -1), the routing picture's tint and enlargement, bad input.
// The whole evaluation runs in tests/tools/test_cli_sparse_moe_study.cpp.
// Run: build/tests/test_training -tc='*sparse_moe_evaluation*'
#include <doctest/doctest.h>

#include <cmath>

#include "support/gradcheck.h"
#include "training/sparse_moe_evaluation.h"

using namespace moeseg;
using moeseg::testing::expect_error;

TEST_CASE("sparse_moe_evaluation: usage entropy and CV by hand") {
  MoeLayerUsage uniform{"l", {5, 5, 5, 5}};
  CHECK(uniform.entropy() == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(uniform.cv() == doctest::Approx(0.0));
  MoeLayerUsage one{"l", {0, 12, 0, 0}};
  CHECK(one.entropy() == doctest::Approx(0.0));
  CHECK(one.cv() == doctest::Approx(std::sqrt(3.0)).epsilon(1e-12));   // mean 3, std sqrt(27) -> sqrt(3)
  MoeLayerUsage two{"l", {3, 1}};
  // p = (3/4, 1/4): H = -(0.75 ln 0.75 + 0.25 ln 0.25) / ln 2; CV = 1 / 2.
  CHECK(two.entropy() == doctest::Approx(-(0.75 * std::log(0.75) + 0.25 * std::log(0.25)) / std::log(2.0)).epsilon(1e-12));
  CHECK(two.cv() == doctest::Approx(0.5).epsilon(1e-12));
  CHECK(std::isnan(MoeLayerUsage{"l", {0, 0}}.entropy()));
  CHECK(MoeLayerUsage{"l", {7}}.entropy() == 1.0);
}

TEST_CASE("sparse_moe_evaluation: the majority label of each patch") {
  // 4x4 labels, a 2x2 grid of 2x2 patches; 255 = ignore.
  const std::vector<int64_t> v = {1, 1, 2, 2,     //
                                  1, 3, 2, 255,   //
                                  255, 255, 0, 4,  //
                                  255, 255, 4, 0};
  Tensor l = Tensor::from_vector(v, {4, 4});
  CHECK(patch_majority_labels(l, 2, 2, 5) == std::vector<int64_t>{1, 2, -1, 0});   // 0 vs 4 tied: the lower
  CHECK(patch_majority_labels(l, 1, 1, 5) == std::vector<int64_t>{1});             // per image: 1 and 2 tie at 3: the lower
  expect_error([&] { patch_majority_labels(l, 5, 1, 5); }, "a 5x1 grid over 4x4");
}

TEST_CASE("sparse_moe_evaluation: the routing picture tints each patch by its expert and enlarges") {
  Tensor img = Tensor::zeros({3, 4, 6});   // black
  const auto pic = routing_picture(img, {0, 1, 2, 3, 4, 5}, 2, 3, 2);
  CHECK(pic.height == 8);
  CHECK(pic.width == 12);
  auto expect_tint = [&](int y, int x, int64_t e) {
    const auto c = moe_expert_colour(e);
    for (int ch = 0; ch < 3; ++ch) CHECK(pic.at(y, x)[ch] == static_cast<uint8_t>(std::lround(0.45 * c[ch])));
  };
  expect_tint(0, 0, 0);
  expect_tint(3, 11, 2);   // image (1, 5): row 0 of the grid, column 2
  expect_tint(4, 0, 3);
  expect_tint(7, 11, 5);
  CHECK(moe_expert_colour(0) != moe_expert_colour(1));
  CHECK(moe_expert_colour(12) == moe_expert_colour(0));
  expect_error([&] { routing_picture(img, {0, 1}, 2, 3); }, "2 experts for a 2x3 token grid");
}
