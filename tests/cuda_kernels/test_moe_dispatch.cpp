// moe_dispatch (kernels/cuda/moe_dispatch.cu) through CUDA-on-CPU against the CPU ops of
// kernels/moe_dispatch.h: the routing plan (one chunk and several, ties, an expert without
// tokens, k = 1 and 2, capacity drops, indices out of range counted), permute, the weighted
// combine (and its weight-1 form, the permute backward), the combine backward and the grouped
// linear's bias kernels and its grouped GEMM (forward, data and weight gradients). Plans, gathers
// and the bias sums are compared exactly; the weighted combine to a few ulp (FMA contraction
// differs between builds); the grouped GEMM to 2 gamma_n of the sum of |terms| (n <= 128 terms,
// gamma_n = n 2^-24: both sides' float32 rounding, any summation order, so on any x86-64 CPU's
// OpenBLAS), except an expert without rows, whose weight gradient must be exactly zero.
// covers: moe_plan_count_kernel moe_plan_scan_kernel moe_plan_scatter_kernel moe_permute_rows_kernel
// covers: moe_combine_rows_kernel moe_combine_backward_rows_kernel moe_combine_backward_weights_kernel
// covers: moe_grouped_bias_fill_kernel moe_grouped_bias_backward_kernel
// covers: moe_grouped_gemm_forward_kernel moe_grouped_gemm_backward_data_kernel
// covers: moe_grouped_gemm_backward_weight_kernel
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/autograd.h"
#include "core/error.h"
#include "kernels/moe_dispatch.h"
#include "tests/cuda_kernels/cuda_test_util.h"
#include "tests/support/moe_routing.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

std::vector<int64_t> routing(int64_t T, int k, int N, uint64_t seed, int unused) {
  return moeseg::testing::random_routing(T, k, N, seed, unused);
}

struct DevicePlan {
  DeviceBuffer<int64_t> requested, counts, offsets, order, position, invalid, ws;
  DevicePlan(int64_t T, int k, int N)
      : requested(N), counts(N), offsets(N + 1), order(std::max<int64_t>(T * k, 1)), position(std::max<int64_t>(T * k, 1)),
        invalid(1), ws(coc::moe_routing_plan_workspace_elems(T, k, N)) {}
};

std::vector<float> absolute(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// 2 gamma_n for n <= 128 float32 terms (see the top of the file).
constexpr double kGemmRel = 2.0 * 128 * 0x1p-24;

}  // namespace

TEST_CASE("moe_dispatch kernels match the CPU ops") {
  struct C {
    int64_t T;
    int k, N;
    int64_t cap;   // 0: none
    int unused;    // an expert nobody picks (-1: none)
    int64_t D;
  };
  uint64_t seed = 77;
  for (const C& c : {C{5, 2, 5, 0, 3, 7}, C{9, 1, 3, 2, -1, 37}, C{300, 2, 7, 70, 4, 33}, C{130, 2, 4, 0, -1, 1},
                     C{1, 1, 1, 0, -1, 3}}) {
    CAPTURE(c.T);
    CAPTURE(c.k);
    CAPTURE(c.N);
    CAPTURE(c.cap);
    const std::vector<int64_t> idx = routing(c.T, c.k, c.N, seed += 11, c.unused);
    MoeRoutingPlan ref = moe_routing_plan(Tensor::from_vector<int64_t>(idx, {c.T, c.k}), c.N,
                                          c.cap > 0 ? std::optional<int64_t>(c.cap) : std::nullopt);
    DeviceBuffer<int64_t> didx(idx);
    DevicePlan p(c.T, c.k, c.N);
    coc::moe_routing_plan(didx.ptr(), c.T, c.k, c.N, c.cap, p.requested.ptr(), p.counts.ptr(), p.offsets.ptr(),
                          p.order.ptr(), p.position.ptr(), p.invalid.ptr(), p.ws.ptr());
    CHECK(p.invalid.download()[0] == 0);
    CHECK(p.requested.download() == ref.requested);
    CHECK(p.counts.download() == ref.counts);
    CHECK(p.offsets.download() == ref.offsets);
    std::vector<int64_t> order = p.order.download();
    order.resize(ref.kept());
    CHECK(order == ref.order);
    CHECK(p.position.download() == ref.position);
    if (c.cap > 0 && c.T > 100) CHECK(ref.dropped > 0);

    const int64_t P = ref.kept(), D = c.D;
    const auto x = random_vector(size_t(c.T * D), seed + 1);
    const auto w = random_vector(size_t(c.T * c.k), seed + 2, 0.f, 1.f);
    const auto dy = random_vector(size_t(c.T * D), seed + 3);
    Tensor tx = Tensor::from_vector(x, {c.T, D}).set_requires_grad();
    Tensor xp = moe_permute(tx, ref);
    DeviceBuffer<float> dx(x), dxp(size_t(std::max<int64_t>(P * D, 1)));
    coc::moe_permute_rows(dx.ptr(), p.order.ptr(), P, c.k, D, dxp.ptr());
    std::vector<float> got_xp = dxp.download();
    got_xp.resize(P * D);
    expect_close("permute", got_xp, xp.to_vector<float>(), 0, 0);

    // combine: yp = the permuted rows (any [P, D] rows do), weights w.
    Tensor typ = xp.detach().clone().set_requires_grad(), tw = Tensor::from_vector(w, {c.T, c.k}).set_requires_grad();
    Tensor y = moe_unpermute_combine(typ, ref, tw);
    auto g = autograd::grad(y, {typ, tw}, Tensor::from_vector(dy, {c.T, D}));
    DeviceBuffer<float> dw(w), ddy(dy), dyo(size_t(c.T * D)), ddyp(size_t(std::max<int64_t>(P * D, 1))),
        ddw(size_t(c.T * c.k));
    coc::moe_combine_rows(dxp.ptr(), dw.ptr(), p.position.ptr(), c.T, c.k, D, dyo.ptr());
    // Σ_slot w·yp in float32: whether the compiler fuses w·yp + acc into an FMA differs between the
    // plain and the sanitizer builds (a few ulp on k = 2 terms), so not bit for bit.
    expect_close("combine", dyo.download(), y.to_vector<float>(), 1e-6, 1e-6);
    coc::moe_combine_backward(ddy.ptr(), dw.ptr(), dxp.ptr(), p.order.ptr(), p.position.ptr(), c.T, c.k, P, D,
                              ddyp.ptr(), ddw.ptr());
    std::vector<float> got_dyp = ddyp.download();
    got_dyp.resize(P * D);
    expect_close("combine grad yp", got_dyp, g[0].to_vector<float>(), 0, 0);
    expect_close("combine grad w", ddw.download(), g[1].to_vector<float>(), 1e-5, 1e-5);

    // The permute backward is the weight-1 combine of the permuted gradient.
    auto gx = autograd::grad(xp, {tx}, Tensor::from_vector(got_xp, {P, D}));
    coc::moe_combine_rows(dxp.ptr(), nullptr, p.position.ptr(), c.T, c.k, D, dyo.ptr());
    expect_close("permute backward", dyo.download(), gx[0].to_vector<float>(), 0, 0);

    // Grouped linear bias: fill, and the per-expert row sums (zero for an expert without rows).
    const int64_t Do = 5;
    const auto b = random_vector(size_t(c.N * Do), seed + 4);
    const auto gyp = random_vector(size_t(std::max<int64_t>(P * Do, 1)), seed + 5);
    DeviceBuffer<float> db(b), dfill(size_t(std::max<int64_t>(P * Do, 1))), dgyp(gyp), dgb(size_t(c.N * Do));
    coc::moe_grouped_bias_fill(db.ptr(), p.offsets.ptr(), c.N, P, Do, dfill.ptr());
    coc::moe_grouped_bias_backward(dgyp.ptr(), p.offsets.ptr(), c.N, Do, dgb.ptr());
    Tensor Wz = Tensor::zeros({c.N, Do, D}).set_requires_grad(), tb = Tensor::from_vector(b, {c.N, Do}).set_requires_grad();
    Tensor yl = moe_grouped_linear(xp.detach(), ref, Wz, tb);   // W = 0: the output is the bias alone
    std::vector<float> got_fill = dfill.download();
    got_fill.resize(P * Do);
    expect_close("bias fill", got_fill, yl.to_vector<float>(), 0, 0);
    std::vector<float> gyp_used(gyp.begin(), gyp.begin() + P * Do);
    auto gb = autograd::grad(yl, {tb}, Tensor::from_vector(gyp_used, {P, Do}));
    expect_close("bias backward", dgb.download(), gb[0].to_vector<float>(), 0, 0);

    // Grouped GEMM onto the bias fill, and its data and weight gradients, against the CPU op; the
    // tolerance scale is the same op on |inputs| with |upstream| (every term a product, no
    // subtraction, so it is the sum of |terms| of each element).
    REQUIRE(D + 1 <= 128);
    REQUIRE(Do <= 128);
    REQUIRE(*std::max_element(ref.counts.begin(), ref.counts.end()) <= 128);
    const auto Wv = random_vector(size_t(c.N * Do * D), seed + 6, -1.f, 1.f);
    auto grouped = [&](const std::vector<float>& xv, const std::vector<float>& wv, const std::vector<float>& bv,
                       const std::vector<float>& gv) {
      Tensor a = Tensor::from_vector(xv, {P, D}).set_requires_grad();
      Tensor W = Tensor::from_vector(wv, {c.N, Do, D}).set_requires_grad();
      Tensor y = moe_grouped_linear(a, ref, W, Tensor::from_vector(bv, {c.N, Do}));
      auto gr = autograd::grad(y, {a, W}, Tensor::from_vector(gv, {P, Do}));
      return std::vector<std::vector<float>>{y.to_vector<float>(), gr[0].to_vector<float>(), gr[1].to_vector<float>()};
    };
    const auto want = grouped(got_xp, Wv, b, gyp_used);
    const auto scale = grouped(absolute(got_xp), absolute(Wv), absolute(b), absolute(gyp_used));
    DeviceBuffer<float> dW(Wv), dgx(size_t(std::max<int64_t>(P * D, 1))), dgW(size_t(c.N * Do * D));
    coc::moe_grouped_bias_fill(db.ptr(), p.offsets.ptr(), c.N, P, Do, dfill.ptr());
    coc::moe_grouped_gemm_forward(dxp.ptr(), dW.ptr(), p.offsets.ptr(), c.N, P, D, Do, dfill.ptr());
    coc::moe_grouped_gemm_backward_data(dgyp.ptr(), dW.ptr(), p.offsets.ptr(), c.N, P, D, Do, dgx.ptr());
    coc::moe_grouped_gemm_backward_weight(dgyp.ptr(), dxp.ptr(), p.offsets.ptr(), c.N, D, Do, dgW.ptr());
    std::vector<float> got_y = dfill.download(), got_gx = dgx.download();
    got_y.resize(P * Do);
    got_gx.resize(P * D);
    const std::vector<float> got_gW = dgW.download();
    expect_close_scaled("grouped gemm forward", got_y, want[0], scale[0], kGemmRel);
    expect_close_scaled("grouped gemm grad xp", got_gx, want[1], scale[1], kGemmRel);
    expect_close_scaled("grouped gemm grad weight", got_gW, want[2], scale[2], kGemmRel);
    for (int e = 0; e < c.N; ++e) {
      if (ref.counts[e] != 0) continue;
      CAPTURE(e);
      const auto first = got_gW.begin() + e * Do * D;
      CHECK(std::all_of(first, first + Do * D, [](float v) { return v == 0.f; }));
      CHECK(std::all_of(want[2].begin() + e * Do * D, want[2].begin() + (e + 1) * Do * D,
                        [](float v) { return v == 0.f; }));
    }
    if (c.unused >= 0) CHECK(ref.counts[c.unused] == 0);   // the case has an expert without rows
  }
}

TEST_CASE("moe_dispatch kernels: out-of-range indices are counted, bad sizes rejected") {
  const std::vector<int64_t> idx = {0, 3, 1, -1, 2, 1};
  DeviceBuffer<int64_t> didx(idx);
  DevicePlan p(3, 2, 3);
  coc::moe_routing_plan(didx.ptr(), 3, 2, 3, 0, p.requested.ptr(), p.counts.ptr(), p.offsets.ptr(), p.order.ptr(),
                        p.position.ptr(), p.invalid.ptr(), p.ws.ptr());
  CHECK(p.invalid.download()[0] == 2);
  CHECK(p.requested.download() == std::vector<int64_t>{1, 2, 1});
  CHECK_THROWS_AS(coc::moe_routing_plan(didx.ptr(), 3, 4, 3, 0, p.requested.ptr(), p.counts.ptr(), p.offsets.ptr(),
                                        p.order.ptr(), p.position.ptr(), p.invalid.ptr(), p.ws.ptr()),
                  Error);
  CHECK_THROWS_AS(coc::moe_permute_rows(nullptr, nullptr, 1, 0, 1, nullptr), Error);
  CHECK_THROWS_AS(coc::moe_grouped_gemm_forward(nullptr, nullptr, nullptr, 0, 1, 1, 1, nullptr), Error);
  CHECK_THROWS_AS(coc::moe_grouped_gemm_backward_data(nullptr, nullptr, nullptr, 2, -1, 1, 1, nullptr), Error);
  CHECK_THROWS_AS(coc::moe_grouped_gemm_backward_weight(nullptr, nullptr, nullptr, 2, 1, -1, nullptr), Error);
}
