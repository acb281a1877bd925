// The rasteriser of synthetic road scenes (see scene_render.h for the pass order).
// Textures are value noise on surface coordinates in metres (ground: lateral offset and depth;
// walls: depth and height), so texture scale follows perspective. The noise lattice is a fixed
// integer hash keyed by a Philox draw of the layout (a function, not a random stream: it must be
// evaluated at arbitrary points); every random *choice* comes from the Philox RandomStream.
#include "data/scene_render.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "data/a2d2_classes.h"

namespace moeseg::data {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

inline uint32_t hash2(int32_t x, int32_t y, uint32_t key) {
  uint32_t h = key ^ (static_cast<uint32_t>(x) * 0x8da6b343u) ^ (static_cast<uint32_t>(y) * 0xd8163841u);
  h ^= h >> 16; h *= 0x7feb352du; h ^= h >> 15; h *= 0x846ca68bu; h ^= h >> 16;
  return h;
}

// Value noise in [0,1) with smoothstep interpolation.
inline float vnoise(float x, float y, uint32_t key) {
  const float fx = std::floor(x), fy = std::floor(y);
  const int32_t ix = static_cast<int32_t>(fx), iy = static_cast<int32_t>(fy);
  float tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  constexpr float s = 1.0f / 4294967296.0f;
  const float a = hash2(ix, iy, key) * s, b = hash2(ix + 1, iy, key) * s;
  const float c = hash2(ix, iy + 1, key) * s, d = hash2(ix + 1, iy + 1, key) * s;
  return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

inline float fmod_pos(double a, double p) {
  double m = std::fmod(a, p);
  return static_cast<float>(m < 0 ? m + p : m);
}

struct Canvas {
  int H, W;
  std::vector<float> depth, col;
  std::vector<uint8_t> cls, var;
  Canvas(int h, int w) : H(h), W(w), depth(size_t(h) * w, kInf), col(size_t(h) * w * 3, 0.f), cls(size_t(h) * w, 0), var(size_t(h) * w, 0) {}
  void put(int y, int x, float z, uint8_t c, uint8_t v, const float* rgb) {
    const size_t i = size_t(y) * W + x;
    depth[i] = z;
    cls[i] = c;
    var[i] = v;
    col[3 * i] = rgb[0]; col[3 * i + 1] = rgb[1]; col[3 * i + 2] = rgb[2];
  }
};

// Colour of material m at surface coordinates (a, b) in metres.
void shade(const Material& m, double a, double b, uint32_t key, float* out) {
  const float low = vnoise(static_cast<float>(a / m.tex_scale), static_cast<float>(b / m.tex_scale), key);
  const float fine = vnoise(static_cast<float>(a * 7.0), static_cast<float>(b * 7.0), key ^ 0x5bd1e995u);
  float f = 1.0f + m.tex_amp * (low - 0.5f) * 2.0f + m.grain * (fine - 0.5f) * 2.0f;
  const float* base = m.rgb;
  switch (m.pattern) {
    case Pattern::None: break;
    case Pattern::Paving:
    case Pattern::Cobbles: {
      const double p1 = m.pattern == Pattern::Cobbles ? 0.2 : m.p1, p2 = m.pattern == Pattern::Cobbles ? 0.2 : m.p2;
      if (fmod_pos(a, p1) < 0.03 || fmod_pos(b, p2) < 0.03) base = m.pattern_rgb;
      break;
    }
    case Pattern::Windows: {
      const float fb = fmod_pos(b, m.p1) / m.p1, fa = fmod_pos(a, m.p2) / m.p2;
      if (b > 0.8 && fb > 0.3f && fb < 0.78f && fa > 0.22f && fa < 0.72f) base = m.pattern_rgb;
      break;
    }
    case Pattern::Foliage: {
      const float v = vnoise(static_cast<float>(a * 2.5), static_cast<float>(b * 2.5), key ^ 0x27d4eb2fu);
      if (v > 0.62f) base = m.pattern_rgb;
      break;
    }
    case Pattern::Streaks: f *= 0.85f + 0.3f * (fmod_pos(b, 0.16) / 0.16f); break;
  }
  out[0] = base[0] * f;
  out[1] = base[1] * f;
  out[2] = base[2] * f;
}

inline void darken(float* c, float f) { c[0] *= f; c[1] *= f; c[2] *= f * 1.05f; }   // shadows are slightly blue

void draw_sky(Canvas& cv, const SceneLayout& L) {
  const SkyStyle& s = L.sky;
  const uint32_t key = L.texture_key ^ 0x9e3779b9u;
  for (int y = 0; y < cv.H; ++y) {
    const float t = std::pow(std::clamp(static_cast<float>((L.cam.yh - y) / std::max(1.0, L.cam.yh)), 0.f, 1.f), 0.7f);
    float g[3];
    for (int c = 0; c < 3; ++c) g[c] = s.horizon[c] + (s.top[c] - s.horizon[c]) * t;
    for (int x = 0; x < cv.W; ++x) {
      float rgb[3] = {g[0], g[1], g[2]};
      if (s.clouds > 0) {
        const float n = 0.65f * vnoise(x / 45.f, y / 14.f, key) + 0.35f * vnoise(x / 12.f, y / 5.f, key + 1);
        const float a = std::clamp((n - (1.0f - s.clouds)) * 4.0f, 0.f, 1.f);
        for (int c = 0; c < 3; ++c) rgb[c] += (s.cloud_rgb[c] - rgb[c]) * a;
      }
      cv.put(y, x, kInf, cls::Sky, 0, rgb);
    }
  }
}

// Ground spans, lines and shadows depend on depth only through z, which is constant along an
// image row: each row first collects the spans active at its depth, so the per-pixel loop only
// compares the lateral offset against a handful of intervals.
struct Span {
  double lo, hi;
  uint8_t cls;
  int mat;
};

void draw_ground(Canvas& cv, const SceneLayout& L) {
  const Camera& cam = L.cam;
  const Lighting& light = L.light;
  const uint32_t key = L.texture_key;
  std::vector<Span> bands, paint, shadows;
  for (int y = static_cast<int>(std::floor(cam.yh)); y < cv.H; ++y) {
    const double dy = y + 0.5 - cam.yh;
    if (dy <= 0) continue;
    const double z = cam.hc * cam.f / dy;
    const double centre = cam.x0 + cam.k * z * z;
    bands.clear();
    paint.clear();
    shadows.clear();
    for (const Band& b : L.bands)
      if (z >= b.zmin && z < b.zmax) bands.push_back({b.r0 + b.s0 * z, b.r1 + b.s1 * z, b.cls, b.mat});
    for (const Line& l : L.lines) {
      if (z < l.zmin || z >= l.zmax) continue;
      if (l.dashed && fmod_pos(z + l.phase, l.period) >= l.duty * l.period) continue;
      const double c = l.r + l.s * z;
      paint.push_back({c - 0.5 * l.width, c + 0.5 * l.width, l.cls, l.mat});
    }
    for (const Zebra& zb : L.zebras)
      if (z >= zb.z0 && z < zb.z1)   // one span per stripe
        for (double r = zb.r0; r < zb.r1; r += zb.period) paint.push_back({r, std::min(zb.r1, r + 0.5 * zb.period), cls::Zebra, zb.mat});
    for (const Object& o : L.objects)
      if ((o.kind == ObjectKind::Car || o.kind == ObjectKind::Truck) && z >= o.z - 0.3 && z <= o.z + o.len) {
        const double c = o.r + light.sun_dx * o.h * 0.5;
        shadows.push_back({c - 0.5 * o.w - 0.15, c + 0.5 * o.w + 0.15, 0, 0});
      }
    const bool patches = light.shadow_thresh < 1.0f;
    for (int x = 0; x < cv.W; ++x) {
      const double X = (x + 0.5 - cam.xv) * z / cam.f;
      const double r = X - centre;
      uint8_t c = L.ground_cls;
      int mat = L.ground_mat;
      for (const Span& b : bands)
        if (r >= b.lo && r < b.hi) { c = b.cls; mat = b.mat; }
      for (const Span& p : paint)
        if (r >= p.lo && r <= p.hi) { c = p.cls; mat = p.mat; }
      float rgb[3];
      shade(L.mats[static_cast<size_t>(mat)], r, z, key + static_cast<uint32_t>(mat), rgb);
      // cast-shadow patches (trees, buildings) and contact shadows under vehicles
      if (patches && r > light.shadow_rmin && r < light.shadow_rmax) {
        const float n = vnoise(static_cast<float>(X / light.shadow_scale), static_cast<float>(z / light.shadow_scale), key ^ 0xabcdefu);
        const float a = std::clamp((n - light.shadow_thresh) * 12.0f, 0.f, 1.f);
        if (a > 0) darken(rgb, 1.0f - a * (1.0f - light.shadow));
      }
      for (const Span& sh : shadows)
        if (r > sh.lo && r < sh.hi) darken(rgb, light.shadow * 0.8f);
      cv.put(y, x, static_cast<float>(z), c, 0, rgb);
    }
  }
}

// Depth of the wall plane (lateral r + s z from the curved reference line) seen in a column with
// ray slope a = (u - xv) / f: solves k z^2 + (s - a) z + (x0 + r) = 0 for the nearest z > 0.
double wall_depth(const Camera& cam, const Wall& w, double a) {
  const double A = cam.k, B = w.s - a, C = cam.x0 + w.r;
  if (std::abs(A) < 1e-9) {
    if (std::abs(B) < 1e-12) return -1;
    return -C / B;
  }
  const double disc = B * B - 4 * A * C;
  if (disc < 0) return -1;
  const double sq = std::sqrt(disc);
  double z1 = (-B - sq) / (2 * A), z2 = (-B + sq) / (2 * A);
  if (z1 > z2) std::swap(z1, z2);
  return z1 > 0 ? z1 : z2;
}

void draw_walls(Canvas& cv, const SceneLayout& L) {
  const Camera& cam = L.cam;
  for (size_t wi = 0; wi < L.walls.size(); ++wi) {
    const Wall& w = L.walls[wi];
    const Material& m = L.mats[static_cast<size_t>(w.mat)];
    const uint32_t key = L.texture_key + static_cast<uint32_t>(w.mat);
    for (int x = 0; x < cv.W; ++x) {
      const double z = wall_depth(cam, w, (x + 0.5 - cam.xv) / cam.f);
      if (!(z >= w.z0 && z < w.z1) || z < 0.5) continue;
      double top = w.h1;
      if (w.h_amp > 0) top += w.h_amp * (vnoise(static_cast<float>(z / w.h_scale), 0.5f, key ^ 0x1234567u) - 0.5) * 2;
      const int y0 = std::max(0, static_cast<int>(std::floor(cam.yh - (top - cam.hc) * cam.f / z)));
      const int y1 = std::min(cv.H - 1, static_cast<int>(std::ceil(cam.yh + (cam.hc - w.h0) * cam.f / z)));
      for (int y = y0; y <= y1; ++y) {
        const double h = cam.hc - (y + 0.5 - cam.yh) * z / cam.f;   // height of this pixel on the wall
        if (h < w.h0 || h > top) continue;
        const size_t i = size_t(y) * cv.W + x;
        if (!(z < cv.depth[i])) continue;
        float rgb[3];
        shade(m, z, h, key, rgb);
        cv.put(y, x, static_cast<float>(z), w.cls, 0, rgb);
      }
    }
  }
}

// Which part of an object is at (sx, ty) metres from its centre-bottom; returns false if none.
// Sets the class and the material (or a fixed colour in `fixed`).
bool object_part(const Object& o, double sx, double ty, uint8_t& c, int& mat, const float*& fixed) {
  static const float kRed[3] = {0.75f, 0.05f, 0.05f}, kAmber[3] = {0.9f, 0.6f, 0.05f}, kGreen[3] = {0.1f, 0.8f, 0.3f};
  const double W = o.w, H = o.h, ax = std::abs(sx);
  fixed = nullptr;
  switch (o.kind) {
    case ObjectKind::Car: {
      c = cls::Car;
      if (ty < 0.35 && ax > 0.5 * W - 0.38 && ax < 0.5 * W - 0.04) { mat = o.mat3; return true; }   // tyres
      if (ty < 0.2 || ty > H) return false;
      const double waist = (o.shape ? 0.62 : 0.55) * H;
      if (ty < waist) {
        if (ax > 0.5 * W) return false;
        if (ty < 0.3) { mat = o.mat3; return true; }   // bumper
        if (ty > 0.72 * waist && ty < 0.9 * waist && ax > 0.5 * W - 0.28) { fixed = kRed; return true; }   // tail lights
        mat = o.mat;
        return true;
      }
      const double taper = o.shape ? 0.12 : 0.25;
      const double half = 0.5 * W * (1.0 - taper * (ty - waist) / (H - waist));
      if (ax > half) return false;
      const bool glass = ty > waist + 0.12 * (H - waist) && ty < H - 0.1 * (H - waist) && ax < half - 0.1;
      mat = glass ? o.mat2 : o.mat;
      return true;
    }
    case ObjectKind::Truck: {
      c = cls::Truck;
      if (ty < 0.55 && ax > 0.5 * W - 0.55 && ax < 0.5 * W - 0.05) { mat = o.mat3; return true; }
      if (ty < 0.45 || ty > H || ax > 0.5 * W) return false;
      if (ty < 0.65) { mat = o.mat3; return true; }
      if (ty < 0.9 && ax > 0.5 * W - 0.25) { fixed = kRed; return true; }
      mat = ax < 0.03 ? o.mat3 : o.mat;   // door seam
      return true;
    }
    case ObjectKind::Pedestrian:
    case ObjectKind::Cyclist: {
      const bool bike = o.kind == ObjectKind::Cyclist;
      const double base = bike ? 0.55 : 0.0;           // rider sits above the wheels
      if (bike) {
        c = cls::Bicycle;
        if (ty < 0.7 && ax < 0.045) { mat = o.mat2; return true; }                 // wheel seen edge-on
        if (ty > 0.95 && ty < 1.02 && ax < 0.28) { mat = o.mat3; return true; }    // handlebar
        if (ty > 0.45 && ty < 0.6 && ax < 0.06) { mat = o.mat3; return true; }     // frame
      }
      c = cls::Pedestrian;
      const double h = H - base, t = ty - base;
      if (t < 0 || t > h) return false;
      const double head_r = 0.11, head_y = h - head_r - 0.01;
      if ((sx * sx + (t - head_y) * (t - head_y)) < head_r * head_r) { mat = o.mat3; return true; }
      if (t > 0.5 * h && t < head_y - head_r + 0.02 && ax < 0.5 * W) { mat = o.mat; return true; }   // torso
      if (!bike && t <= 0.5 * h && ax > 0.03 && ax < 0.38 * W) { mat = o.mat2; return true; }   // legs
      if (bike && t <= 0.5 * h && ax > 0.05 && ax < 0.17) { mat = o.mat2; return true; }
      return false;
    }
    case ObjectKind::Pole: {
      c = cls::Poles;
      mat = o.mat;
      if (ty < H && ax < 0.5 * W) return true;
      const double dir = o.r > 0 ? -1 : 1;   // the lamp arm reaches over the road
      return ty > H - 0.15 && ty < H && sx * dir > 0 && sx * dir < 1.4;
    }
    case ObjectKind::Sign: {
      const bool board = o.shape == 4;
      const double ps = board ? 2.5 : 0.75, pw = board ? 3.5 : 0.75;   // plate height / width
      const double pc = H - 0.5 * ps;                                     // plate centre height
      const double dx = sx, dy = ty - pc;
      bool in = false, border = false;
      if (o.shape == 0) {
        const double d2 = dx * dx + dy * dy, R = 0.5 * ps;
        in = d2 < R * R;
        border = d2 > 0.72 * R * R;
      } else if (o.shape == 1) {
        const double t = (dy + 0.5 * ps) / ps;   // 0 at the base, 1 at the apex
        in = t >= 0 && t <= 1 && ax < 0.5 * pw * (1 - t);
        border = in && (t < 0.12 || ax > 0.5 * pw * (1 - t) - 0.08);
      } else {
        in = std::abs(dy) < 0.5 * ps && ax < 0.5 * pw;
        border = in && (std::abs(dy) > 0.5 * ps - 0.05 || ax > 0.5 * pw - 0.05);
      }
      if (in) {
        c = cls::TrafficSign;
        mat = o.mat2;
        if (border && o.shape <= 1) fixed = kRed;
        return true;
      }
      c = cls::Poles;
      mat = o.mat;
      if (board) return ty < H && (std::abs(ax - 0.4 * pw) < 0.5 * W);   // two posts
      return ty < H && ax < 0.5 * W;
    }
    case ObjectKind::TrafficLight: {
      if (ty > H - 0.95 && ty < H && ax < 0.18) {
        c = cls::TrafficSignal;
        mat = o.mat2;
        const double lamp = (H - ty) / 0.95;   // 0 top .. 1 bottom
        const double ly = lamp < 0.33 ? 0.165 : lamp < 0.66 ? 0.5 : 0.835;
        if (ax < 0.09 && std::abs(lamp - ly) < 0.1) fixed = lamp < 0.33 ? kRed : lamp < 0.66 ? kAmber : kGreen;
        return true;
      }
      c = cls::Poles;
      mat = o.mat;
      return ty < H && ax < 0.5 * W;
    }
    case ObjectKind::Tree: {
      c = cls::Nature;
      if (ty < 0.45 * H && ax < 0.04 * H + 0.08) { mat = o.mat2; return true; }   // trunk
      const double ey = (ty - 0.68 * H) / (0.32 * H), ex = sx / (0.5 * W);
      if (ex * ex + ey * ey < 1.0) { mat = o.mat; return true; }
      return false;
    }
  }
  return false;
}

// The label colour variant of an object's pixel of class c: the instance's variant for the
// classes with numbered colours (cars, trucks, pedestrians, bicycles), else 0. Classes have
// different variant counts (Car and Bicycle 4, Pedestrian and Truck 3) and a cyclist's rider is
// a Pedestrian with the bicycle's variant (0..3), so the variant wraps into the class's range:
// an index past the class's colour list used to read past its end and wrote stray colours
// (mostly #000000) into the label PNGs.
uint8_t colour_variant(uint8_t c, uint8_t variant) {
  if (c != cls::Car && c != cls::Truck && c != cls::Pedestrian && c != cls::Bicycle) return 0;
  return static_cast<uint8_t>(variant % a2d2_classes()[c].colours.size());
}

void draw_objects(Canvas& cv, const SceneLayout& L) {
  const Camera& cam = L.cam;
  for (const Object& o : L.objects) {
    if (o.z < 1.0) continue;
    const double z = o.z, s = cam.f / z;   // pixels per metre at this depth
    const double X = cam.x0 + cam.k * z * z + o.r;
    const double uc = cam.xv + X * s, yb = cam.yh + cam.hc * s;
    const double half = (o.kind == ObjectKind::Sign ? 2.0 : o.kind == ObjectKind::Pole ? 1.5 : 0.5 * o.w + 0.05);
    const int x0 = std::max(0, static_cast<int>(std::floor(uc - half * s))), x1 = std::min(cv.W - 1, static_cast<int>(std::ceil(uc + half * s)));
    const int y0 = std::max(0, static_cast<int>(std::floor(yb - o.h * s))), y1 = std::min(cv.H - 1, static_cast<int>(std::ceil(yb)));
    const uint32_t key = L.texture_key ^ 0x51ed27u;
    for (int y = y0; y <= y1; ++y) {
      const double ty = (yb - (y + 0.5)) / s;
      for (int x = x0; x <= x1; ++x) {
        const size_t i = size_t(y) * cv.W + x;
        if (!(z < cv.depth[i])) continue;
        const double sx = (x + 0.5 - uc) / s;
        uint8_t c;
        int mat;
        const float* fixed;
        if (!object_part(o, sx, ty, c, mat, fixed)) continue;
        float rgb[3];
        if (fixed) {
          rgb[0] = fixed[0]; rgb[1] = fixed[1]; rgb[2] = fixed[2];
        } else {
          shade(L.mats[static_cast<size_t>(mat)], sx + o.r, ty, key + static_cast<uint32_t>(mat), rgb);
          // simple top light: surfaces get darker towards the ground
          const float shade_f = 0.8f + 0.2f * static_cast<float>(std::min(1.0, ty / std::max(0.5, o.h)));
          darken(rgb, shade_f);
        }
        cv.put(y, x, static_cast<float>(z), c, colour_variant(c, o.variant), rgb);
      }
    }
  }
}

void draw_hood(Canvas& cv, const SceneLayout& L) {
  if (L.hood <= 0) return;
  const Material& m = L.mats[static_cast<size_t>(L.hood_mat)];
  for (int x = 0; x < cv.W; ++x) {
    const double u = (x + 0.5 - 0.5 * cv.W) / (0.5 * cv.W);
    const double top = cv.H * (1.0 - L.hood * (1.0 - 0.6 * u * u));
    for (int y = std::max(0, static_cast<int>(std::floor(top))); y < cv.H; ++y) {
      if (y + 0.5 < top) continue;
      const float refl = static_cast<float>(std::exp(-(y + 0.5 - top) / (0.3 * L.hood * cv.H + 1)));   // sky reflection at the edge
      float rgb[3];
      for (int c = 0; c < 3; ++c) rgb[c] = m.rgb[c] * (1 - 0.5f * refl) + L.sky.horizon[c] * 0.5f * refl;
      cv.put(y, x, 0.1f, cls::EgoCar, 0, rgb);
    }
  }
}

// Exposure, colour cast, vignetting, a light 3x3 blur (the label stays sharp) and sensor noise.
void finish_image(const Canvas& cv, const SceneLayout& L, RandomStream& noise, Image& out) {
  const int H = cv.H, W = cv.W;
  const Lighting& l = L.light;
  std::vector<float> img(cv.col);
  // separable [1 2 1]/4 blur mixed in by l.blur
  if (l.blur > 0) {
    std::vector<float> tmp(img.size());
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        for (int c = 0; c < 3; ++c) {
          const int xl = std::max(0, x - 1), xr = std::min(W - 1, x + 1);
          const size_t row = size_t(y) * W;
          tmp[(row + x) * 3 + c] = 0.25f * img[(row + xl) * 3 + c] + 0.5f * img[(row + x) * 3 + c] + 0.25f * img[(row + xr) * 3 + c];
        }
    for (int y = 0; y < H; ++y) {
      const int yu = std::max(0, y - 1), yd = std::min(H - 1, y + 1);
      for (int x = 0; x < W; ++x)
        for (int c = 0; c < 3; ++c) {
          const size_t i = (size_t(y) * W + x) * 3 + c;
          const float b = 0.25f * tmp[(size_t(yu) * W + x) * 3 + c] + 0.5f * tmp[i] + 0.25f * tmp[(size_t(yd) * W + x) * 3 + c];
          img[i] += l.blur * (b - img[i]);
        }
    }
  }
  out = Image(H, W, 3);
  const float cx = 0.5f * W, cy = 0.5f * H, rn = 1.0f / (cx * cx + cy * cy);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const float d2 = ((x - cx) * (x - cx) + (y - cy) * (y - cy)) * rn;
      const float g = l.gain * (1.0f - l.vignette * d2);
      for (int c = 0; c < 3; ++c) {
        // triangular noise from the two 16-bit halves of one Philox word
        const uint32_t u = noise.next_u32();
        const float tri = ((u & 0xFFFF) + (u >> 16)) * (1.0f / 65536.0f) - 1.0f;   // in (-1, 1), std 1/sqrt(6)
        const size_t i = (size_t(y) * W + x) * 3 + c;
        const float v = img[i] * g * l.cast[c] + tri * l.noise_sigma * 2.449f;
        out.pixels[i] = static_cast<uint8_t>(std::clamp(v * 255.0f + 0.5f, 0.0f, 255.0f));
      }
    }
}

}  // namespace

Image RenderedScene::label_rgb() const {
  Image img(height, width, 3);
  const auto& classes = a2d2_classes();
  for (size_t i = 0; i < class_id.size(); ++i) {
    const auto& colours = classes[class_id[i]].colours;   // every class id the renderer writes is < 38
    MOESEG_CHECK(variant[i] < colours.size(), "label_rgb: pixel ", i, " of class ", int(class_id[i]), " has colour variant ",
                 int(variant[i]), ", the class has ", colours.size());
    const RGB& c = colours[variant[i]];
    img.pixels[3 * i] = c[0];
    img.pixels[3 * i + 1] = c[1];
    img.pixels[3 * i + 2] = c[2];
  }
  return img;
}

Tensor RenderedScene::label_tensor() const {
  Tensor t = Tensor::empty({height, width}, DType::Int64);
  int64_t* p = t.data<int64_t>();
  for (size_t i = 0; i < class_id.size(); ++i) p[i] = class_id[i];
  return t;
}

RenderedScene render_layout(const SceneLayout& layout, int height, int width, RandomStream& noise_rng) {
  MOESEG_CHECK(height >= 8 && width >= 8, "render_layout: image size ", height, "x", width, " is too small (8x8 minimum)");
  Canvas cv(height, width);
  draw_sky(cv, layout);
  draw_ground(cv, layout);
  draw_walls(cv, layout);
  draw_objects(cv, layout);
  draw_hood(cv, layout);
  RenderedScene out;
  out.height = height;
  out.width = width;
  finish_image(cv, layout, noise_rng, out.rgb);
  out.class_id = std::move(cv.cls);
  out.variant = std::move(cv.var);
  return out;
}

RenderedScene render_scene(SceneDomain domain, uint64_t seed, uint32_t stream, uint32_t index, int height, int width) {
  // Two independent Philox streams per image: the layout (scene content) and the sensor noise,
  // so the number of layout draws never shifts the noise and vice versa.
  RandomStream layout_rng(seed, static_cast<uint32_t>(domain), stream, index * 2u);
  RandomStream noise_rng(seed, static_cast<uint32_t>(domain), stream, index * 2u + 1u);
  SceneLayout L = make_scene_layout(domain, layout_rng, height, width);
  return render_layout(L, height, width, noise_rng);
}

}  // namespace moeseg::data
