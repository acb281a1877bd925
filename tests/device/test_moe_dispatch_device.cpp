// The CUDA path of the sparse-MoE dispatch ops (kernels/moe_dispatch.h) on the CUDA device (the
// GPU when this binary has its backend, else the emulated one: kernels/cuda through CUDA-on-CPU),
// against the CPU backend: moe_routing_plan of a CUDA idx (built on the device, equal to the host
// plan field by field), moe_permute, moe_grouped_linear and moe_unpermute_combine forward and
// backward (gradients of x, yp, w, xp, weight, bias), with capacity drops and an expert without
// tokens (its weight and bias gradients exactly zero); that none of them took the CPU fallback,
// that one plan is uploaded once for forward and backward, that float64 falls back and says so.
// Tolerance: |cuda - cpu| <= 2 gamma_n * (sum of |terms|) + 1e-7 with gamma_n = n 2^-24 for
// n <= 128 terms; the sum of |terms| is the same op run on the CPU on |inputs| with |upstream|
// (every op here is a sum of products). It bounds both sides' float32 rounding in any summation
// order, so it holds on any x86-64 CPU's OpenBLAS. The checker is checked by a planted error.
// Run: ./build/tests/test_device -tc='moe dispatch*'
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/cuda_emulation.h"
#include "core/device_probe.h"
#include "core/rng.h"
#include "kernels/device_fallback.h"
#include "kernels/moe_dispatch.h"
#include "kernels/reduce.h"
#include "tests/support/capture_stderr.h"
#include "tests/support/moe_routing.h"
#include "tests/support/skip.h"

using namespace moeseg;

namespace {

const Device kCuda{DeviceType::CUDA, 0};
constexpr double kRel = 2.0 * 128 * 0x1p-24;   // 2 gamma_n, n <= 128 terms
constexpr double kAbs = 1e-7;
const char* const kMoeOps[] = {"moe_routing_plan", "moe_permute", "moe_unpermute_combine", "moe_grouped_linear"};

bool have_cuda_device() {
  if (!device_available(DeviceType::CUDA) && !enable_cuda_emulation()) {
    moeseg::testing::skip("no CUDA device and the emulated one could not be enabled");
    return false;
  }
  return true;
}

bool taken(const std::string& op) {
  const auto t = cpu_fallbacks_taken();
  return std::find(t.begin(), t.end(), op) != t.end();
}

Tensor random_tensor(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  Tensor t = Tensor::empty(s);
  uniform_(t, lo, hi, g);
  return t;
}

Tensor absolute(const Tensor& t) {
  std::vector<float> v = t.to_vector<float>();
  for (float& x : v) x = std::fabs(x);
  return Tensor::from_vector(v, t.sizes());
}

// Number of elements with |got - want| > rel * scale + abs, and the worst one, in words.
struct ScaledReport {
  int64_t bad = 0;
  std::string text;
};
ScaledReport compare_scaled(const Tensor& got, const Tensor& want, const Tensor& scale, double rel, double abs) {
  ScaledReport r;
  const std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>(), s = scale.to_vector<float>();
  if (g.size() != w.size() || s.size() != w.size()) {
    r.bad = static_cast<int64_t>(w.size()) + 1;
    r.text = "sizes " + std::to_string(g.size()) + " / " + std::to_string(w.size()) + " / " + std::to_string(s.size());
    return r;
  }
  double worst = -1;
  size_t at = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double err = std::fabs(double(g[i]) - double(w[i])), tol = rel * s[i] + abs;
    if (!(err <= tol)) ++r.bad;   // NaN counts as bad
    const double ratio = std::isnan(err) ? INFINITY : err / tol;
    if (ratio > worst) worst = ratio, at = i;
  }
  std::ostringstream os;
  os << r.bad << " of " << w.size() << " beyond tolerance; worst [" << at << "] got " << g[at] << " want " << w[at]
     << " (error / tolerance " << worst << ")";
  r.text = os.str();
  return r;
}

void expect_scaled(const std::string& what, const Tensor& got, const Tensor& want, const Tensor& scale) {
  const ScaledReport r = compare_scaled(got, want, scale, kRel, kAbs);
  CHECK_MESSAGE(r.bad == 0, what, ": ", r.text);
}

using Op = std::function<Tensor(const std::vector<Tensor>&, bool on_cuda)>;

// f on CPU leaves, on CUDA copies of them, and on |CPU leaves| (the scale); outputs compared, then
// every input's gradient after a backward with the same random upstream gradient (|g| for the
// scale). Returns the CUDA gradients, on the host.
std::vector<Tensor> expect_same_on_cuda(const std::string& what, const std::vector<Tensor>& inputs, const Op& f,
                                        uint64_t seed) {
  CAPTURE(what);
  std::vector<Tensor> cpu_in, cuda_in, abs_in;
  for (const Tensor& t : inputs) {
    cpu_in.push_back(t.detach().clone().set_requires_grad());
    cuda_in.push_back(t.detach().to(kCuda).set_requires_grad());
    abs_in.push_back(absolute(t).set_requires_grad());
  }
  Tensor yc = f(cpu_in, false), yd = f(cuda_in, true), ys = f(abs_in, false);
  REQUIRE(yd.device() == kCuda);
  REQUIRE(yd.sizes() == yc.sizes());
  expect_scaled(what + " forward", yd.to(Device{}), yc, ys);
  Tensor g = random_tensor(yc.sizes(), seed);
  yc.backward(g);
  yd.backward(g.to(kCuda));
  ys.backward(absolute(g));
  std::vector<Tensor> out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(i);
    REQUIRE(cpu_in[i].grad().defined());
    REQUIRE(cuda_in[i].grad().defined());
    CHECK(cuda_in[i].grad().device() == kCuda);
    out.push_back(cuda_in[i].grad().to(Device{}));
    expect_scaled(what + " grad " + std::to_string(i), out.back(), cpu_in[i].grad(), abs_in[i].grad());
  }
  return out;
}

// Top-k indices [T, k] over N experts, distinct per token, never `unused`.
Tensor routing(int64_t T, int k, int N, int unused, uint64_t seed) {
  return Tensor::from_vector(moeseg::testing::random_routing(T, k, N, seed, unused), {T, k});
}

void expect_same_plan(const MoeRoutingPlan& d, const MoeRoutingPlan& h) {
  CHECK(d.tokens == h.tokens);
  CHECK(d.k == h.k);
  CHECK(d.experts == h.experts);
  CHECK(d.capacity == h.capacity);
  CHECK(d.requested == h.requested);
  CHECK(d.counts == h.counts);
  CHECK(d.offsets == h.offsets);
  CHECK(d.order == h.order);
  CHECK(d.position == h.position);
  CHECK(d.dropped == h.dropped);
}

}  // namespace

TEST_CASE("moe dispatch on the cuda device: the scaled checker catches a planted one-element error") {
  Tensor want = random_tensor({40}, 3), scale = absolute(want);
  CHECK(compare_scaled(want, want, scale, kRel, kAbs).bad == 0);
  for (double f : {1.05, -1.05, 0.95}) {
    CAPTURE(f);
    std::vector<float> g = want.to_vector<float>();
    g[17] = static_cast<float>(g[17] + f * (kRel * std::fabs(g[17]) + kAbs));
    const ScaledReport r = compare_scaled(Tensor::from_vector(g, {40}), want, scale, kRel, kAbs);
    CHECK(r.bad == (f > 1 || f < -1 ? 1 : 0));
    if (r.bad) CHECK_MESSAGE(r.text.find("[17]") != std::string::npos, r.text);
  }
  std::vector<float> g = want.to_vector<float>();
  g[3] = NAN;
  CHECK(compare_scaled(Tensor::from_vector(g, {40}), want, scale, kRel, kAbs).bad == 1);
  CHECK(compare_scaled(want.narrow(0, 0, 39), want, scale, kRel, kAbs).bad > 0);
}

TEST_CASE("moe dispatch on the cuda device: the ops match the CPU forward and backward, drops and an idle expert") {
  if (!have_cuda_device()) return;
  // In one process the fallback list only grows: a case that took one of these fallbacks earlier
  // would blind the check at the end.
  for (const char* op : kMoeOps) {
    CAPTURE(op);
    REQUIRE_FALSE(taken(op));
  }
  const int64_t T = 23, D = 13, Do = 6, cap = 7;
  const int k = 2, N = 5, idle = 3;
  Tensor idx = routing(T, k, N, idle, 41);
  const MoeRoutingPlan host = moe_routing_plan(idx, N, cap);
  const MoeRoutingPlan dev = moe_routing_plan(idx.to(kCuda), N, cap);
  expect_same_plan(dev, host);
  REQUIRE(host.dropped > 0);            // the capacity drops pairs
  REQUIRE(host.counts[idle] == 0);      // and one expert gets no token
  // The device-built plan's kernel copies are already there: nothing to upload.
  CHECK(dev.device_cache.order.defined());
  CHECK(dev.device_cache.device == kCuda);
  CHECK(dev.device_cache.uploads == 0);

  // Each op on its own leaves, so every gradient is checked: x; yp and w; xp, weight and bias.
  const MoeRoutingPlan* plans[2] = {&host, &dev};
  auto plan_for = [&](bool on_cuda) -> const MoeRoutingPlan& { return *plans[on_cuda]; };
  expect_same_on_cuda("moe_permute", {random_tensor({T, D}, 1)},
                      [&](const std::vector<Tensor>& t, bool c) { return moe_permute(t[0], plan_for(c)); }, 11);
  Tensor w = random_tensor({T, k}, 2, 0.1, 1.0);
  expect_same_on_cuda("moe_unpermute_combine", {random_tensor({host.kept(), Do}, 3), w},
                      [&](const std::vector<Tensor>& t, bool c) {
                        return moe_unpermute_combine(t[0], plan_for(c), t[1]);
                      }, 12);
  const std::vector<Tensor> lin = {random_tensor({host.kept(), D}, 4), random_tensor({N, Do, D}, 5),
                                   random_tensor({N, Do}, 6)};
  const auto g = expect_same_on_cuda(
      "moe_grouped_linear", lin,
      [&](const std::vector<Tensor>& t, bool c) { return moe_grouped_linear(t[0], plan_for(c), t[1], t[2]); }, 13);
  // The idle expert's weight and bias gradients are exact zeros (no rows: nothing computed).
  const std::vector<float> gw = g[1].narrow(0, idle, 1).to_vector<float>();
  const std::vector<float> gb = g[2].narrow(0, idle, 1).to_vector<float>();
  CHECK(std::all_of(gw.begin(), gw.end(), [](float v) { return v == 0.f; }));
  CHECK(std::all_of(gb.begin(), gb.end(), [](float v) { return v == 0.f; }));
  // ... while an expert with rows gets a gradient.
  const std::vector<float> gw0 = g[1].narrow(0, 0, 1).to_vector<float>();
  CHECK(std::any_of(gw0.begin(), gw0.end(), [](float v) { return v != 0.f; }));

  // The whole chain, as a layer runs it: x -> permute -> grouped linear (no bias) -> combine.
  expect_same_on_cuda("permute, grouped linear, combine", {random_tensor({T, D}, 7), random_tensor({N, Do, D}, 8), w},
                      [&](const std::vector<Tensor>& t, bool c) {
                        const MoeRoutingPlan& p = plan_for(c);
                        return moe_unpermute_combine(moe_grouped_linear(moe_permute(t[0], p), p, t[1]), p, t[2]);
                      }, 14);
  CHECK(dev.device_cache.uploads == 0);   // every op and backward read the device-built copies
  for (const char* op : kMoeOps) {
    CAPTURE(op);
    CHECK_FALSE(taken(op));
  }
}

TEST_CASE("moe dispatch on the cuda device: a host plan is uploaded once for forward and backward") {
  if (!have_cuda_device()) return;
  const int64_t T = 9, D = 4;
  const MoeRoutingPlan plan = moe_routing_plan(routing(T, 2, 3, -1, 5), 3);
  CHECK_FALSE(plan.device_cache.order.defined());
  Tensor x = random_tensor({T, D}, 1).to(kCuda).set_requires_grad();
  Tensor W = random_tensor({3, 5, D}, 2).to(kCuda).set_requires_grad();
  Tensor w = random_tensor({T, 2}, 3).to(kCuda).set_requires_grad();
  Tensor y = moe_unpermute_combine(moe_grouped_linear(moe_permute(x, plan), plan, W), plan, w);
  CHECK(plan.device_cache.uploads == 1);
  sum(y).backward();
  CHECK(plan.device_cache.uploads == 1);
  CHECK(x.grad().defined());
  CHECK(plan.device_cache.device == kCuda);
  // A copy starts empty (it may be edited); a move keeps the device copies.
  MoeRoutingPlan copy = plan;
  CHECK_FALSE(copy.device_cache.order.defined());
  CHECK(copy.device_cache.uploads == 0);
  MoeRoutingPlan moved = std::move(copy);
  moe_permute(x.detach(), moved);
  MoeRoutingPlan moved_again = std::move(moved);
  CHECK(moved_again.device_cache.order.defined());
  CHECK(moved_again.device_cache.uploads == 1);
}

TEST_CASE("moe dispatch on the cuda device: a wrong device plan is caught by the comparison") {
  if (!have_cuda_device()) return;
  // The checker above run on a planted routing bug: the device copy of order shifted by one slot.
  const int64_t T = 11, D = 3;
  Tensor idx = routing(T, 2, 4, -1, 9);
  const MoeRoutingPlan host = moe_routing_plan(idx, 4);
  const MoeRoutingPlan dev = moe_routing_plan(idx.to(kCuda), 4);
  std::vector<int64_t> shifted = host.order;
  std::rotate(shifted.begin(), shifted.begin() + 1, shifted.end());
  dev.device_cache.order = Tensor::from_vector(shifted, {host.kept()}, kCuda);
  Tensor x = random_tensor({T, D}, 4);
  const Tensor want = moe_permute(x, host);
  const ScaledReport r = compare_scaled(moe_permute(x.to(kCuda), dev).to(Device{}), want, absolute(want), kRel, kAbs);
  CHECK_MESSAGE(r.bad > 0, r.text);
}

TEST_CASE("moe dispatch on the cuda device: an expert index out of range in a CUDA idx throws naming it") {
  if (!have_cuda_device()) return;
  Tensor idx = Tensor::from_vector<int64_t>({0, 1, 2, 7, 1, 0}, {3, 2}).to(kCuda);
  CHECK_THROWS_WITH_AS(moe_routing_plan(idx, 4), doctest::Contains("expert index 7 at token 1 slot 1"), Error);
  Tensor neg = Tensor::from_vector<int64_t>({0, -2}, {1, 2}).to(kCuda);
  CHECK_THROWS_WITH_AS(moe_routing_plan(neg, 4), doctest::Contains("expert index -2"), Error);
}

TEST_CASE("moe dispatch on the cuda device: float64 falls back to the CPU, says so, and stays correct") {
  if (!have_cuda_device()) return;
  const int64_t T = 7, D = 3;
  const MoeRoutingPlan plan = moe_routing_plan(routing(T, 2, 3, -1, 21), 3, 4);
  Tensor x = random_tensor({T, D}, 1).to(DType::Float64), W = random_tensor({3, 2, D}, 2).to(DType::Float64);
  Tensor w = random_tensor({T, 2}, 3).to(DType::Float64);
  auto run = [&](Device d) {
    return moe_unpermute_combine(moe_grouped_linear(moe_permute(x.to(d), plan), plan, W.to(d)), plan, w.to(d));
  };
  const Tensor want = run(Device{});
  Tensor got;
  const std::string err = moeseg::testing::capture_stderr([&] { got = run(kCuda); });
  CHECK(got.device() == kCuda);
  const std::vector<double> a = got.to(Device{}).to_vector<double>(), b = want.to_vector<double>();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-12));
  for (const char* op : {"moe_permute", "moe_unpermute_combine", "moe_grouped_linear"}) {
    CAPTURE(op);
    CHECK(taken(op));
  }
  // Printed only by the first fallback of each op in the process (ctest runs this case alone).
  if (!err.empty()) CHECK_MESSAGE(err.find("moe_permute has no CUDA kernel for float64") != std::string::npos, err);
}
