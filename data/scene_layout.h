// The description of one synthetic road scene, before it is rasterised: a pinhole camera over a
// flat ground plane, the road as lateral bands (road, curb, sidewalk, grass ...) with painted
// lines and zebra stripes, vertical walls (building facades, tree lines, guard rails), and
// billboard objects (cars, trucks, pedestrians, poles, signs, traffic lights, trees) standing on
// the ground at a depth. Materials give each surface a colour, texture and pattern; the classes
// are the A2D2 38-class ids. scene_layout.cpp draws a layout for a domain from a RandomStream,
// scene_render.cpp turns it into pixels. World units are metres; the road runs along +z.
#pragma once
#include <cstdint>
#include <vector>

#include "data/random_stream.h"

namespace moeseg::data {

enum class SceneDomain : uint32_t { Highway = 0, Urban = 1, Ambiguous = 2 };
const char* scene_domain_name(SceneDomain d);   // "highway", "urban", "ambiguous"

// A2D2 class ids used by the generator (see a2d2_classes.h for the full table).
namespace cls {
constexpr uint8_t Car = 0, Bicycle = 1, Pedestrian = 2, Truck = 3, TrafficSignal = 5, TrafficSign = 6, Sidebars = 8,
                  Curbstone = 10, SolidLine = 11, Zebra = 16, Poles = 18, Nature = 26, Parking = 27, Sidewalk = 28,
                  EgoCar = 29, DashedLine = 32, Road = 33, Sky = 34, Buildings = 35;
}

enum class Pattern : uint8_t { None, Paving, Windows, Foliage, Streaks, Cobbles };

struct Material {
  float rgb[3] = {0.5f, 0.5f, 0.5f};
  float tex_amp = 0.1f;     // relative brightness variation of the value-noise texture
  float tex_scale = 1.0f;   // metres per noise cell
  float grain = 0.03f;      // fine per-pixel-scale texture amplitude
  Pattern pattern = Pattern::None;
  float pattern_rgb[3] = {0.2f, 0.2f, 0.2f};
  float p1 = 1.0f, p2 = 1.0f;   // pattern periods (metres)
};

struct Camera {
  double f = 300;       // focal length in pixels
  double xv = 160;      // vanishing point column
  double yh = 100;      // horizon row
  double hc = 1.5;      // camera height above ground (m)
  double x0 = 0;        // lateral position of the road reference line at z = 0 (m)
  double k = 0;         // road curvature: reference line at x0 + k z^2
};

// Ground band: lateral offset r from the road reference line in [r0 + s0 z, r1 + s1 z), z in [zmin, zmax).
struct Band {
  double r0, s0, r1, s1, zmin, zmax;
  uint8_t cls;
  int mat;
};

// Painted line of given width centred at r + s z; dashed lines are painted where
// fmod(z + phase, period) < duty * period.
struct Line {
  double r, s, width, zmin, zmax;
  bool dashed;
  double period, duty, phase;
  uint8_t cls;
  int mat;
};

// Zebra crossing: stripes across [r0, r1) for z in [z0, z1): painted where fmod(r - r0, period) < period/2.
struct Zebra {
  double r0, r1, z0, z1, period;
  int mat;
};

// Vertical wall parallel to the road at lateral r + s z, z in [z0, z1), from height h0 to
// h1 + h_amp * noise(z / h_scale) (tree lines have ragged tops).
struct Wall {
  double r, s, z0, z1, h0, h1, h_amp, h_scale;
  uint8_t cls;
  int mat;
};

enum class ObjectKind : uint8_t { Car, Truck, Pedestrian, Pole, Sign, TrafficLight, Tree, Cyclist };

struct Object {
  ObjectKind kind;
  double r, z;          // lateral offset from the road reference line and depth of the object's near face
  double w, h;          // world width and height (m)
  double len;           // depth extent (vehicle length; used for the ground shadow)
  uint8_t variant;      // A2D2 colour variant of the instance ("Car 1".."Car 4")
  int mat, mat2, mat3;  // body / secondary / detail materials
  int shape;            // per-kind shape choice (sign plate round/triangle/rectangle ...)
};

struct Lighting {
  float gain = 1.0f;                  // global exposure
  float cast[3] = {1.f, 1.f, 1.f};    // white balance / colour cast
  float shadow = 0.55f;               // brightness factor inside shadows
  float shadow_thresh = 2.0f;         // value-noise threshold for cast-shadow patches (>1 = none)
  float shadow_scale = 6.0f;          // metres per shadow noise cell
  double shadow_rmin = -1e9, shadow_rmax = 1e9;   // lateral range where patches may fall
  float sun_dx = 0.5f;                // lateral shadow offset per metre of object height
  float noise_sigma = 0.02f;          // sensor noise (std of the triangular noise)
  float blur = 0.3f;                  // mix of a 3x3 blur (optics)
  float vignette = 0.1f;
};

struct SkyStyle {
  float top[3] = {0.35f, 0.55f, 0.9f};
  float horizon[3] = {0.75f, 0.82f, 0.95f};
  float clouds = 0.3f;                 // cloud cover amount
  float cloud_rgb[3] = {0.92f, 0.92f, 0.95f};
};

struct SceneLayout {
  SceneDomain domain = SceneDomain::Highway;
  Camera cam;
  std::vector<Material> mats;
  int ground_mat = 0;                  // outside all bands: grass
  uint8_t ground_cls = cls::Nature;
  std::vector<Band> bands;
  std::vector<Line> lines;
  std::vector<Zebra> zebras;
  std::vector<Wall> walls;
  std::vector<Object> objects;
  SkyStyle sky;
  Lighting light;
  double hood = 0;                     // ego-car hood height as a fraction of the image (0 = none)
  int hood_mat = 0;
  uint32_t texture_key = 0;            // keys the value-noise lattice hash
  int add(const Material& m) { mats.push_back(m); return static_cast<int>(mats.size()) - 1; }
};

// Draws a scene layout for `domain` at the given image size from `rng`.
SceneLayout make_scene_layout(SceneDomain domain, RandomStream& rng, int height, int width);

}  // namespace moeseg::data
