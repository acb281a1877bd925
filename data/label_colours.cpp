// Palettes, class-map colourisation and alpha blending (see label_colours.h).
#include "data/label_colours.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace moeseg::data {

namespace {
// SegNet's CamVid colours: Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car,
// Pedestrian, Bicyclist, Unlabelled (used cyclically for any other label space).
constexpr RGB kCamVid[12] = {{128, 128, 128}, {128, 0, 0},   {192, 192, 128}, {128, 64, 128},
                             {0, 0, 192},     {128, 128, 0}, {192, 128, 128}, {64, 64, 128},
                             {64, 0, 128},    {64, 64, 0},   {0, 128, 192},   {255, 255, 255}};
// Cityscapes train ids 0..18 (road .. bicycle), the colours of cityscapesscripts' labels.py.
constexpr RGB kCityscapes[19] = {{128, 64, 128}, {244, 35, 232}, {70, 70, 70},    {102, 102, 156}, {190, 153, 153},
                                 {153, 153, 153}, {250, 170, 30}, {220, 220, 0},   {107, 142, 35},  {152, 251, 152},
                                 {70, 130, 180},  {220, 20, 60},  {255, 0, 0},     {0, 0, 142},     {0, 0, 70},
                                 {0, 60, 100},    {0, 80, 100},   {0, 0, 230},     {119, 11, 32}};
}  // namespace

RGB class_colour(int64_t c, int64_t num_classes) {
  MOESEG_CHECK(c >= 0 && c < num_classes, "class_colour: class ", c, " outside [0, ", num_classes, ")");
  if (num_classes == kA2D2NumClasses) return a2d2_classes()[static_cast<size_t>(c)].colours[0];
  if (num_classes == 19) return kCityscapes[c];
  return kCamVid[c % 12];
}

Image colourise_labels(const Tensor& labels, int64_t num_classes) {
  MOESEG_CHECK(labels.dim() == 2 && labels.dtype() == DType::Int64, "colourise_labels: expected an int64 [H, W] class map, got ",
               labels.str());
  const Tensor l = labels.contiguous();
  const int H = static_cast<int>(l.size(0)), W = static_cast<int>(l.size(1));
  std::vector<RGB> pal(static_cast<size_t>(num_classes));
  for (int64_t c = 0; c < num_classes; ++c) pal[static_cast<size_t>(c)] = class_colour(c, num_classes);
  Image img(H, W, 3);
  const int64_t* p = l.data<int64_t>();
  for (size_t i = 0; i < static_cast<size_t>(H) * W; ++i) {
    const int64_t c = p[i];
    if (c < 0 || c >= num_classes) continue;   // ignore: stays black
    std::copy(pal[static_cast<size_t>(c)].begin(), pal[static_cast<size_t>(c)].end(), img.pixels.begin() + 3 * i);
  }
  return img;
}

Image blend_images(const Image& image, const Image& colours, double alpha, const std::vector<uint8_t>& valid) {
  MOESEG_CHECK(image.channels == 3 && colours.channels == 3 && image.height == colours.height && image.width == colours.width,
               "blend_images: need two RGB images of one size, got ", image.height, "x", image.width, "x", image.channels,
               " and ", colours.height, "x", colours.width, "x", colours.channels);
  const size_t n = static_cast<size_t>(image.height) * image.width;
  MOESEG_CHECK(valid.empty() || valid.size() == n, "blend_images: mask has ", valid.size(), " entries for ", n, " pixels");
  MOESEG_CHECK(alpha >= 0 && alpha <= 1, "blend_images: alpha ", alpha, " outside [0, 1]");
  Image out = image;
  for (size_t i = 0; i < n; ++i) {
    if (!valid.empty() && !valid[i]) continue;
    for (size_t k = 3 * i; k < 3 * i + 3; ++k)
      out.pixels[k] = static_cast<uint8_t>(std::lround((1 - alpha) * image.pixels[k] + alpha * colours.pixels[k]));
  }
  return out;
}

}  // namespace moeseg::data
