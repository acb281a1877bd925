// Reductions (kernels/cuda/reduce.cu) through CUDA-on-CPU against kernels/reduce.h: sum of 1,
// 1000 and 70001 elements (the last: 256 capped blocks and a grid-stride loop), run twice for
// bitwise determinism; row-wise max/argmax with ties (first index must win), -inf, rows of 1,
// 5, 130 and 333 columns (block of 128: partial sweeps, idle threads).
// covers: sum_partial_kernel sum_final_kernel rowwise_max_argmax_kernel
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/reduce.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

TEST_CASE("sum_all matches the CPU sum") {
  for (int n : {1, 1000, 70001}) {
    CAPTURE(n);
    const auto x = random_vector(size_t(n), 71 + n);
    DeviceBuffer<float> dx(x), out(1), ws(coc::sum_workspace_floats(n));
    coc::sum_all(dx.ptr(), n, out.ptr(), ws.ptr());
    const float got = out.download()[0];
    double want = 0;   // the exact sum in double
    for (float v : x) want += v;
    const float cpu = sum(Tensor::from_vector(x, {n})).item();
    CAPTURE(got);
    CAPTURE(want);
    CAPTURE(cpu);
    // Double accumulation: the float result is the rounded exact sum, give or take an ulp.
    CHECK(std::fabs(got - want) <= 1e-6 * (1 + std::fabs(want)));
    CHECK(std::fabs(got - cpu) <= 1e-5 * (1 + std::fabs(want)));
    coc::sum_all(dx.ptr(), n, out.ptr(), ws.ptr());
    CHECK(out.download()[0] == got);
  }
}

TEST_CASE("rowwise max argmax picks the first maximum") {
  for (int cols : {1, 5, 130, 333}) {
    CAPTURE(cols);
    const int rows = 3;
    // Small integers: many ties, so "first index" is really exercised.
    auto x = random_vector(size_t(rows) * cols, 81 + cols, -4.f, 4.f);
    for (auto& v : x) v = std::round(v);
    if (cols > 100) {
      x[size_t(cols) + 7] = 50.f;   // row 1: the max twice, the first one must win
      x[size_t(cols) + 101] = 50.f;
      for (int c = 0; c < cols; ++c) x[size_t(2) * cols + c] = -INFINITY;   // row 2: all -inf
    }
    Tensor t = Tensor::from_vector(x, {rows, cols});
    DeviceBuffer<float> dx(x), dmax{size_t(rows)};
    DeviceBuffer<int64_t> darg{size_t(rows)};
    coc::rowwise_max_argmax(dx.ptr(), rows, cols, dmax.ptr(), darg.ptr());
    expect_close("row max", dmax.download(), max(t, 1).to_vector<float>(), 0, 0);
    CHECK(darg.download() == argmax(t, 1).to_vector<int64_t>());
    if (cols > 100) CHECK(darg.download()[1] == 7);
  }
}

}  // namespace
