// Pictures of what an MoE did on one image, for `moeseg predict`: its gate weights as stacked
// bars and the per-pixel expert-disagreement map (categories of training/disagreement.h).
// Colours: expert e has a fixed colour (Okabe-Ito, colour-blind safe: 1 orange, 2 sky blue,
// 3 green, 4 yellow, 5 blue, 6 pink, 7 vermilion, then again), used in both pictures.
#pragma once
#include <array>
#include <cstdint>

#include "core/tensor.h"
#include "data/image_io.h"
#include "training/disagreement.h"

namespace moeseg {

std::array<uint8_t, 3> expert_colour(int64_t expert);   // expert: 0-based

// Gate weights [G, E] (one image; rows sum to 1) as stacked bars on white, 256 px long: each
// row a bar split into segments of length proportional to the weights, in expert colours, left
// to right expert 1..E. Simple gate (G = 1): one bar 24 px high. Class-wise gate (G = classes):
// one 8 px row per class, top to bottom class 0..G-1, each led by a 12 px swatch of the class's
// palette colour (data/label_colours.h), rows 1 px apart.
data::Image gate_image(const Tensor& gate, int64_t num_classes);

// Per-pixel expert agreement of the combined prediction m with experts 1 and 2 (int64 [H, W]
// class maps). Colours: perfect grey (128,128,128), follows expert 1 / 2 the expert's colour,
// critical red (220,0,0); pixels where `truth` (optional, int64 [H, W]) is outside [0, classes)
// are black and not counted, as in the evaluation statistics.
struct DisagreementMap {
  data::Image image;
  int64_t counts[4] = {0, 0, 0, 0};   // indexed by ExpertAgreement
  int64_t valid = 0;
};
DisagreementMap disagreement_map(const Tensor& m, const Tensor& e1, const Tensor& e2, const Tensor& truth,
                                 int64_t num_classes);

}  // namespace moeseg
