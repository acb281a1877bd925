// Colours for class maps: the palette of a label space (A2D2's primary class colours for 38
// classes, the Cityscapes train-id colours for 19, the SegNet CamVid colours otherwise), a class
// map turned into an RGB image, and an alpha blend of such an image over a camera image.
// Shared by the evaluation examples (training/report.cpp) and `moeseg predict`.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "data/a2d2_classes.h"
#include "data/image_io.h"

namespace moeseg::data {

// Colour of class c in a label space of num_classes classes (0 <= c < num_classes).
RGB class_colour(int64_t c, int64_t num_classes);

// int64 [H, W] class map -> RGB image; values outside [0, num_classes) (ignore) are black.
Image colourise_labels(const Tensor& labels, int64_t num_classes);

// out = (1 - alpha) * image + alpha * colours where `valid` says so (nonzero), else image.
// image and colours: RGB of the same size; valid: H*W entries or empty (= all valid).
Image blend_images(const Image& image, const Image& colours, double alpha, const std::vector<uint8_t>& valid = {});

}  // namespace moeseg::data
