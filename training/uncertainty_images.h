// Pictures of the uncertainty study (issue 11): a reliability diagram (one bar per confidence bin,
// its height the bin's accuracy, over the diagonal acc = conf) and an uncertainty map (a value in
// [0, vmax] per pixel through a colour ramp). Both are data::Image (RGB) for data::write_png.
//   reliability diagram: size x size pixels, white background, a 1-pixel black frame; bin b of B
//     spans columns [b·size/B, (b+1)·size/B); an empty bin draws no bar; bars blue (40, 90, 200),
//     the bar's gap to its mean confidence red (220, 60, 50) above or below the bar top, the diagonal
//     grey (120, 120, 120) drawn last; row 0 is accuracy 1.
//   uncertainty map: the ramp goes black (0) → purple → orange → yellow-white (vmax) ("inferno"-like,
//     5 stops, piecewise linear); values are clamped to [0, vmax]; NaN pixels are grey.
// Tested by tests/training/test_uncertainty.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "data/image_io.h"
#include "training/calibration.h"

namespace moeseg {

std::array<uint8_t, 3> uncertainty_ramp(double t);   // t in [0, 1]
data::Image reliability_diagram(const std::vector<ReliabilityBin>& bins, int size = 240);
// `map` [H, W] or [N, H, W] (image `index` of it), any float dtype.
data::Image uncertainty_map_image(const Tensor& map, double vmax = 1.0, int64_t index = 0);

}  // namespace moeseg
