// FRRN-A/B (see frrn.h). The forward mirrors the reference's FRRNet.forward; the unpooling
// upsamples to the size the pooling stream had before the matching max-pool, which equals the
// reference's scale_factor=2 for inputs divisible by 2^K and also works for other sizes.
#include "models/frrn.h"

#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/pooling.h"
#include "kernels/shape_ops.h"
#include "kernels/upsample.h"
#include "models/frrn_trace.h"

namespace moeseg {

FRRNTable frrn_table(char table) {
  if (table == 'A' || table == 'a')
    return {48, 32, {{3, 96, 2}, {4, 192, 4}, {2, 384, 8}, {2, 384, 16}}, {{2, 192, 8}, {2, 192, 4}, {2, 96, 2}}};
  if (table == 'B' || table == 'b')
    return {48, 32, {{3, 96, 2}, {4, 192, 4}, {2, 384, 8}, {2, 384, 16}, {2, 384, 32}},
            {{2, 192, 16}, {2, 192, 8}, {2, 192, 4}, {2, 96, 2}}};
  MOESEG_FAIL("FRRN: unknown table '", std::string(1, table), "' (known: A, B)");
}

int64_t frrn_scaled_channels(int64_t c, double width) {
  MOESEG_CHECK(width > 0, "FRRN: width multiplier must be positive, got ", width);
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(c) * width + 0.5)));
}

FRRN::FRRN(const FRRNConfig& cfg) : SegmentationModel("FRRN"), cfg_(cfg) {
  MOESEG_CHECK(cfg.num_classes >= 1 && cfg.in_channels >= 1, "FRRN: bad channels (in ", cfg.in_channels,
               ", classes ", cfg.num_classes, ")");
  table_ = frrn_table(cfg.table);
  auto sc = [&](int64_t c) { return frrn_scaled_channels(c, cfg.width); };
  table_.pool_channels = sc(table_.pool_channels);
  table_.res_channels = sc(table_.res_channels);
  for (auto& s : table_.encoder) s.channels = sc(s.channels);
  for (auto& s : table_.decoder) s.channels = sc(s.channels);
  MOESEG_CHECK(table_.decoder.size() + 1 == table_.encoder.size(), "FRRN: ", table_.decoder.size(),
               " decoder stages for ", table_.encoder.size(), " encoder stages (need one fewer)");

  Generator gen(cfg.seed);
  const int64_t pc = table_.pool_channels, zc = table_.res_channels;
  // Registration order = the reference's attribute order, so state_dict order matches too.
  first_ = register_module("first", std::make_shared<Module>("Sequential"));
  first_conv_ = first_->register_module("conv", std::make_shared<Conv2d>(cfg.in_channels, pc, 5, 1, 2, 1, 1, true, gen));
  first_bn_ = first_->register_module("bn", std::make_shared<BatchNorm2d>(pc));
  auto rin = register_module("reslayers_in", std::make_shared<Module>("Sequential"));
  for (int i = 0; i < 3; ++i) res_in_.push_back(rin->register_module(std::to_string(i), std::make_shared<ResidualUnit>(pc, gen)));
  divide_ = register_module("divide", std::make_shared<Conv2d>(pc, zc, 1, 1, 0, 1, 1, true, gen));
  int64_t ch = pc;
  for (size_t i = 0; i < table_.encoder.size(); ++i) {
    const auto& s = table_.encoder[i];
    encoder_.push_back(register_module("frrnlayer" + std::to_string(i + 1),
                                       std::make_shared<FRRLayer>(ch, s.channels, s.units, zc, s.factor, gen)));
    ch = s.channels;
  }
  for (size_t i = 0; i < table_.decoder.size(); ++i) {
    const auto& s = table_.decoder[i];
    decoder_.push_back(register_module("defrrnlayer" + std::to_string(i + 1),
                                       std::make_shared<FRRLayer>(ch, s.channels, s.units, zc, s.factor, gen)));
    ch = s.channels;
  }
  compress_ = register_module("compress", std::make_shared<Conv2d>(ch + zc, pc, 1, 1, 0, 1, 1, true, gen));
  auto rout = register_module("reslayers_out", std::make_shared<Module>("Sequential"));
  for (int i = 0; i < 3; ++i) res_out_.push_back(rout->register_module(std::to_string(i), std::make_shared<ResidualUnit>(pc, gen)));
  out_dropout_ = register_module("out_dropout", std::make_shared<Dropout>(cfg.dropout));
  out_conv_ = register_module("out_conv", std::make_shared<Conv2d>(pc, cfg.num_classes, 1, 1, 0, 1, 1, true, gen));
}

int64_t FRRN::tap_index(const std::string& tap) const {
  for (size_t i = 0; i < encoder_.size(); ++i)
    if (tap == "frrnlayer" + std::to_string(i + 1)) return static_cast<int64_t>(i);
  std::string known;
  for (auto& n : tap_names()) known += (known.empty() ? "" : ", ") + n;
  MOESEG_FAIL("FRRN: unknown tap '", tap, "' (known: ", known, ")");
}

std::vector<std::string> FRRN::tap_names() const {
  std::vector<std::string> v;
  for (size_t i = 0; i < encoder_.size(); ++i) v.push_back("frrnlayer" + std::to_string(i + 1));
  return v;
}

int64_t FRRN::tap_channels(const std::string& tap) const { return table_.encoder[tap_index(tap)].channels; }
int64_t FRRN::tap_stride(const std::string& tap) const { return int64_t{2} << tap_index(tap); }

SegmentationOutput FRRN::forward_with_taps(const Tensor& x, const std::vector<std::string>& taps) {
  check_dim(x, 4, "FRRN", "input");
  MOESEG_CHECK(x.size(1) == cfg_.in_channels, "FRRN: input ", x.str(), " has ", x.size(1), " channels, expected ",
               cfg_.in_channels);
  std::vector<int64_t> wanted;
  for (auto& t : taps) wanted.push_back(tap_index(t));
  auto count = [](const std::shared_ptr<Module>& m) { return m->num_parameters(); };
  SegmentationOutput out;

  Tensor y = relu(first_bn_->forward(first_conv_->forward(x)));
  trace_output("first", "Conv5x5+BN+ReLU", y, count(first_));
  for (auto& r : res_in_) y = r->forward(y);
  trace_output("reslayers_in", "3 x RU", y, count(child("reslayers_in")));
  Tensor z = divide_->forward(y);
  trace_output("divide", "Conv1x1 (residual stream)", z, count(divide_));

  std::vector<std::pair<int64_t, int64_t>> sizes;   // y's size before each max-pool
  for (size_t i = 0; i < encoder_.size(); ++i) {
    sizes.emplace_back(y.size(2), y.size(3));
    y = max_pool2d(y, 3, 2, 1);
    std::tie(y, z) = encoder_[i]->forward2(y, z);
    const std::string name = "frrnlayer" + std::to_string(i + 1);
    trace_output(name, std::to_string(encoder_[i]->units.size()) + " x FRRU (y)", y, count(encoder_[i]));
    for (size_t k = 0; k < taps.size(); ++k)
      if (wanted[k] == static_cast<int64_t>(i)) out.taps[taps[k]] = y;
  }
  for (size_t i = 0; i < decoder_.size(); ++i) {
    auto [h, w] = sizes.back();
    sizes.pop_back();
    y = upsample_bilinear2d(y, h, w, /*align_corners=*/true);
    std::tie(y, z) = decoder_[i]->forward2(y, z);
    trace_output("defrrnlayer" + std::to_string(i + 1), std::to_string(decoder_[i]->units.size()) + " x FRRU (y)", y,
                 count(decoder_[i]));
  }
  auto [h, w] = sizes.back();
  y = upsample_bilinear2d(y, h, w, /*align_corners=*/true);
  Tensor r = compress_->forward(concat({y, z}, 1));
  trace_output("compress", "Conv1x1 on [y, z]", r, count(compress_));
  for (auto& ru : res_out_) r = ru->forward(r);
  trace_output("reslayers_out", "3 x RU", r, count(child("reslayers_out")));
  out.logits = out_conv_->forward(out_dropout_->forward(r));
  trace_output("out_conv", "Conv1x1 (logits)", out.logits, count(out_conv_));
  return out;
}

}  // namespace moeseg
