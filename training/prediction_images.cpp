// Gate-weight bars and expert-disagreement maps (see prediction_images.h).
#include "training/prediction_images.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/label_colours.h"

namespace moeseg {

std::array<uint8_t, 3> expert_colour(int64_t expert) {
  static constexpr std::array<uint8_t, 3> kOkabeIto[7] = {{230, 159, 0},  {86, 180, 233}, {0, 158, 115}, {240, 228, 66},
                                                          {0, 114, 178},  {204, 121, 167}, {213, 94, 0}};
  return kOkabeIto[expert % 7];
}

data::Image gate_image(const Tensor& gate, int64_t num_classes) {
  MOESEG_CHECK(gate.dim() == 2, "gate_image: expected gate weights [G, E], got ", gate.str());
  const Tensor w = gate.to(DType::Float32).contiguous();
  const int G = static_cast<int>(w.size(0)), E = static_cast<int>(w.size(1));
  const bool classwise = G > 1;
  const int bar = 256, row_h = classwise ? 8 : 24, gap = classwise ? 1 : 0, swatch = classwise ? 12 : 0,
            pad = classwise ? 4 : 0;
  const int x0 = swatch + pad, H = G * row_h + (G - 1) * gap, W = x0 + bar;
  data::Image img(H, W, 3);
  std::fill(img.pixels.begin(), img.pixels.end(), uint8_t{255});
  const float* p = w.data<float>();
  auto fill = [&](int y, int x, std::array<uint8_t, 3> c) { std::copy(c.begin(), c.end(), img.at(y, x)); };
  for (int g = 0; g < G; ++g) {
    const int top = g * (row_h + gap);
    if (classwise) {
      const data::RGB c = g < num_classes ? data::class_colour(g, num_classes) : data::RGB{0, 0, 0};
      for (int y = top; y < top + row_h; ++y)
        for (int x = 0; x < swatch; ++x) fill(y, x, c);
    }
    double cum = 0;
    int left = 0;
    for (int e = 0; e < E; ++e) {
      cum += std::clamp(static_cast<double>(p[g * E + e]), 0.0, 1.0);
      const int right = static_cast<int>(std::lround(std::min(cum, 1.0) * bar));
      for (int y = top; y < top + row_h; ++y)
        for (int x = left; x < right; ++x) fill(y, x0 + x, expert_colour(e));
      left = std::max(left, right);
    }
  }
  return img;
}

DisagreementMap disagreement_map(const Tensor& m, const Tensor& e1, const Tensor& e2, const Tensor& truth,
                                 int64_t num_classes) {
  MOESEG_CHECK(m.dim() == 2 && m.sizes() == e1.sizes() && m.sizes() == e2.sizes(),
               "disagreement_map: class maps of one [H, W] size expected, got ", m.str(), ", ", e1.str(), ", ", e2.str());
  MOESEG_CHECK(!truth.defined() || truth.sizes() == m.sizes(), "disagreement_map: truth ", truth.str(),
               " does not match the prediction ", m.str());
  const Tensor M = m.contiguous(), A = e1.contiguous(), B = e2.contiguous();
  const Tensor T = truth.defined() ? truth.contiguous() : Tensor();
  const int H = static_cast<int>(M.size(0)), W = static_cast<int>(M.size(1));
  const std::array<uint8_t, 3> colours[4] = {{128, 128, 128}, expert_colour(0), expert_colour(1), {220, 0, 0}};
  DisagreementMap out;
  out.image = data::Image(H, W, 3);
  const int64_t *pm = M.data<int64_t>(), *pa = A.data<int64_t>(), *pb = B.data<int64_t>();
  const int64_t* pt = T.defined() ? T.data<int64_t>() : nullptr;
  for (size_t i = 0; i < static_cast<size_t>(H) * W; ++i) {
    if (pt && (pt[i] < 0 || pt[i] >= num_classes)) continue;   // ignore: black, not counted
    const auto k = static_cast<size_t>(expert_agreement(pm[i], pa[i], pb[i]));
    ++out.counts[k];
    ++out.valid;
    std::copy(colours[k].begin(), colours[k].end(), out.image.pixels.begin() + 3 * i);
  }
  return out;
}

}  // namespace moeseg
