// topk (kernels/cuda/topk.cu) through CUDA-on-CPU against kernels/reduce.h topk (dim -1) and its
// autograd: largest and smallest, k = 1, 3 and cols, rows of 1, 4, 37 and 100 columns (one and
// several elements per lane), many ties (small integers: lower index first), -0 beside +0 (equal),
// NaNs (above every number), -inf. Values, indices and grad x are compared exactly.
// covers: topk_forward_kernel topk_backward_kernel
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/reduce.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

TEST_CASE("topk values, indices and backward match the CPU op") {
  uint64_t seed = 1000;
  struct T {
    int rows, cols, k;
  };
  for (const T& c : {T{5, 1, 1}, T{9, 4, 2}, T{3, 37, 3}, T{2, 100, 7}, T{3, 37, 37}}) {
    for (bool largest : {true, false}) {
      CAPTURE(c.rows);
      CAPTURE(c.cols);
      CAPTURE(c.k);
      CAPTURE(largest);
      auto x = random_vector(size_t(c.rows) * c.cols, seed += 7, -3.f, 3.f);
      for (auto& v : x) v = std::round(v);
      if (c.cols >= 4) {
        x[1] = -0.f;   // row 0: -0 and +0 tie
        x[2] = 0.f;
        x[size_t(c.cols) + 3] = std::numeric_limits<float>::quiet_NaN();   // row 1: two NaNs, -inf
        x[size_t(c.cols) + 0] = std::numeric_limits<float>::quiet_NaN();
        x[size_t(c.cols) + 1] = -INFINITY;
      }
      const auto gv = random_vector(size_t(c.rows) * c.k, seed + 1);
      Tensor tx = Tensor::from_vector(x, {c.rows, c.cols}).set_requires_grad();
      auto [tv, ti] = topk(tx, c.k, -1, largest);
      tv.backward(Tensor::from_vector(gv, {c.rows, c.k}));

      DeviceBuffer<float> dx(x), dv(size_t(c.rows) * c.k), dgv(gv), dgx(random_vector(x.size(), seed + 2));
      DeviceBuffer<int64_t> di(size_t(c.rows) * c.k);
      coc::topk_forward(dx.ptr(), c.rows, c.cols, c.k, largest, dv.ptr(), di.ptr());
      CHECK(di.download() == ti.to_vector<int64_t>());
      expect_close("topk values", dv.download(), tv.to_vector<float>(), 0, 0);
      coc::topk_backward(dgv.ptr(), di.ptr(), c.rows, c.cols, c.k, dgx.ptr());
      expect_close("topk grad x", dgx.download(), tx.grad().to_vector<float>(), 0, 0);
    }
  }
}

TEST_CASE("topk launchers reject bad k") {
  DeviceBuffer<float> b(16);
  DeviceBuffer<int64_t> i(16);
  CHECK_THROWS_AS(coc::topk_forward(b.ptr(), 2, 4, 5, true, b.ptr(), i.ptr()), Error);
  CHECK_THROWS_AS(coc::topk_forward(b.ptr(), 2, 4, 0, true, b.ptr(), i.ptr()), Error);
  CHECK_THROWS_AS(coc::topk_backward(b.ptr(), i.ptr(), 0, 4, 1, b.ptr()), Error);
}

}  // namespace
