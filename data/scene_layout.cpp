// Random scene layouts for the three domains of the synthetic A2D2 stand-in:
//   highway   — 2-4 lanes per direction, wide shoulders, dashed lane lines and solid edge lines,
//               guard rails (Sidebars), grass verges and tree lines, an opposite carriageway
//               behind a median, cars and many trucks spread over 8-150 m, big direction signs;
//   urban     — 1-2 lanes per direction on a narrower road, curbstones, sidewalks, building
//               facades in blocks with windows, parked cars, pedestrians, street-light poles,
//               traffic signs and lights, zebra crossings, cyclists, street trees;
//   ambiguous — suburban streets (low houses behind front gardens, sidewalk on one side) or
//               highway exits (a diverging exit lane, buildings in the distance).
// Colours are drawn so that classes overlap in the IMAGE (grey road / sidewalk / facade / silver
// car / overcast sky; green car / grass; white truck / white facade / lane paint): telling them
// apart needs geometry, context and texture, not a colour lookup. Only labels use A2D2 colours.
#include "data/scene_layout.h"

#include <algorithm>
#include <cmath>

namespace moeseg::data {

const char* scene_domain_name(SceneDomain d) {
  switch (d) {
    case SceneDomain::Highway: return "highway";
    case SceneDomain::Urban: return "urban";
    case SceneDomain::Ambiguous: return "ambiguous";
  }
  return "?";
}

namespace {

using R = RandomStream;
constexpr double kFar = 1e4;

void set_rgb(float* dst, double r, double g, double b) {
  dst[0] = static_cast<float>(std::clamp(r, 0.0, 1.0));
  dst[1] = static_cast<float>(std::clamp(g, 0.0, 1.0));
  dst[2] = static_cast<float>(std::clamp(b, 0.0, 1.0));
}

// A grey with a small random tint: the shared base of road, sidewalk, curb, facades, rails, cars.
void grey(R& rng, float* dst, double lo, double hi, double tint = 0.03) {
  double l = rng.uniform(lo, hi);
  set_rgb(dst, l + rng.normal(0, tint), l + rng.normal(0, tint), l + rng.normal(0, tint));
}

Material asphalt(R& rng) {
  Material m;
  grey(rng, m.rgb, 0.22, 0.52, 0.02);
  m.tex_amp = static_cast<float>(rng.uniform(0.08, 0.3));
  m.tex_scale = static_cast<float>(rng.uniform(2.0, 10.0));   // patches, repairs, wet spots
  m.grain = static_cast<float>(rng.uniform(0.04, 0.12));
  return m;
}

Material paving(R& rng) {
  Material m;
  if (rng.bernoulli(0.3)) {   // red brick / concrete-pink pavers
    double l = rng.uniform(0.35, 0.6);
    set_rgb(m.rgb, l + 0.12, l - 0.02, l - 0.06);
  } else {
    grey(rng, m.rgb, 0.3, 0.7);
  }
  m.tex_amp = static_cast<float>(rng.uniform(0.05, 0.2));
  m.tex_scale = 3.0f;
  m.grain = static_cast<float>(rng.uniform(0.03, 0.08));
  m.pattern = rng.bernoulli(0.8) ? Pattern::Paving : Pattern::None;
  set_rgb(m.pattern_rgb, m.rgb[0] * 0.7, m.rgb[1] * 0.7, m.rgb[2] * 0.7);
  m.p1 = static_cast<float>(rng.uniform(0.25, 0.6));
  m.p2 = static_cast<float>(rng.uniform(0.25, 0.6));
  return m;
}

Material concrete(R& rng, double lo, double hi) {
  Material m;
  grey(rng, m.rgb, lo, hi);
  m.tex_amp = static_cast<float>(rng.uniform(0.03, 0.12));
  m.tex_scale = 2.0f;
  m.grain = 0.04f;
  return m;
}

Material paint(R& rng) {
  Material m;
  double l = rng.uniform(0.62, 0.95);
  if (rng.bernoulli(0.1)) set_rgb(m.rgb, l, l * 0.85, l * 0.3);   // yellow construction-zone paint
  else set_rgb(m.rgb, l, l, l * rng.uniform(0.95, 1.02));
  m.tex_amp = static_cast<float>(rng.uniform(0.05, 0.25));   // worn paint
  m.tex_scale = 0.7f;
  m.grain = 0.05f;
  return m;
}

Material grass(R& rng) {
  Material m;
  double l = rng.uniform(0.5, 1.1);
  if (rng.bernoulli(0.25)) set_rgb(m.rgb, 0.45 * l, 0.42 * l, 0.22 * l);   // dry grass
  else set_rgb(m.rgb, rng.uniform(0.18, 0.35) * l, rng.uniform(0.32, 0.5) * l, rng.uniform(0.1, 0.25) * l);
  m.tex_amp = static_cast<float>(rng.uniform(0.15, 0.35));
  m.tex_scale = static_cast<float>(rng.uniform(0.5, 3.0));
  m.grain = 0.1f;
  return m;
}

Material foliage(R& rng) {
  Material m;
  double l = rng.uniform(0.5, 1.0);
  if (rng.bernoulli(0.15)) set_rgb(m.rgb, 0.5 * l, 0.35 * l, 0.12 * l);   // autumn
  else set_rgb(m.rgb, rng.uniform(0.1, 0.3) * l, rng.uniform(0.25, 0.45) * l, rng.uniform(0.08, 0.2) * l);
  m.tex_amp = static_cast<float>(rng.uniform(0.3, 0.6));
  m.tex_scale = static_cast<float>(rng.uniform(0.4, 1.5));
  m.grain = 0.12f;
  m.pattern = Pattern::Foliage;
  set_rgb(m.pattern_rgb, m.rgb[0] * 0.4, m.rgb[1] * 0.45, m.rgb[2] * 0.4);
  return m;
}

Material facade(R& rng, const SkyStyle& sky) {
  Material m;
  const double u = rng.uniform();
  if (u < 0.35) grey(rng, m.rgb, 0.45, 0.92);                     // plaster, white to grey
  else if (u < 0.6) { double l = rng.uniform(0.6, 0.9); set_rgb(m.rgb, l, l * 0.92, l * 0.75); }   // beige
  else if (u < 0.8) { double l = rng.uniform(0.35, 0.6); set_rgb(m.rgb, l + 0.15, l * 0.6, l * 0.45); }  // brick
  else set_rgb(m.rgb, rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9));   // pastel
  m.tex_amp = static_cast<float>(rng.uniform(0.03, 0.15));
  m.tex_scale = 4.0f;
  m.grain = 0.04f;
  m.pattern = Pattern::Windows;
  // Windows are dark or reflect the sky, so window colours overlap sky colours.
  if (rng.bernoulli(0.4)) set_rgb(m.pattern_rgb, sky.horizon[0] * 0.9, sky.horizon[1] * 0.9, sky.horizon[2] * 0.9);
  else grey(rng, m.pattern_rgb, 0.08, 0.3);
  m.p1 = static_cast<float>(rng.uniform(2.8, 3.5));   // floor height
  m.p2 = static_cast<float>(rng.uniform(2.0, 4.0));   // window spacing along the street
  return m;
}

Material vehicle_paint(R& rng) {
  Material m;
  const double u = rng.uniform();
  if (u < 0.25) grey(rng, m.rgb, 0.75, 0.95, 0.01);          // white
  else if (u < 0.5) grey(rng, m.rgb, 0.45, 0.7, 0.01);       // silver / grey
  else if (u < 0.7) grey(rng, m.rgb, 0.05, 0.2, 0.01);       // black
  else if (u < 0.8) set_rgb(m.rgb, rng.uniform(0.5, 0.8), rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15));   // red
  else if (u < 0.9) set_rgb(m.rgb, rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.3), rng.uniform(0.35, 0.6));    // blue
  else set_rgb(m.rgb, rng.uniform(0.1, 0.3), rng.uniform(0.25, 0.45), rng.uniform(0.1, 0.25));                 // green
  m.tex_amp = 0.04f;
  m.tex_scale = 1.0f;
  m.grain = 0.02f;
  return m;
}

Material plain(double r, double g, double b, double amp = 0.05) {
  Material m;
  set_rgb(m.rgb, r, g, b);
  m.tex_amp = static_cast<float>(amp);
  m.tex_scale = 0.5f;
  m.grain = 0.03f;
  return m;
}

Material clothes(R& rng) {
  Material m;
  if (rng.bernoulli(0.5)) grey(rng, m.rgb, 0.05, 0.6, 0.04);
  else set_rgb(m.rgb, rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.9));
  m.tex_amp = 0.1f;
  m.tex_scale = 0.3f;
  m.grain = 0.05f;
  return m;
}

Material sign_plate(R& rng, int& shape) {
  shape = rng.randint(0, 3);   // 0 round (white, red ring), 1 triangle, 2 blue rectangle, 3 green/yellow rectangle
  Material m;
  if (shape == 0 || shape == 1) set_rgb(m.rgb, 0.9, 0.9, 0.9);
  else if (shape == 2) set_rgb(m.rgb, 0.1, 0.25, 0.65);
  else if (rng.bernoulli(0.5)) set_rgb(m.rgb, 0.1, 0.45, 0.2);
  else set_rgb(m.rgb, 0.9, 0.75, 0.1);
  m.tex_amp = 0.03f;
  m.grain = 0.02f;
  m.pattern_rgb[0] = 0.8f; m.pattern_rgb[1] = 0.1f; m.pattern_rgb[2] = 0.1f;   // red ring / border
  return m;
}

SkyStyle make_sky(R& rng) {
  SkyStyle s;
  if (rng.bernoulli(0.35)) {   // overcast: grey-white, overlaps facades, trucks and paint
    double l = rng.uniform(0.55, 0.92);
    set_rgb(s.top, l * 0.95, l * 0.97, l);
    set_rgb(s.horizon, l * 1.02, l * 1.02, l * 1.03);
    s.clouds = static_cast<float>(rng.uniform(0.0, 0.3));
  } else {
    set_rgb(s.top, rng.uniform(0.2, 0.45), rng.uniform(0.4, 0.65), rng.uniform(0.75, 0.98));
    set_rgb(s.horizon, rng.uniform(0.65, 0.85), rng.uniform(0.75, 0.9), rng.uniform(0.85, 1.0));
    s.clouds = static_cast<float>(rng.uniform(0.0, 0.7));
  }
  grey(rng, s.cloud_rgb, 0.8, 0.98, 0.01);
  return s;
}

void add_vehicle(SceneLayout& L, R& rng, double r, double z, bool truck) {
  Object o{};
  o.kind = truck ? ObjectKind::Truck : ObjectKind::Car;
  o.r = r;
  o.z = z;
  if (truck) {
    o.w = rng.uniform(2.4, 2.55);
    o.h = rng.uniform(3.0, 4.0);
    o.len = rng.uniform(8, 16);
    o.variant = static_cast<uint8_t>(rng.randint(0, 2));
  } else {
    o.w = rng.uniform(1.7, 2.0);
    o.h = rng.uniform(1.35, 1.75);
    o.len = rng.uniform(4.0, 5.0);
    o.variant = static_cast<uint8_t>(rng.randint(0, 3));
  }
  o.mat = L.add(vehicle_paint(rng));
  Material glass = plain(0.08, 0.1, 0.12, 0.1);
  if (rng.bernoulli(0.3)) set_rgb(glass.rgb, L.sky.horizon[0] * 0.7, L.sky.horizon[1] * 0.7, L.sky.horizon[2] * 0.7);
  o.mat2 = L.add(glass);
  o.mat3 = L.add(plain(0.05, 0.05, 0.05));   // tyres, bumper
  o.shape = rng.randint(0, 1);
  L.objects.push_back(o);
}

void add_pedestrian(SceneLayout& L, R& rng, double r, double z) {
  Object o{};
  o.kind = ObjectKind::Pedestrian;
  o.r = r;
  o.z = z;
  o.h = rng.uniform(1.5, 1.95);
  o.w = o.h * rng.uniform(0.26, 0.32);
  o.len = 0.4;
  o.variant = static_cast<uint8_t>(rng.randint(0, 2));
  o.mat = L.add(clothes(rng));
  Material pants = clothes(rng);
  if (rng.bernoulli(0.6)) grey(rng, pants.rgb, 0.05, 0.3, 0.04);
  o.mat2 = L.add(pants);
  double skin = rng.uniform(0.35, 0.85);
  o.mat3 = L.add(plain(skin, skin * 0.75, skin * 0.6, 0.03));
  L.objects.push_back(o);
}

void add_pole(SceneLayout& L, R& rng, double r, double z, ObjectKind kind) {
  Object o{};
  o.kind = kind;
  o.r = r;
  o.z = z;
  o.w = rng.uniform(0.12, 0.25);   // pole width
  o.h = kind == ObjectKind::Pole ? rng.uniform(5.0, 9.0) : rng.uniform(2.6, 3.8);
  o.len = 0.2;
  o.mat = L.add(concrete(rng, 0.25, 0.7));
  if (kind == ObjectKind::Sign) o.mat2 = L.add(sign_plate(rng, o.shape));
  else if (kind == ObjectKind::TrafficLight) o.mat2 = L.add(plain(0.1, 0.1, 0.1, 0.05));
  o.mat3 = o.mat;
  o.variant = 0;
  L.objects.push_back(o);
}

void add_tree(SceneLayout& L, R& rng, double r, double z) {
  Object o{};
  o.kind = ObjectKind::Tree;
  o.r = r;
  o.z = z;
  o.h = rng.uniform(4, 10);
  o.w = o.h * rng.uniform(0.4, 0.7);   // crown width
  o.len = 1;
  o.mat = L.add(foliage(rng));
  double l = rng.uniform(0.2, 0.4);
  o.mat2 = L.add(plain(l, l * 0.8, l * 0.6, 0.1));   // trunk
  o.mat3 = o.mat;
  L.objects.push_back(o);
}

void add_line(SceneLayout& L, double r, double s, double width, bool dashed, double period, double duty, R& rng, int mat,
              double zmin = 0, double zmax = kFar) {
  L.lines.push_back({r, s, width, zmin, zmax, dashed, period, duty, rng.uniform(0, period),
                     dashed ? cls::DashedLine : cls::SolidLine, mat});
}

// Tree line (or hedge) at lateral r, in segments with gaps.
void add_tree_line(SceneLayout& L, R& rng, double r, double hmin, double hmax, double z_start = 2) {
  const int mat = L.add(foliage(rng));
  double z = z_start;
  while (z < 400) {
    double len = rng.uniform(20, 150);
    L.walls.push_back({r + rng.uniform(-1, 1), 0, z, z + len, 0, rng.uniform(hmin, hmax), rng.uniform(1, 4),
                       rng.uniform(2, 8), cls::Nature, mat});
    z += len + (rng.bernoulli(0.5) ? rng.uniform(2, 30) : 0);
  }
}

void add_buildings(SceneLayout& L, R& rng, double r, double hmin, double hmax, double gap_p) {
  double z = rng.uniform(-5, 10);
  while (z < 250) {
    double len = rng.uniform(8, 40);
    L.walls.push_back({r + rng.uniform(-0.5, 0.5) * (r > 0 ? 1 : -1), 0, z, z + len, 0, rng.uniform(hmin, hmax), 0, 1,
                       cls::Buildings, L.add(facade(rng, L.sky))});
    z += len + (rng.bernoulli(gap_p) ? rng.uniform(2, 12) : 0);
  }
}

// ---- highway ---------------------------------------------------------------------------------
void layout_highway(SceneLayout& L, R& rng, bool exit_ramp) {
  const int n = rng.randint(2, 4);
  const double lw = rng.uniform(3.4, 3.8);
  const int e = rng.randint(0, n - 1);
  const double rl = -(e + 0.5) * lw, rr = (n - e - 0.5) * lw;
  const double sh_r = rng.uniform(0.5, 3.2), sh_l = rng.uniform(0.4, 1.2);
  const int road = L.add(asphalt(rng));
  const int paint_m = L.add(paint(rng));
  L.bands.push_back({rl - sh_l, 0, rr + sh_r, 0, 0, kFar, cls::Road, road});
  add_line(L, rl, 0, rng.uniform(0.15, 0.3), false, 1, 1, rng, paint_m);
  add_line(L, rr, 0, rng.uniform(0.2, 0.3), false, 1, 1, rng, paint_m);
  const double period = rng.uniform(15, 20), duty = rng.uniform(0.28, 0.4);
  for (int i = 1; i < n; ++i) add_line(L, rl + i * lw, 0, 0.15, true, period, duty, rng, paint_m);

  double right_edge = rr + sh_r;
  if (exit_ramp) {   // an exit lane that leaves the carriageway to the right
    const double zs = rng.uniform(15, 60), s = rng.uniform(0.06, 0.15), w = rng.uniform(3.4, 4.0);
    L.bands.push_back({rr, 0, rr + w - s * zs, s, zs, kFar, cls::Road, road});
    L.bands.push_back({rr, 0, rr + w, 0, 0, zs, cls::Road, road});
    add_line(L, rr + w - s * zs, s, 0.25, false, 1, 1, rng, paint_m, zs, kFar);
    add_line(L, rr + w, 0, 0.25, false, 1, 1, rng, paint_m, 0, zs);
    L.lines.back().cls = cls::SolidLine;
    // the main carriageway edge becomes a broad dashed line along the exit lane
    L.lines[1].dashed = true;
    L.lines[1].cls = cls::DashedLine;
    L.lines[1].period = 6;
    L.lines[1].duty = 0.5;
    right_edge = rr + w + 1.0;
  }
  const int rail = L.add(concrete(rng, 0.45, 0.85));
  L.mats[rail].pattern = Pattern::Streaks;
  if (!exit_ramp && rng.bernoulli(0.85))
    L.walls.push_back({right_edge + rng.uniform(0.3, 1.0), 0, 1, kFar, 0.3, 0.75, 0, 1, cls::Sidebars, rail});
  // median and opposite carriageway
  double left_edge = rl - sh_l;
  if (rng.bernoulli(0.75)) {
    L.walls.push_back({left_edge - rng.uniform(0.3, 0.8), 0, 1, kFar, 0.3, 0.75, 0, 1, cls::Sidebars, rail});
    const double median = rng.uniform(1.0, 4.0);
    if (rng.bernoulli(0.7)) {
      const int n2 = rng.randint(2, 3);
      const double o_r = left_edge - median, o_l = o_r - n2 * lw - 1.5;
      L.bands.push_back({o_l, 0, o_r, 0, 0, kFar, cls::Road, road});
      add_line(L, o_r - 0.5, 0, 0.2, false, 1, 1, rng, paint_m);
      for (int i = 1; i < n2; ++i) add_line(L, o_r - 0.5 - i * lw, 0, 0.15, true, period, duty, rng, paint_m);
      for (int i = 0, m = rng.randint(0, 4); i < m; ++i)
        add_vehicle(L, rng, o_r - 0.5 - (rng.randint(0, n2 - 1) + 0.5) * lw, rng.uniform(10, 140), rng.bernoulli(0.3));
      left_edge = o_l;
    } else {
      left_edge -= median;
    }
  }
  add_tree_line(L, rng, right_edge + rng.uniform(3, 25), 4, 16);
  add_tree_line(L, rng, left_edge - rng.uniform(3, 25), 4, 16);
  // traffic: trucks are common on highways
  std::vector<double> last(static_cast<size_t>(n), -100.0);
  for (int i = 0, m = rng.randint(1, 9); i < m; ++i) {
    const int lane = rng.randint(0, n - 1);
    const double z = rng.uniform(7, 150);
    if (std::abs(z - last[static_cast<size_t>(lane)]) < 14) continue;
    last[static_cast<size_t>(lane)] = z;
    add_vehicle(L, rng, rl + (lane + 0.5) * lw + rng.normal(0, 0.25), z, rng.bernoulli(0.4));
  }
  if (rng.bernoulli(0.5)) {   // direction sign on the verge
    add_pole(L, rng, right_edge + rng.uniform(1, 4), rng.uniform(15, 90), ObjectKind::Sign);
    L.objects.back().h = rng.uniform(3, 5);
    L.objects.back().shape = 4;   // big rectangular board
  }
  L.light.shadow_thresh = static_cast<float>(rng.bernoulli(0.5) ? rng.uniform(0.55, 0.75) : 2.0);   // tree shadows
  L.light.shadow_rmin = right_edge - 4;
  L.light.shadow_rmax = 1e9;
  if (exit_ramp) add_buildings(L, rng, right_edge + rng.uniform(40, 80), 8, 30, 0.5);
}

// ---- urban / suburban ------------------------------------------------------------------------
void layout_urban(SceneLayout& L, R& rng, bool suburban) {
  const int nl = rng.randint(1, 2), nr = rng.randint(1, suburban ? 1 : 2);
  const double lw = suburban ? rng.uniform(3.2, 3.6) : rng.uniform(2.8, 3.3);
  const int e = nl + rng.randint(0, nr - 1);
  const double rl = -(e + 0.5) * lw, rr = (nl + nr - e - 0.5) * lw;
  const int road = L.add(asphalt(rng));
  const int paint_m = L.add(paint(rng));
  L.bands.push_back({rl, 0, rr, 0, 0, kFar, cls::Road, road});
  add_line(L, rl + nl * lw, 0, 0.12, rng.bernoulli(0.7), rng.uniform(6, 9), 0.4, rng, paint_m);
  for (int i = 1; i < nl + nr; ++i)
    if (i != nl) add_line(L, rl + i * lw, 0, 0.12, true, rng.uniform(6, 9), 0.4, rng, paint_m);
  if (rng.bernoulli(0.3)) {
    add_line(L, rl + 0.3, 0, 0.12, false, 1, 1, rng, paint_m);
    add_line(L, rr - 0.3, 0, 0.12, false, 1, 1, rng, paint_m);
  }
  // parking strip on the right
  double edge_r = rr, edge_l = rl;
  const bool parking = rng.bernoulli(suburban ? 0.2 : 0.6);
  if (parking) {
    const bool marked = rng.bernoulli(0.4);
    Material pm = marked ? paving(rng) : L.mats[static_cast<size_t>(road)];
    if (marked) pm.pattern = Pattern::Cobbles;
    L.bands.push_back({rr, 0, rr + 2.3, 0, 0, kFar, marked ? cls::Parking : cls::Road, L.add(pm)});
    for (double z = rng.uniform(3, 10); z < 90; z += rng.uniform(5.5, 9))
      if (rng.bernoulli(0.7)) add_vehicle(L, rng, rr + 1.15 + rng.normal(0, 0.1), z, rng.bernoulli(0.05));
    edge_r = rr + 2.3;
  }
  const int curb = L.add(concrete(rng, 0.5, 0.8));
  const double cw = rng.uniform(0.15, 0.3);
  const int walk = L.add(paving(rng));
  const double sw_r = rng.uniform(2, 5), sw_l = rng.uniform(2, 5);
  const bool left_walk = !suburban || rng.bernoulli(0.4);
  L.bands.push_back({edge_r, 0, edge_r + cw, 0, 0, kFar, cls::Curbstone, curb});
  L.bands.push_back({edge_r + cw, 0, edge_r + cw + sw_r, 0, 0, kFar, cls::Sidewalk, walk});
  const double walk_r_end = edge_r + cw + sw_r;
  double walk_l_end = edge_l;
  if (left_walk) {
    L.bands.push_back({edge_l - cw, 0, edge_l, 0, 0, kFar, cls::Curbstone, curb});
    L.bands.push_back({edge_l - cw - sw_l, 0, edge_l - cw, 0, 0, kFar, cls::Sidewalk, walk});
    walk_l_end = edge_l - cw - sw_l;
  }
  if (suburban) {   // front gardens, hedges, low houses set back; guard rail or verge opposite
    const double yard = rng.uniform(3, 10);
    add_tree_line(L, rng, walk_r_end + 0.5, 0.8, 2.0, 0);
    add_buildings(L, rng, walk_r_end + yard, 5, 10, 0.6);
    if (left_walk) add_buildings(L, rng, walk_l_end - yard, 5, 10, 0.6);
    else {
      if (rng.bernoulli(0.5))
        L.walls.push_back({edge_l - 0.5, 0, 1, kFar, 0.3, 0.75, 0, 1, cls::Sidebars, L.add(concrete(rng, 0.45, 0.85))});
      add_tree_line(L, rng, edge_l - rng.uniform(3, 12), 4, 12);
    }
    for (int i = 0, m = rng.randint(0, 5); i < m; ++i) add_tree(L, rng, walk_r_end + rng.uniform(1, yard - 1), rng.uniform(5, 80));
  } else {
    add_buildings(L, rng, walk_r_end, 8, 25, 0.25);
    add_buildings(L, rng, walk_l_end, 8, 25, 0.25);
    // a tree line behind the gaps between buildings
    add_tree_line(L, rng, walk_r_end + rng.uniform(10, 30), 6, 14);
    add_tree_line(L, rng, walk_l_end - rng.uniform(10, 30), 6, 14);
    if (rng.bernoulli(0.4))
      for (double z = rng.uniform(5, 15); z < 80; z += rng.uniform(10, 20)) add_tree(L, rng, walk_r_end - 0.8, z);
  }
  // zebra crossing, with pedestrians on it
  if (rng.bernoulli(suburban ? 0.25 : 0.5)) {
    const double z0 = rng.uniform(8, 35), len = rng.uniform(3, 5);
    L.zebras.push_back({rl, edge_r, z0, z0 + len, rng.uniform(0.9, 1.1), L.add(paint(rng))});
    for (int i = 0, m = rng.randint(0, 3); i < m; ++i) add_pedestrian(L, rng, rng.uniform(rl, rr), z0 + rng.uniform(0.5, len - 0.5));
    if (rng.bernoulli(0.6)) add_pole(L, rng, edge_r + cw + 0.4, z0 - 0.5, ObjectKind::TrafficLight);
  }
  // moving traffic
  for (int i = 0, m = rng.randint(0, suburban ? 3 : 4); i < m; ++i) {
    const int lane = rng.randint(0, nl + nr - 1);
    add_vehicle(L, rng, rl + (lane + 0.5) * lw + rng.normal(0, 0.2), rng.uniform(6, 70), rng.bernoulli(suburban ? 0.15 : 0.08));
  }
  if (rng.bernoulli(suburban ? 0.15 : 0.35)) {   // cyclist near the right edge
    Object o{};
    o.kind = ObjectKind::Cyclist;
    o.r = rr - 0.8;
    o.z = rng.uniform(6, 40);
    o.h = rng.uniform(1.6, 1.9);
    o.w = 0.6;
    o.len = 1.7;
    o.variant = static_cast<uint8_t>(rng.randint(0, 3));
    o.mat = L.add(clothes(rng));
    o.mat2 = L.add(plain(0.1, 0.1, 0.1));
    o.mat3 = L.add(vehicle_paint(rng));
    L.objects.push_back(o);
  }
  // pedestrians on the sidewalks
  for (int i = 0, m = rng.randint(suburban ? 0 : 2, suburban ? 3 : 12); i < m; ++i) {
    const bool right = !left_walk || rng.bernoulli(0.55);
    const double r = right ? rng.uniform(edge_r + cw + 0.3, walk_r_end - 0.3) : rng.uniform(walk_l_end + 0.3, edge_l - cw - 0.3);
    add_pedestrian(L, rng, r, rng.uniform(4, 60));
  }
  // street lights and signs along the curb
  for (double z = rng.uniform(5, 25); z < 150; z += rng.uniform(20, 40)) add_pole(L, rng, edge_r + cw + 0.3, z, ObjectKind::Pole);
  if (left_walk && rng.bernoulli(0.6))
    for (double z = rng.uniform(5, 25); z < 150; z += rng.uniform(20, 40)) add_pole(L, rng, edge_l - cw - 0.3, z, ObjectKind::Pole);
  for (int i = 0, m = rng.randint(0, 4); i < m; ++i) add_pole(L, rng, edge_r + cw + 0.4, rng.uniform(6, 60), ObjectKind::Sign);
  // building shadows across the street
  L.light.shadow_thresh = static_cast<float>(rng.bernoulli(0.6) ? rng.uniform(0.35, 0.6) : 2.0);
  L.light.shadow_scale = static_cast<float>(rng.uniform(8, 25));
}

}  // namespace

SceneLayout make_scene_layout(SceneDomain domain, RandomStream& rng, int height, int width) {
  SceneLayout L;
  L.domain = domain;
  L.texture_key = rng.next_u32();
  Camera& c = L.cam;
  c.f = width * rng.uniform(0.75, 0.95);
  c.xv = width * (0.5 + rng.uniform(-0.06, 0.06));
  c.yh = height * rng.uniform(0.36, 0.48);
  c.hc = rng.uniform(1.35, 1.65);
  c.x0 = rng.normal(0, 0.2);
  c.k = domain == SceneDomain::Urban ? rng.normal(0, 0.0005) : rng.normal(0, 0.0012);
  L.sky = make_sky(rng);
  L.ground_mat = L.add(grass(rng));
  L.ground_cls = cls::Nature;

  switch (domain) {
    case SceneDomain::Highway: layout_highway(L, rng, false); break;
    case SceneDomain::Urban: layout_urban(L, rng, false); break;
    case SceneDomain::Ambiguous:
      if (rng.bernoulli(0.5)) layout_urban(L, rng, true);
      else layout_highway(L, rng, true);
      break;
  }
  // Lighting: exposure, white balance, shadow strength, sensor noise, optics.
  Lighting& l = L.light;
  l.gain = static_cast<float>(rng.uniform(0.6, 1.3));
  for (float& x : l.cast) x = static_cast<float>(1.0 + rng.normal(0, 0.06));
  l.shadow = static_cast<float>(rng.uniform(0.4, 0.75));
  l.sun_dx = static_cast<float>(rng.uniform(-0.8, 0.8));
  l.noise_sigma = static_cast<float>(rng.uniform(0.008, 0.04));
  l.blur = static_cast<float>(rng.uniform(0.0, 0.7));
  l.vignette = static_cast<float>(rng.uniform(0.0, 0.25));
  if (rng.bernoulli(0.4)) {   // ego-car hood at the bottom of the frame
    L.hood = rng.uniform(0.05, 0.12);
    Material hood = vehicle_paint(rng);
    L.hood_mat = L.add(hood);
  }
  // Far-to-near so the painter's order matches the depth test for equal depths.
  std::stable_sort(L.objects.begin(), L.objects.end(), [](const Object& a, const Object& b) { return a.z > b.z; });
  return L;
}

}  // namespace moeseg::data
