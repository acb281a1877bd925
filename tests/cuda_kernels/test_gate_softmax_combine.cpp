// gate_softmax_combine (kernels/cuda/gate_softmax_combine.cu) through CUDA-on-CPU against the CPU
// backend: w = softmax(z, 2) and out = sum_e w[:, :, e] * x_e with moeseg ops and autograd.
// Awkward shapes: batch 1, E = 2, 3, 5 (5 = two passes of 4 experts), G = 1 and G = C, C = 3
// and 37, HW not a multiple of 4 (scalar path), misaligned pointers, several chunks per plane.
// covers: gate_softmax_combine_forward_kernel gate_softmax_combine_backward_partial_kernel gate_softmax_combine_backward_gate_kernel
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "kernels/elementwise.h"
#include "kernels/softmax.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

struct GscCase {
  int B, G, C, H, W, E;
  bool with_dx;
  size_t pad;   // 1 = misaligned expert/grad pointers: forces the scalar path even when HW % 4 == 0
};

void run_case(const GscCase& k, uint64_t seed) {
  CAPTURE(k.B);
  CAPTURE(k.G);
  CAPTURE(k.C);
  CAPTURE(k.H);
  CAPTURE(k.W);
  CAPTURE(k.E);
  CAPTURE(k.pad);
  const int64_t HW = int64_t(k.H) * k.W;
  const size_t n = size_t(k.B) * k.C * HW;
  const auto z = random_vector(size_t(k.B) * k.G * k.E, seed, -2.f, 2.f);
  std::vector<std::vector<float>> xs;
  for (int e = 0; e < k.E; ++e) xs.push_back(random_vector(n, seed + 1 + e));
  const auto gout = random_vector(n, seed + 100);

  // ---- CPU reference, with autograd ----
  Tensor tz = Tensor::from_vector(z, {k.B, k.G, k.E}).set_requires_grad();
  std::vector<Tensor> tx;
  for (int e = 0; e < k.E; ++e) tx.push_back(Tensor::from_vector(xs[e], {k.B, k.C, k.H, k.W}).set_requires_grad());
  Tensor tw = softmax(tz, 2);
  Tensor tout;
  for (int e = 0; e < k.E; ++e) {
    Tensor term = mul(tw.select(2, e).reshape({k.B, k.G, 1, 1}), tx[e]);
    tout = e == 0 ? term : add(tout, term);
  }
  tout.backward(Tensor::from_vector(gout, {k.B, k.C, k.H, k.W}));

  // ---- kernels ----
  DeviceBuffer<float> dz(z), dout(n), dw(z.size()), dgz(z.size()), dgout(gout);
  std::vector<std::unique_ptr<DeviceBuffer<float>>> dx, dgx;
  std::vector<const float*> xp;
  std::vector<float*> gxp;
  for (int e = 0; e < k.E; ++e) {
    dx.push_back(std::make_unique<DeviceBuffer<float>>(xs[e], k.pad));
    dgx.push_back(std::make_unique<DeviceBuffer<float>>(n, k.pad));
    xp.push_back(dx.back()->ptr());
    gxp.push_back(dgx.back()->ptr());
  }
  coc::gate_softmax_combine_forward(dz.ptr(), xp.data(), dout.ptr(), dw.ptr(), k.B, k.G, k.C, HW, k.E);
  // Forward: E fma per element vs. the CPU's mul + add (<= 1 ulp each) and expf vs std::exp.
  expect_close("weights", dw.download(), tw.to_vector<float>(), 1e-7, 1e-6);
  expect_close("out", dout.download(), tout.to_vector<float>(), 1e-6, 1e-5);

  DeviceBuffer<float> ws(coc::gate_softmax_combine_backward_workspace_floats(k.B, k.C, HW, k.E));
  coc::gate_softmax_combine_backward(dgout.ptr(), dw.ptr(), xp.data(), dgz.ptr(), k.with_dx ? gxp.data() : nullptr,
                                     ws.ptr(), k.B, k.G, k.C, HW, k.E);
  // d gate logits: a sum over up to C*HW products, accumulated in a different order from the
  // CPU's; the tolerance is relative to that sum's scale (sqrt(C*HW) * |x| * |g| ~ a few tens).
  const auto gz = dgz.download();
  expect_close("grad gate logits", gz, tz.grad().to_vector<float>(), 2e-4, 1e-4);
  if (k.with_dx)
    for (int e = 0; e < k.E; ++e)
      expect_close("grad expert " + std::to_string(e), dgx[e]->download(), tx[e].grad().to_vector<float>(), 0, 1e-6);
  else
    for (int e = 0; e < k.E; ++e) {
      // Not written at all: every element still the 0xFF bytes cudaMalloc poisons with (a NaN).
      const auto untouched = dgx[e]->download();
      size_t written = 0;
      for (float v : untouched) {
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        written += bits != 0xffffffffu;
      }
      CHECK_MESSAGE(written == 0, "grad expert ", e, ": ", written, " of ", untouched.size(), " elements written");
    }

  // Deterministic: a second backward gives the same bits.
  coc::gate_softmax_combine_backward(dgout.ptr(), dw.ptr(), xp.data(), dgz.ptr(), k.with_dx ? gxp.data() : nullptr,
                                     ws.ptr(), k.B, k.G, k.C, HW, k.E);
  CHECK(dgz.download() == gz);
}

TEST_CASE("gate_softmax_combine simple gate C3 E2 batch1 scalar path") { run_case({1, 1, 3, 5, 7, 2, true, 0}, 11); }
TEST_CASE("gate_softmax_combine classwise C37 E3 vector path") { run_case({2, 37, 37, 4, 6, 3, true, 0}, 12); }
TEST_CASE("gate_softmax_combine simple gate E5 two expert passes") { run_case({2, 1, 5, 3, 11, 5, true, 0}, 13); }
TEST_CASE("gate_softmax_combine classwise E5 misaligned no expert grads") { run_case({1, 3, 3, 16, 20, 5, false, 1}, 14); }
// HW = 2100 > 4 * 256: two chunks per plane, so stage 2 sums several partials per (b, c).
TEST_CASE("gate_softmax_combine simple gate several chunks per plane") { run_case({1, 1, 3, 30, 70, 2, true, 0}, 15); }

TEST_CASE("gate_softmax_combine rejects bad shapes") {
  CHECK_THROWS_AS(coc::gate_softmax_combine_forward(nullptr, nullptr, nullptr, nullptr, 1, 2, 3, 4, 2), moeseg::Error);
  CHECK_THROWS_AS(coc::gate_softmax_combine_forward(nullptr, nullptr, nullptr, nullptr, 1, 1, 3, 4, 0), moeseg::Error);
}

}  // namespace
