// The CUDA device path above the kernels, on whatever CUDA device this machine has: the GPU when
// one is usable (the nvcc-built kernels run), else the emulated CUDA device (core/cuda_emulation.h:
// the same .cu kernels through CUDA-on-CPU), switched on by the first case that needs it (or
// already by MOESEG_CUDA_EMULATE=1). Without either (a GPU is seen but no CUDA backend is
// registered) every case reports a skip. Checked: host <-> device copies and device-side views,
// every op against the CPU (forward values and gradients, through its CUDA kernel or its announced
// CPU fallback; which one is checked too), optimiser steps with the CUDA update kernels,
// Module::to, and one FRRN-A training step on "cuda" equal to the same step on the CPU.
#include <doctest/doctest.h>

#include "support/capture_stderr.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "core/cuda_emulation.h"
#include "core/device_probe.h"
#include "core/rng.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/cross_entropy.h"
#include "kernels/device_fallback.h"
#include "kernels/elementwise.h"
#include "kernels/frru.h"
#include "kernels/gate_combine.h"
#include "kernels/linear.h"
#include "kernels/pooling.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "kernels/softmax.h"
#include "kernels/upsample.h"
#include "models/registry.h"
#include <nlohmann/json.hpp>
#include "tests/support/gradcheck.h"
#include "tests/support/skip.h"
#include "training/optimizer.h"
#include "training/schedule.h"

using namespace moeseg;
using moeseg::testing::capture_stderr;

namespace {

void close(const std::string& what, const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  moeseg::testing::expect_close(actual, expected, {atol, rtol}, what);
}

const Device kCuda{DeviceType::CUDA, 0};

// True when a CUDA device is there for this case: the GPU's backend (registered at start-up when a
// GPU is usable) or the emulated one, switched on here if nothing is registered. Otherwise prints
// the skip line (support/skip.h) with the reason; the caller returns.
bool have_cuda_device() {
  if (!device_available(DeviceType::CUDA) && !enable_cuda_emulation()) {
    std::string why;
    const bool gpu = cuda_usable(&why);
    moeseg::testing::skip(gpu ? "a GPU is usable but no CUDA backend is registered in this binary, and the emulated "
                                "device is refused while a GPU is present"
                              : "no CUDA device and the emulated one could not be enabled (" + why + ")");
    return false;
  }
  const std::string kind = cuda_emulated() ? "emulated (kernels/cuda through CUDA-on-CPU)" : "GPU (nvcc kernels)";
  MESSAGE("CUDA device: " << kind);
  return true;
}

// Only for helpers called from a case that has checked have_cuda_device().
Device cuda_device() {
  REQUIRE(device_available(DeviceType::CUDA));
  return kCuda;
}


Tensor random_tensor(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  Tensor t = Tensor::empty(s);
  uniform_(t, lo, hi, g);
  return t;
}

// Runs f on CPU leaves and on CUDA copies of them; compares the outputs and, after a backward
// with the same random upstream gradient, every input's gradient. Float inputs get gradients.
void expect_same_on_cuda(const std::string& what, const std::vector<Tensor>& inputs,
                         const std::function<Tensor(const std::vector<Tensor>&)>& f, double tol = 1e-5) {
  CAPTURE(what);
  const Device cuda = cuda_device();
  std::vector<Tensor> cpu_in, cuda_in;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().clone(), d = t.detach().to(cuda);
    if (is_floating(t.dtype())) {
      c.set_requires_grad();
      d.set_requires_grad();
    }
    cpu_in.push_back(c);
    cuda_in.push_back(d);
  }
  Tensor yc = f(cpu_in), yd = f(cuda_in);
  REQUIRE(yd.device() == cuda);
  REQUIRE(yc.sizes() == yd.sizes());
  close(what + " forward", yd.to(Device{}), yc, tol, tol);
  REQUIRE(yd.requires_grad() == yc.requires_grad());
  if (!yc.requires_grad()) return;   // an output without a gradient (argmax): nothing more to compare
  Tensor g = random_tensor(yc.sizes(), 99).to(yc.dtype());
  yc.backward(g);
  yd.backward(g.to(cuda));
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(i);
    REQUIRE(cpu_in[i].grad().defined() == cuda_in[i].grad().defined());
    if (!cpu_in[i].grad().defined()) continue;   // an input f does not differentiate
    CHECK(cuda_in[i].grad().device() == cuda);
    close(what + " grad " + std::to_string(i), cuda_in[i].grad().to(Device{}), cpu_in[i].grad(), tol, tol);
  }
}

}  // namespace

// The only case here that calls resolve_device (nothing in the library below the trainer does), so
// its first call is the process's first, which is when the emulated device's notice is printed.
TEST_CASE("cuda device: resolve_device returns cuda and says in one line when it is emulated") {
  if (!have_cuda_device()) return;
  Device d, again;
  const std::string first = capture_stderr([&] { d = resolve_device("cuda"); });
  const std::string second = capture_stderr([&] { again = resolve_device("cuda:0"); });
  CHECK(d == kCuda);
  CHECK(again == kCuda);
  CHECK(resolve_device("cpu").is_cpu());
  CHECK_MESSAGE(second.empty(), "a second resolve_device printed '", second, "'");
  if (cuda_emulated()) {
    CHECK_FALSE(cuda_usable());   // the emulated device is never put in front of a GPU
    CHECK_MESSAGE(first.find("emulated") != std::string::npos, "notice: '", first, "'");
    CHECK_MESSAGE(first.find("MOESEG_CUDA_EMULATE") != std::string::npos, "notice: '", first, "'");
    REQUIRE(!first.empty());
    CHECK_MESSAGE(first.find('\n') == first.size() - 1, "not exactly one line: '", first, "'");
  } else {
    CHECK(cuda_usable());
    CHECK_MESSAGE(first.empty(), "resolve_device(cuda) on a usable GPU printed '", first, "'");
  }
}

TEST_CASE("cuda device: copies, strided views, fill and casts on the device") {
  if (!have_cuda_device()) return;
  const Device cuda = kCuda;
  Tensor h = random_tensor({3, 4, 5}, 1);
  Tensor d = h.to(cuda);
  CHECK(d.device() == cuda);
  close("round trip", d.to(Device{}), h, 0, 0);
  // A permuted (strided) device view made contiguous on the device, and a slice of it.
  close("permute", d.permute({2, 0, 1}).contiguous().to(Device{}), h.permute({2, 0, 1}).contiguous(), 0, 0);
  close("slice", d.slice(1, 1, 4, 2).to(Device{}), h.slice(1, 1, 4, 2).contiguous(), 0, 0);
  Tensor z = Tensor::zeros({2, 3}, DType::Float32, cuda);
  z.slice(1, 1, 2).fill_(7.0);
  CHECK(z.to(Device{}).to_vector<float>() == std::vector<float>{0, 7, 0, 0, 7, 0});
  Tensor dd = d.to(DType::Float64);
  CHECK(dd.device() == cuda);
  close("cast", dd.to(Device{}).to(DType::Float32), h, 0, 0);
  // Broadcast copy into a device tensor.
  Tensor row = Tensor::from_vector<float>({1, 2, 3}, {3}, cuda);
  Tensor m = Tensor::empty({2, 3}, DType::Float32, cuda);
  m.copy_(row);
  CHECK(m.to(Device{}).to_vector<float>() == std::vector<float>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("cuda device: ops with CUDA kernels match the CPU, forward and backward") {
  if (!have_cuda_device()) return;
  // conv2d: bias, stride 2, dilation 2, groups, fused ReLU; odd sizes.
  Tensor x = random_tensor({2, 6, 9, 11}, 2), w = random_tensor({4, 3, 3, 3}, 3, -0.3, 0.3), b = random_tensor({4}, 4);
  Conv2dOptions o = Conv2dOptions::same(2, 2, 2, 2);
  expect_same_on_cuda("conv2d", {x, w, b}, [&](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t[2], o); },
                      1e-4);
  Conv2dOptions r = Conv2dOptions::same(1, 1);
  r.fuse_relu = true;
  Tensor w2 = random_tensor({5, 6, 3, 3}, 5, -0.3, 0.3);
  expect_same_on_cuda("conv2d relu", {x, w2}, [&](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], Tensor(), r); },
                      1e-4);
  expect_same_on_cuda("relu", {x}, [](const std::vector<Tensor>& t) { return relu(t[0]); });
  Tensor y = random_tensor({2, 6, 9, 11}, 6);
  expect_same_on_cuda("add", {x, y}, [](const std::vector<Tensor>& t) { return add(t[0], t[1]); });
  expect_same_on_cuda("mul", {x, y}, [](const std::vector<Tensor>& t) { return mul(t[0], t[1]); });
  expect_same_on_cuda("sum", {x}, [](const std::vector<Tensor>& t) { return sum(t[0]); });
  // linear runs as a 1x1 convolution on the device (3-D input: rows are flattened).
  Tensor lx = random_tensor({2, 3, 10}, 14), lw = random_tensor({7, 10}, 15), lb = random_tensor({7}, 16);
  expect_same_on_cuda("linear", {lx, lw, lb}, [](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); },
                      1e-5);
  // Cross-entropy: class weights, ignored pixels, mean / sum / none.
  Tensor logits = random_tensor({2, 5, 7, 3}, 7, -3, 3);
  std::vector<int64_t> tv(2 * 7 * 3);
  for (size_t i = 0; i < tv.size(); ++i) tv[i] = i % 6 == 5 ? 255 : static_cast<int64_t>(i * 7 % 5);
  Tensor target = Tensor::from_vector(tv, {2, 7, 3});
  Tensor cw = random_tensor({5}, 8, 0.5, 2.0);
  for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    expect_same_on_cuda("cross_entropy " + to_string(red), {logits, target, cw},
                        [&](const std::vector<Tensor>& t) {
                          Tensor wv = t[2].detach();   // class weights are not differentiated
                          return cross_entropy(t[0], t[1], wv, 255, red);
                        }, 1e-5);
  }
  // All of the above ran their CUDA kernels, forward and backward. (The list of fallbacks is per
  // process: ctest runs each case alone; in one process the cases before this one take none of these.)
  const auto taken = cpu_fallbacks_taken();
  for (const std::string op : {"conv2d", "relu", "add", "mul", "sum", "linear", "matmul", "cross_entropy"}) {
    CAPTURE(op);
    CHECK(std::find(taken.begin(), taken.end(), op) == taken.end());
  }
}

TEST_CASE("cuda device: spatial ops, top-k and the FRRU pieces run their kernels and match the CPU") {
  if (!have_cuda_device()) return;
  Tensor x = random_tensor({2, 4, 9, 10}, 11);
  expect_same_on_cuda("max_pool2d", {x}, [](const std::vector<Tensor>& t) { return max_pool2d(t[0], 3, 2, 1); });
  expect_same_on_cuda("avg_pool2d", {x}, [](const std::vector<Tensor>& t) { return avg_pool2d(t[0], 3, 2, 1); });
  expect_same_on_cuda("adaptive_avg_pool2d", {x},
                      [](const std::vector<Tensor>& t) { return adaptive_avg_pool2d(t[0], 4, 3); });
  expect_same_on_cuda("upsample bilinear ac", {x},
                      [](const std::vector<Tensor>& t) { return upsample_bilinear2d(t[0], 17, 21, true); });
  expect_same_on_cuda("upsample bilinear", {x},
                      [](const std::vector<Tensor>& t) { return upsample_bilinear2d(t[0], 13, 20, false); });
  expect_same_on_cuda("upsample nearest", {x},
                      [](const std::vector<Tensor>& t) { return upsample_nearest2d(t[0], 18, 15); });
  Tensor y = random_tensor({2, 3, 9, 10}, 12);
  expect_same_on_cuda("concat", {x, y}, [](const std::vector<Tensor>& t) { return concat({t[0], t[1]}, 1); });
  expect_same_on_cuda("topk", {x}, [](const std::vector<Tensor>& t) { return topk(t[0], 3, -1, true).first; });
  expect_same_on_cuda("argmax over channels", {x}, [](const std::vector<Tensor>& t) { return argmax(t[0], 1); }, 0);
  // FRRU pieces at factor 4: z [2, 5, 17, 19] pooled to y's 5 x 5.
  Tensor fy = random_tensor({2, 6, 5, 5}, 13), fz = random_tensor({2, 5, 17, 19}, 14);
  Tensor fw = random_tensor({5, 6, 1, 1}, 15, -0.5, 0.5), fb = random_tensor({5}, 16);
  expect_same_on_cuda("frru_pool_concat", {fy, fz},
                      [](const std::vector<Tensor>& t) { return frru_pool_concat(t[0], t[1], 4); });
  expect_same_on_cuda("frru_conv1x1_upsample_add", {fy, fz, fw, fb},
                      [](const std::vector<Tensor>& t) { return frru_conv1x1_upsample_add(t[0], t[1], t[2], t[3]); },
                      1e-5);
  // The MoE combination, simple (G = 1) and class-wise (G = C) gates, three experts.
  Tensor e0 = random_tensor({2, 4, 5, 6}, 17), e1 = random_tensor({2, 4, 5, 6}, 18), e2 = random_tensor({2, 4, 5, 6}, 19);
  for (int64_t g : {1, 4}) {
    Tensor gl = random_tensor({2, g, 3}, 20 + g, -2, 2);
    expect_same_on_cuda("gate_softmax_combine G=" + std::to_string(g), {gl, e0, e1, e2},
                        [](const std::vector<Tensor>& t) { return gate_softmax_combine(t[0], {t[1], t[2], t[3]}).first; },
                        1e-5);
  }
  const auto taken = cpu_fallbacks_taken();
  for (const std::string op : {"gate_softmax_combine", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "upsample_bilinear2d",
                         "upsample_nearest2d", "concat", "topk", "argmax"}) {
    CAPTURE(op);
    CHECK(std::find(taken.begin(), taken.end(), op) == taken.end());
  }
}

TEST_CASE("cuda device: ops without a kernel fall back to the CPU, say so, and stay correct") {
  if (!have_cuda_device()) return;
  Tensor x = random_tensor({2, 4, 6, 10}, 11);
  expect_same_on_cuda("softmax", {x}, [](const std::vector<Tensor>& t) { return softmax(t[0], 1); });
  Tensor bias = random_tensor({4, 1, 1}, 13);
  expect_same_on_cuda("broadcast add", {x, bias}, [](const std::vector<Tensor>& t) { return add(t[0], t[1]); });
  expect_same_on_cuda("mean over dims", {x}, [](const std::vector<Tensor>& t) { return mean(t[0], {0, 2, 3}); });
  Tensor x64 = random_tensor({1, 2, 5, 6}, 17).to(DType::Float64), w64 = random_tensor({3, 2, 3, 3}, 18).to(DType::Float64);
  expect_same_on_cuda("conv2d float64", {x64, w64},
                      [](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], Tensor(), Conv2dOptions::same(1, 1)); },
                      1e-12);
  const auto taken = cpu_fallbacks_taken();
  for (const std::string op : {"softmax", "add", "mean", "conv2d"}) {
    CAPTURE(op);
    CHECK(std::find(taken.begin(), taken.end(), op) != taken.end());
  }
}

TEST_CASE("cuda device: batch norm in training updates the device's running statistics like the CPU") {
  if (!have_cuda_device()) return;
  const Device cuda = kCuda;
  Tensor x = random_tensor({3, 4, 5, 7}, 21), w = random_tensor({4}, 22), b = random_tensor({4}, 23);
  Tensor rm_c = Tensor::zeros({4}), rv_c = Tensor::ones({4});
  Tensor rm_d = Tensor::zeros({4}, DType::Float32, cuda), rv_d = Tensor::ones({4}, DType::Float32, cuda);
  expect_same_on_cuda("batch_norm2d", {x, w, b}, [&](const std::vector<Tensor>& t) {
    const bool dev = t[0].device().is_cuda();
    return batch_norm2d(t[0], t[1], t[2], dev ? rm_d : rm_c, dev ? rv_d : rv_c, true, 0.1, 1e-5);
  }, 1e-5);
  CHECK(rm_d.device() == cuda);
  close("running_mean", rm_d.to(Device{}), rm_c, 1e-6, 1e-6);
  close("running_var", rv_d.to(Device{}), rv_c, 1e-6, 1e-6);
}

TEST_CASE("cuda device: SGD and Adam steps run the CUDA update kernels and equal the CPU's") {
  if (!have_cuda_device()) return;
  const Device cuda = kCuda;
  for (int which = 0; which < 2; ++which) {
    CAPTURE(which);
    Tensor pc = random_tensor({37}, 31), g = random_tensor({37}, 32);
    pc.set_requires_grad();
    Tensor pd = pc.detach().to(cuda).set_requires_grad();
    std::unique_ptr<Optimizer> oc, od;
    if (which == 0) {
      SGDOptions so;
      so.lr = 0.1, so.momentum = 0.9, so.weight_decay = 1e-3, so.nesterov = true;
      oc = std::make_unique<SGD>(NamedParameters{{"p", pc}}, so);
      od = std::make_unique<SGD>(NamedParameters{{"p", pd}}, so);
    } else {
      AdamOptions ao;
      ao.lr = 0.01, ao.weight_decay = 1e-2;
      oc = std::make_unique<Adam>(NamedParameters{{"p", pc}}, ao);
      od = std::make_unique<Adam>(NamedParameters{{"p", pd}}, ao);
    }
    for (int step = 0; step < 3; ++step) {
      pc.set_grad(g.detach().clone());
      pd.set_grad(g.to(cuda));
      oc->step();
      od->step();
    }
    CHECK(pd.device() == cuda);
    close("param after 3 steps", pd.to(Device{}), pc, 1e-6, 1e-6);
  }
}

namespace {

// One SGD step (momentum, gradient clipping at a norm the gradients exceed) of two copies of a
// model, one on the CPU and one moved to the CUDA device: the loss and every state_dict entry
// after the step must agree to float32 tolerance.
void expect_training_step_matches(const std::function<std::shared_ptr<SegmentationModel>()>& make, int classes) {
  const Device cuda = kCuda;
  auto mc = make(), md = make();
  md->to(cuda);
  CHECK(md->device() == cuda);
  for (auto& [name, t] : md->named_parameters()) {
    CAPTURE(name);
    REQUIRE(t.device() == cuda);
  }
  Tensor x = random_tensor({2, 3, 32, 32}, 41, 0, 1);
  std::vector<int64_t> tv(2 * 32 * 32);
  for (size_t i = 0; i < tv.size(); ++i) tv[i] = static_cast<int64_t>((i / 32 + i % 7) % classes);
  Tensor target = Tensor::from_vector(tv, {2, 32, 32});
  SGDOptions so;
  so.lr = 0.05, so.momentum = 0.9;
  SGD oc(mc->named_parameters(), so), od(md->named_parameters(), so);
  Tensor lc = cross_entropy(mc->forward(x), target);
  Tensor ld = cross_entropy(md->forward(x.to(cuda)), target.to(cuda));
  CHECK(ld.device() == cuda);
  CHECK(ld.item() == doctest::Approx(lc.item()).epsilon(1e-5));
  lc.backward();
  ld.backward();
  std::vector<Tensor> pc_list, pd_list;
  for (auto& [n, t] : mc->named_parameters()) pc_list.push_back(t);
  for (auto& [n, t] : md->named_parameters()) pd_list.push_back(t);
  const double norm_c = clip_grad_norm(pc_list, 0.01), norm_d = clip_grad_norm(pd_list, 0.01);
  CHECK(norm_c > 0.01);   // the clip is active, so the scaled gradients are compared too
  CHECK(norm_d == doctest::Approx(norm_c).epsilon(1e-4));
  oc.step();
  od.step();
  auto pc = mc->state_dict(), pd = md->state_dict();
  for (auto& [name, t] : pc) {
    CAPTURE(name);
    close(name, pd.at(name).to(Device{}), t, 1e-4, 1e-4);
  }
}

}  // namespace

TEST_CASE("cuda device: Module::to moves FRRN-A, and one training step equals the CPU's") {
  if (!have_cuda_device()) return;
  expect_training_step_matches(
      [] {
        ModelOptions mo;
        mo.num_classes = 3, mo.width = 0.0625, mo.seed = 5;
        return make_model("frrn_a", mo);
      },
      3);
}

TEST_CASE("cuda device: an MoE of two FRRN-A experts with a class-wise gate and conv, one training step equals the CPU's") {
  if (!have_cuda_device()) return;
  const nlohmann::json expert = {{"model", "frrn_a"}, {"num_classes", 3}, {"width", 0.0625}, {"seed", 7}};
  const nlohmann::json cfg = {{"type", "moe"},       {"num_classes", 3},      {"experts", {expert, expert}},
                              {"gate", "classwise"}, {"with_conv", true},     {"tap", "frrnlayer4"},
                              {"input_size", {32, 32}}, {"fc_features", 16}, {"seed", 9}};
  expect_training_step_matches([&] { return make_model_from_config(cfg); }, 3);
}
