// FRRN building blocks: residual unit, FRRU and FRR layer (see frrn_blocks.h).
#include "models/frrn_blocks.h"

#include <string>

#include "kernels/elementwise.h"
#include "kernels/pooling.h"
#include "kernels/shape_ops.h"
#include "kernels/frru.h"
#include "kernels/upsample.h"
#include "models/frrn_trace.h"

namespace moeseg {

ForwardTrace*& current_forward_trace() {
  thread_local ForwardTrace* t = nullptr;
  return t;
}

namespace {
std::shared_ptr<Conv2d> conv3x3(int64_t in, int64_t out, Generator& gen) {
  return std::make_shared<Conv2d>(in, out, 3, 1, 1, 1, 1, /*bias=*/false, gen);
}
}  // namespace

ResidualUnit::ResidualUnit(int64_t c, Generator& gen) : Module("ResidualUnit") {
  conv1 = register_module("conv1", conv3x3(c, c, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(c));
  conv2 = register_module("conv2", conv3x3(c, c, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(c));
}

Tensor ResidualUnit::forward(const Tensor& x) {
  Tensor h = relu(bn1->forward(conv1->forward(x)));
  return relu(add(bn2->forward(conv2->forward(h)), x));
}

FRRUnit::FRRUnit(int64_t y_in, int64_t y_out, int64_t zc, int64_t factor, Generator& gen)
    : Module("FRRUnit"), factor_(factor) {
  conv1 = register_module("conv1", conv3x3(y_in + zc, y_out, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(y_out));
  conv2 = register_module("conv2", conv3x3(y_out, y_out, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(y_out));
  convz = register_module("convz", std::make_shared<Conv2d>(y_out, zc, 1, 1, 0, 1, 1, /*bias=*/true, gen));
}

std::pair<Tensor, Tensor> FRRUnit::forward2(const Tensor& y, const Tensor& z) {
  // kernels/frru.h: the pooled residual stream joins y in one op, and z's update (1x1 conv to z's
  // channels, bilinear upsampling, residual add) is one op, so a GPU runs each as one kernel.
  Tensor h = relu(bn1->forward(conv1->forward(frru_pool_concat(y, z, factor_))));
  Tensor y_out = relu(bn2->forward(conv2->forward(h)));
  return {y_out, frru_conv1x1_upsample_add(y_out, z, convz->weight, convz->bias)};
}

FRRLayer::FRRLayer(int64_t y_in, int64_t y_out, int64_t num_units, int64_t zc, int64_t factor, Generator& gen)
    : Module("FRRLayer") {
  MOESEG_CHECK(num_units >= 1, "FRRLayer: needs at least one unit, got ", num_units);
  units.push_back(register_module("frr1", std::make_shared<FRRUnit>(y_in, y_out, zc, factor, gen)));
  // The reference keeps the remaining units in an nn.ModuleList "nexts": children "0", "1", ...
  auto nexts = register_module("nexts", std::make_shared<Module>("ModuleList"));
  for (int64_t i = 1; i < num_units; ++i)
    units.push_back(nexts->register_module(std::to_string(i - 1), std::make_shared<FRRUnit>(y_out, y_out, zc, factor, gen)));
}

std::pair<Tensor, Tensor> FRRLayer::forward2(const Tensor& y, const Tensor& z) {
  std::pair<Tensor, Tensor> yz{y, z};
  for (auto& u : units) yz = u->forward2(yz.first, yz.second);
  return yz;
}

}  // namespace moeseg
