// Joint image/label augmentation. Every geometric step (resize, random scale, crop, flip) is
// drawn once and applied to both image and label (bilinear for the image, nearest for the label,
// so labels never get invented in-between classes); colour jitter touches the image only.
// All randomness is Philox keyed by (seed, epoch, sample index): a sample's augmentation is the
// same whichever worker thread prepares it, and the same again when an epoch is replayed.
#pragma once
#include <cstdint>

#include "data/dataset.h"

namespace moeseg::data {

struct AugmentConfig {
  int height = 0, width = 0;            // resize to this size first (0 = keep)
  double scale_min = 1, scale_max = 1;  // then a random scale factor from this range
  int crop_height = 0, crop_width = 0;  // then a random crop (0 = none); padded with 0 / ignore if smaller
  double flip_p = 0;                    // horizontal flip probability
  double brightness = 0, contrast = 0, saturation = 0;   // jitter factors drawn from [1-x, 1+x]
  int ignore_index = 255;               // label value of padding
};

// The reference's transforms (spec §1.2): resize to a fixed size (bilinear image, nearest
// label), horizontal flip with p = 0.5 when training, inputs in [0,1]; no scale, crop or colour.
AugmentConfig reference_preset(int height, int width, bool train);

Sample resize_sample(const Sample& s, int height, int width);
Sample hflip_sample(const Sample& s);
// Crop [top, top+h) x [left, left+w); parts outside the sample are padded (image 0, label ignore).
Sample crop_sample(const Sample& s, int top, int left, int height, int width, int ignore_index);
// image := clamp(((image * b - mean) * c + mean) blended towards gray by s), in place on a copy.
Tensor color_jitter(const Tensor& image, double brightness_f, double contrast_f, double saturation_f);

// Applies the config with the draws of (seed, epoch, index).
Sample augment_sample(const Sample& s, const AugmentConfig& cfg, uint64_t seed, uint64_t epoch, uint64_t index);

}  // namespace moeseg::data
