// Element-wise kernels (kernels/cuda/elementwise.cu) through CUDA-on-CPU against the CPU backend:
// relu forward/backward (autograd of kernels/elementwise.h relu), add, mul, and the SGD / Adam /
// AdamW updates against training/optimizer.h over three steps. Sizes 1, 3, 1029 (vector path
// plus a tail), and a misaligned pointer (scalar path). Inputs include exact zeros for relu.
// covers: relu_forward_kernel relu_backward_kernel binary_kernel sgd_step_kernel adam_step_kernel
#include <doctest/doctest.h>

#include "kernels/elementwise.h"
#include "training/optimizer.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

const int kSizes[] = {1, 3, 1029};

std::vector<float> with_zeros(std::vector<float> v) {
  for (size_t i = 0; i < v.size(); i += 5) v[i] = 0.f;
  return v;
}

TEST_CASE("relu forward and backward match the CPU") {
  for (int n : kSizes)
    for (size_t pad : {size_t(0), size_t(1)}) {
      CAPTURE(n);
      CAPTURE(pad);
      const auto x = with_zeros(random_vector(size_t(n), 31 + n));
      const auto g = random_vector(size_t(n), 32 + n);
      Tensor tx = Tensor::from_vector(x, {n}).set_requires_grad();
      Tensor ty = relu(tx);
      ty.backward(Tensor::from_vector(g, {n}));
      DeviceBuffer<float> dx(x, pad), dy(size_t(n), pad), dg(g, pad), dgx(size_t(n), pad);
      coc::relu_forward(dx.ptr(), dy.ptr(), n);
      coc::relu_backward(dg.ptr(), dx.ptr(), dgx.ptr(), n);
      // Exact: a select, no arithmetic.
      expect_close("relu", dy.download(), ty.to_vector<float>(), 0, 0);
      expect_close("relu grad", dgx.download(), tx.grad().to_vector<float>(), 0, 0);
    }
}

TEST_CASE("add and mul match the CPU") {
  for (int n : kSizes)
    for (size_t pad : {size_t(0), size_t(3)}) {
      CAPTURE(n);
      CAPTURE(pad);
      const auto a = random_vector(size_t(n), 41 + n), b = random_vector(size_t(n), 42 + n);
      Tensor ta = Tensor::from_vector(a, {n}), tb = Tensor::from_vector(b, {n});
      DeviceBuffer<float> da(a, pad), db(b, 0), dout(size_t(n), pad);
      // One correctly rounded IEEE operation on both sides: exact.
      coc::add_forward(da.ptr(), db.ptr(), dout.ptr(), n);
      expect_close("add", dout.download(), add(ta, tb).to_vector<float>(), 0, 0);
      coc::mul_forward(da.ptr(), db.ptr(), dout.ptr(), n);
      expect_close("mul", dout.download(), mul(ta, tb).to_vector<float>(), 0, 0);
    }
}

// Three optimiser steps on the CPU optimiser and the kernel, with fresh gradients each step.
// The kernels use the CPU code's FMAs and scalars; under g++ both compile without contraction,
// so agreement is to an ulp or two (tolerance 2e-7 relative: values are O(1)).
template <class MakeOpt, class KernelStep>
void check_optimizer(const std::string& what, int n, bool with_buf2, bool with_buf3, MakeOpt make_opt, KernelStep kstep) {
  CAPTURE(what);
  CAPTURE(n);
  const auto p0 = random_vector(size_t(n), 51 + n);
  Tensor tp = Tensor::from_vector(p0, {n}).set_requires_grad();
  auto opt = make_opt(NamedParameters{{"p", tp}});
  DeviceBuffer<float> dp(p0), dg{size_t(n)}, b1(std::vector<float>(size_t(n), 0.f)), b2(std::vector<float>(size_t(n), 0.f)),
      b3(std::vector<float>(size_t(n), 0.f));
  for (int step = 1; step <= 3; ++step) {
    const auto g = random_vector(size_t(n), 60 + step);
    tp.set_grad(Tensor::from_vector(g, {n}));
    opt.step();
    dg.upload(g);
    kstep(dp.ptr(), dg.ptr(), b1.ptr(), with_buf2 ? b2.ptr() : nullptr, with_buf3 ? b3.ptr() : nullptr, n, step);
  }
  expect_close(what + " param", dp.download(), tp.to_vector<float>(), 1e-7, 2e-7);
}

TEST_CASE("sgd step matches torch rule") {
  for (int n : kSizes)
    for (bool nesterov : {false, true}) {
      SGDOptions o;
      o.lr = 0.05;
      o.momentum = 0.9;
      o.dampening = nesterov ? 0.0 : 0.1;   // torch: Nesterov needs zero dampening
      o.weight_decay = 1e-2;
      o.nesterov = nesterov;
      check_optimizer(nesterov ? "sgd nesterov" : "sgd momentum", n, false, false,
                      [&](NamedParameters ps) { return SGD(std::move(ps), o); },
                      [&](float* p, const float* g, float* buf, float*, float*, int nn, int step) {
                        coc::sgd_step(p, g, buf, nn, o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov, step == 1);
                      });
    }
  SGDOptions plain;
  plain.lr = 0.1;
  check_optimizer("sgd plain", 1029, false, false, [&](NamedParameters ps) { return SGD(std::move(ps), plain); },
                  [&](float* p, const float* g, float*, float*, float*, int nn, int step) {
                    coc::sgd_step(p, g, nullptr, nn, plain.lr, 0.0, 0.0, 0.0, false, step == 1);
                  });
}

TEST_CASE("adam and adamw steps match torch rule") {
  for (int n : kSizes)
    for (int variant = 0; variant < 3; ++variant) {   // Adam + L2, Adam amsgrad, AdamW
      AdamOptions o;
      o.lr = 1e-2;
      o.weight_decay = variant == 1 ? 0.0 : 1e-2;
      o.amsgrad = variant == 1;
      const bool decoupled = variant == 2;
      const char* name = variant == 0 ? "adam" : variant == 1 ? "adam amsgrad" : "adamw";
      auto kstep = [&](float* p, const float* g, float* m, float* v, float* vmax, int nn, int step) {
        coc::adam_step(p, g, m, v, vmax, nn, step, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, decoupled);
      };
      if (decoupled)
        check_optimizer(name, n, true, false, [&](NamedParameters ps) { return AdamW(std::move(ps), o); }, kstep);
      else
        check_optimizer(name, n, true, o.amsgrad, [&](NamedParameters ps) { return Adam(std::move(ps), o); }, kstep);
    }
}

}  // namespace
