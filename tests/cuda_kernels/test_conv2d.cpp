// conv2d_implicit_gemm (kernels/cuda/conv2d_implicit_gemm.cu) through CUDA-on-CPU against the CPU
// backend's kernels (kernels/conv2d_cpu.h): forward (with and without fused bias + ReLU),
// backward-data and backward-weight (+ dbias) on awkward small shapes — batch 1 and 2, channels 3
// and 37, 7x11 and 13x5 images, dilation 1/2/6/12 with matching and with zero padding, stride 2,
// groups 2 and depthwise, 1x1, 3x3 and 3x1 kernels, split-K backward-weight (bit-for-bit
// deterministic). Shapes are tiny: CUDA-on-CPU runs one OS thread per CUDA thread.
// Tolerance per element: float error relative to the sum of |terms| of that element's dot product
// (computed by the CPU reference on |x|, |w|, |dy|), so cancellation never makes it too tight.
// covers: conv2d_igemm_kernel conv2d_wgrad_reduce_kernel conv2d_bias_grad_kernel
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/conv2d_cpu.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;
namespace k = moeseg::coc;

struct ConvCase {
  int n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  bool bias, relu;
};

std::vector<float> absv(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

void run_case(const ConvCase& c, uint64_t seed, bool check_determinism = false) {
  CAPTURE(c.n);
  CAPTURE(c.cin);
  CAPTURE(c.h);
  CAPTURE(c.w);
  CAPTURE(c.cout);
  CAPTURE(c.kh);
  CAPTURE(c.kw);
  CAPTURE(c.sh);
  CAPTURE(c.ph);
  CAPTURE(c.dh);
  CAPTURE(c.dw);
  CAPTURE(c.groups);
  const cpu::Conv2dGeometry g{c.n, c.cin, c.h, c.w, c.cout, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, c.groups};
  k::Conv2dShape s{c.n, c.cin, c.h, c.w, c.cout, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, c.groups};
  REQUIRE(s.h_out() == g.h_out());
  REQUIRE(s.w_out() == g.w_out());
  const int ho = s.h_out(), wo = s.w_out();
  const size_t nx = size_t(c.n) * c.cin * c.h * c.w, ny = size_t(c.n) * c.cout * ho * wo;
  const size_t nw = size_t(c.cout) * (c.cin / c.groups) * c.kh * c.kw;
  const auto x = random_vector(nx, seed), w = random_vector(nw, seed + 1, -1.f, 1.f);
  const auto b = random_vector(size_t(c.cout), seed + 2), dy = random_vector(ny, seed + 3);
  // Float accumulation over K terms: a few eps * sqrt(K) typical, eps * K worst case; 2e-5 is
  // >= 10x the typical error of both sides at these K (<= 333 and <= 130 pixels).
  const double rel = 2e-5;

  // ---- forward ----
  {
    std::vector<float> want(ny), scale(ny);
    cpu::conv2d_forward<float>(g, x.data(), w.data(), c.bias ? b.data() : nullptr, c.relu, want.data());
    const auto ax = absv(x), aw = absv(w), ab = absv(b);
    cpu::conv2d_forward<float>(g, ax.data(), aw.data(), c.bias ? ab.data() : nullptr, false, scale.data());
    DeviceBuffer<float> dx_(x), dw_(w), db_(b), dy_(ny);
    k::conv2d_forward(s, dx_.ptr(), dw_.ptr(), c.bias ? db_.ptr() : nullptr, c.relu, dy_.ptr());
    expect_close_scaled("conv2d_forward", dy_.download(), want, scale, rel);
  }
  // ---- backward-data ----
  {
    std::vector<float> want(nx), scale(nx);
    cpu::conv2d_backward_data<float>(g, dy.data(), w.data(), want.data());
    const auto ady = absv(dy), aw = absv(w);
    cpu::conv2d_backward_data<float>(g, ady.data(), aw.data(), scale.data());
    DeviceBuffer<float> ddy(dy), dw_(w), dgx(random_vector(nx, seed + 9));   // garbage: must be overwritten
    k::conv2d_backward_data(s, ddy.ptr(), dw_.ptr(), dgx.ptr());
    expect_close_scaled("conv2d_backward_data", dgx.download(), want, scale, rel);
  }
  // ---- backward-weight (+ dbias) ----
  {
    std::vector<float> want(nw), scale(nw), want_b(size_t(c.cout)), scale_b(size_t(c.cout));
    cpu::conv2d_backward_weight<float>(g, x.data(), dy.data(), want.data(), c.bias ? want_b.data() : nullptr);
    const auto ax = absv(x), ady = absv(dy);
    cpu::conv2d_backward_weight<float>(g, ax.data(), ady.data(), scale.data(), c.bias ? scale_b.data() : nullptr);
    const size_t ws = k::conv2d_backward_weight_workspace_floats(s);
    DeviceBuffer<float> dx_(x), ddy(dy), dgw(nw), dgb(size_t(c.cout)), dws(ws > 0 ? ws : 1);
    k::conv2d_backward_weight(s, dx_.ptr(), ddy.ptr(), dgw.ptr(), c.bias ? dgb.ptr() : nullptr, dws.ptr());
    const auto got = dgw.download();
    expect_close_scaled("conv2d_backward_weight", got, want, scale, rel);
    if (c.bias) expect_close_scaled("conv2d_backward_weight dbias", dgb.download(), want_b, scale_b, rel);
    if (check_determinism) {
      CHECK(ws > 0);   // the case is chosen to exercise split-K
      DeviceBuffer<float> dgw2(nw);
      k::conv2d_backward_weight(s, dx_.ptr(), ddy.ptr(), dgw2.ptr(), nullptr, dws.ptr());
      CHECK(dgw2.download() == got);   // bit-identical
    }
  }
}

}  // namespace

TEST_CASE("conv2d implicit gemm: dense 3x3, dilation 1/2 with matching padding, bias + relu") {
  // n  cin h   w  cout kh kw sh sw ph pw dh dw grp bias relu
  run_case({1, 3, 7, 11, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true}, 11);
  // K = 37*9 = 333 (21 slices, ragged last one), M = 37 (ragged tile), split-K backward-weight.
  run_case({2, 37, 13, 5, 37, 3, 3, 1, 1, 2, 2, 2, 2, 1, true, false}, 12, /*check_determinism=*/true);
}

TEST_CASE("conv2d implicit gemm: large dilation (ASPP rates) and zero padding") {
  run_case({1, 3, 13, 5, 5, 3, 3, 1, 1, 6, 6, 6, 6, 1, false, false}, 21);       // rate 6, matching pad
  run_case({2, 3, 7, 11, 4, 3, 3, 1, 1, 12, 12, 12, 12, 1, true, true}, 22);    // rate 12: taps mostly padding
  run_case({2, 3, 7, 11, 3, 3, 3, 1, 1, 0, 0, 2, 2, 1, false, false}, 23);      // dilation 2, no padding: 3x7
  run_case({1, 4, 13, 5, 2, 3, 1, 1, 2, 2, 0, 2, 1, 1, true, false}, 24);       // 3x1, anisotropic
}

TEST_CASE("conv2d implicit gemm: stride 2") {
  run_case({2, 3, 7, 11, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, true, true}, 31);
  run_case({1, 3, 13, 5, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, false, false}, 32);      // stride 2 + dilation 2
  run_case({2, 37, 13, 5, 5, 1, 1, 2, 2, 0, 0, 1, 1, 1, true, false}, 33);      // 1x1 stride 2 (downsample)
}

TEST_CASE("conv2d implicit gemm: groups 2 and depthwise") {
  run_case({2, 4, 7, 11, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, true, true}, 41);
  run_case({1, 37, 13, 5, 37, 3, 3, 1, 1, 2, 2, 2, 2, 37, true, false}, 42);    // depthwise, dilation 2
  run_case({1, 6, 7, 11, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2, false, false}, 43);      // grouped 1x1
}

TEST_CASE("conv2d implicit gemm: invalid shapes throw") {
  k::Conv2dShape bad{1, 3, 7, 11, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2};   // groups 2 does not divide 3
  CHECK_THROWS_AS(k::conv2d_forward(bad, nullptr, nullptr, nullptr, false, nullptr), moeseg::Error);
  k::Conv2dShape empty{1, 3, 2, 2, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1};  // 3x3 on 2x2 without padding
  CHECK_THROWS_AS(k::conv2d_backward_data(empty, nullptr, nullptr, nullptr), moeseg::Error);
}
