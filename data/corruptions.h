// ImageNet-C-style image corruptions (Hendrycks & Dietterich, "Benchmarking Neural Network
// Robustness to Common Corruptions and Perturbations", ICLR 2019) at severities 1-5, for the
// robustness / uncertainty studies: an evaluation corrupts each sample the dataset yields.
// No outside assets (frost, which needs photos, is left out), deterministic by seed: every random
// draw is Philox (data/random_stream.h) keyed by (seed, corruption, purpose, row), so the output
// depends only on (image, corruption, severity, seed), not on the thread count. Reductions that
// decide output (a mean, a maximum) are serial in a fixed order.
//
// What is corrupted: the float32 [3,H,W] tensor in [0,1] a Dataset's Sample holds (what the model
// sees); the result has the same shape and stays in [0,1]. An 8-bit RGB Image overload does the
// same through image_to_tensor / tensor_to_image (rounded back to 8 bits).
//
// Parameters per severity 1..5 (ImageNet-C's tables for 224x224 images). Spatial parameters
// (pixels) are multiplied by s = max(0.5, min(H,W)/224): from 112 px up a blur keeps its size
// relative to the image (240x320: s = 1.07); below, the floor keeps severity 1 visible (a 64x96
// image gets s = 0.5, i.e. gaussian sigma 0.5..3, where Hendrycks' own 64-px Tiny-ImageNet-C
// tables use 0.5..1.5 and pure proportional scaling would give 0.29..1.7, severity 1 a no-op).
// Relative parameters (zoom factors, pixelate factors, noise levels) are not scaled. The elastic
// transform, a geometric warp, scales by the plain ratio r = min(H,W)/224 (no floor).
//   gaussian_noise   x + N(0, sigma), sigma = .08 .12 .18 .26 .38
//   shot_noise       Poisson(x*lam)/lam, lam = 60 25 12 5 3
//   impulse_noise    salt&pepper per value, amount = .03 .06 .09 .17 .27 (half salt, half pepper)
//   defocus_blur     disk radius*s = 3 4 6 8 10, antialias Gaussian sigma = .1 .5 .5 .5 .5
//   gaussian_blur    sigma*s = 1 2 3 4 6 (truncated at 4 sigma, edge-replicated border)
//   motion_blur      ImageMagick's one-sided Gaussian line: radius*s = 10 15 15 15 20,
//                    sigma*s = 3 5 8 12 15, angle ~ U(-45, 45) degrees
//   zoom_blur        mean of x and centre zooms z = arange(1, stop, step), (stop, step) =
//                    (1.11,.01) (1.16,.01) (1.21,.02) (1.26,.02) (1.31,.03) (numpy's arange length)
//   brightness       HSV V += .1 .2 .3 .4 .5 (clipped)
//   contrast         (x - mean_c) * k + mean_c per channel, k = .4 .3 .2 .1 .05
//   saturate         HSV S = S*a + b, (a,b) = (.3,0) (.1,0) (2,0) (5,.1) (20,.2); as in
//                    ImageNet-C a gray pixel has hue 0, so b > 0 tints it red
//   jpeg_compression stb JPEG at quality 25 18 15 10 7, decoded back
//   pixelate         box-average down to int(H*f) x int(W*f), nearest back up; f = .6 .5 .4 .3 .25
//   fog              x + a*plasma(decay), rescaled by max/(max+a); (a,decay) = (1.5,2) (2,2)
//                    (2.5,1.7) (2.5,1.5) (3,1.4); plasma = diamond-square on the next power of
//                    two >= max(H,W), cropped (ImageNet-C: 256 for 224)
//   snow             flakes N(mu,sd) zoomed by max(1, z*s), cut below t, motion-blurred (radius*s, sigma*s,
//                    angle ~ U(-135,-45)), added with their 180-degree rotation onto an image
//                    brightened towards gray*1.5+.5 with weight 1-k:
//                    (mu,sd,z,t,radius,sigma,k) = (.1,.3,3,.5,10,4,.8) (.2,.3,2,.5,12,4,.7)
//                    (.55,.3,4,.9,12,8,.7) (.55,.3,4.5,.85,12,8,.65) (.55,.3,2.5,.85,12,12,.55)
//   spatter          liquid N(mu,sd) blurred by sigma*s, cut below t; (mu,sd,sigma,t,m,mud) =
//                    (.65,.3,4,.69,.6,0) (.65,.3,3,.68,.6,0) (.65,.3,2,.68,.5,0)
//                    (.65,.3,1,.65,1.5,1) (.67,.4,1,.65,1.5,1). Water (mud=0): pale turquoise
//                    (175,238,238)/255 added with weight m * liquid * embossed edge distance,
//                    a simplification of ImageNet-C's Canny + distance transform +
//                    histogram equalisation. Mud (mud=1): the mask blurred by m*s, kept >= .8,
//                    blended to brown (63,42,20)/255.
//   elastic_transform random affine (corners moved by U(-c,c)) then a displacement field
//                    alpha * Gaussian_sigma(U(-1,1)), one bilinear resample, reflected border;
//                    (alpha, sigma, c) = 244 * (2,.7,.1) (2,.08,.2) (.05,.01,.02) (.07,.01,.02)
//                    (.12,.01,.02); sigma and c scale by r, alpha by r^2 (displacement is
//                    ~ alpha/sigma, so it scales by r like the others).
// Reproducibility: the same seed gives the same bytes with any thread count (tested). Across
// machines it assumes the same libm results for exp/log/cos (Box-Muller, Poisson, kernels) and
// the same floating-point contraction: the project's default -march=x86-64-v3 fixes FMA use, a
// -march=native or aarch64 build may differ in last bits (and so, rarely, in a threshold).
//
// Speed: every corruption is O(H*W*kernel), OpenMP-parallel over rows (or planes x rows) where
// outputs are independent; a Gaussian wider than the image folds its border into at most H or W
// taps. Measured for 240x320 on the 2 shared cores (test "in well under a second", means over
// severities): 1-12 ms each, defocus ~35 ms (severity 5: ~370 disk taps).
// Tests: tests/data/test_corruptions.cpp (`test_data -tc="*corrupt*"`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/image_io.h"

namespace moeseg::data {

enum class Corruption {
  GaussianNoise,
  ShotNoise,
  ImpulseNoise,
  DefocusBlur,
  GaussianBlur,
  MotionBlur,
  ZoomBlur,
  Brightness,
  Contrast,
  Saturate,
  JpegCompression,
  Pixelate,
  Fog,
  Snow,
  Spatter,
  ElasticTransform,
};

// Names as ImageNet-C spells them ("gaussian_noise", ..., "elastic_transform"); an unknown name
// throws "<where> is '<name>' (known: ...)".
Corruption parse_corruption(const std::string& name, const std::string& where);
std::string to_string(Corruption c);
// Every corruption, in the order above.
const std::vector<Corruption>& all_corruptions();
// True for those that draw random numbers (the seed matters).
bool corruption_is_random(Corruption c);

constexpr int kMinCorruptionSeverity = 1, kMaxCorruptionSeverity = 5;

// float32 [3,H,W] in [0,1] on the CPU -> the same shape, in [0,1]. Severity outside 1..5, a
// tensor of another shape, dtype or device throws naming the value.
Tensor corrupt(const Tensor& image, Corruption c, int severity, uint64_t seed);
// 8-bit RGB (3 channels) -> 8-bit RGB of the same size.
Image corrupt(const Image& image, Corruption c, int severity, uint64_t seed);

}  // namespace moeseg::data
