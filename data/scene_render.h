// Rasterises a SceneLayout into a camera image and a per-pixel A2D2 class map.
// Painter + depth buffer: sky, then the ground plane (bands, painted lines, zebra stripes,
// cast shadows), then vertical walls column by column, then billboard objects far to near, then
// the ego hood; finally exposure, colour cast, vignetting, optical blur and sensor noise touch the
// image only. Everything is a pure function of the layout and the noise stream, single-threaded
// per image (images are generated in parallel), so output bytes never depend on thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "data/image_io.h"
#include "data/scene_layout.h"

namespace moeseg::data {

struct RenderedScene {
  int height = 0, width = 0;
  Image rgb;                       // camera image
  std::vector<uint8_t> class_id;   // A2D2 38-class id per pixel
  std::vector<uint8_t> variant;    // A2D2 colour variant per pixel ("Car 2" -> 1)
  Image label_rgb() const;         // the colour-coded A2D2 label image
  Tensor label_tensor() const;     // int64 [H,W] class ids
};

RenderedScene render_layout(const SceneLayout& layout, int height, int width, RandomStream& noise_rng);

// Layout + render of image `index` of a (domain, stream) from `seed`: the whole generator for
// one image, independent of every other image. `stream` separates splits (train/val/test).
RenderedScene render_scene(SceneDomain domain, uint64_t seed, uint32_t stream, uint32_t index, int height, int width);

}  // namespace moeseg::data
