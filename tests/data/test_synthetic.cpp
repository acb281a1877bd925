// The synthetic scene generator: determinism (bytes, across thread counts), the A2D2 tree it
// writes loads with the A2D2 loader, the task is not a colour lookup, the domains differ. Its
// throughput is measured by `moeseg bench synthetic` (bench/synthetic_bench.cpp), not here.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "data/a2d2.h"
#include "data/image_io.h"
#include "data/synthetic_scenes.h"
#include "data_test_util.h"

using namespace moeseg;
using namespace moeseg::data;
using namespace moeseg::testing;
namespace fs = std::filesystem;

namespace {
std::map<std::string, std::string> read_tree(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    files[fs::relative(e.path(), root).string()] = ss.str();
  }
  return files;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  return lines;
}

SynthOptions small_options(const std::string& out, uint64_t seed, int threads) {
  SynthOptions o;
  o.out = out;
  o.seed = seed;
  o.height = 48;
  o.width = 64;
  o.train = 4;
  o.val = 2;
  o.test = 2;
  o.ambiguous_test = 3;
  o.threads = threads;
  return o;
}
}  // namespace

TEST_CASE("synthetic: one scene is a pure function of (seed, domain, split, index)") {
  RenderedScene a = render_scene(SceneDomain::Urban, 5, 0, 3, 60, 80);
  RenderedScene b = render_scene(SceneDomain::Urban, 5, 0, 3, 60, 80);
  CHECK(a.rgb.pixels == b.rgb.pixels);
  CHECK(a.class_id == b.class_id);
  CHECK(a.variant == b.variant);
  RenderedScene c = render_scene(SceneDomain::Urban, 6, 0, 3, 60, 80);
  CHECK(a.rgb.pixels != c.rgb.pixels);
  RenderedScene d = render_scene(SceneDomain::Urban, 5, 0, 4, 60, 80);
  CHECK(a.class_id != d.class_id);
}

TEST_CASE("synthetic: the written tree is byte-identical for 1 and 2 threads, and differs with the seed") {
  TempDir t1("synth"), t2("synth"), t3("synth");
  SynthReport r = generate_synthetic_a2d2(small_options(t1.str(), 11, 1));
  CHECK(r.images == 2 * (4 + 2 + 2) + 3);
  generate_synthetic_a2d2(small_options(t2.str(), 11, 2));
  generate_synthetic_a2d2(small_options(t3.str(), 12, 2));
  auto f1 = read_tree(t1.path), f2 = read_tree(t2.path), f3 = read_tree(t3.path);
  CHECK(f1.size() == f2.size());
  CHECK(f1 == f2);
  size_t differing = 0, images = 0;
  for (auto& [name, bytes] : f1)
    if (name.find("/camera/") != std::string::npos) {
      ++images;
      differing += f3.count(name) && f3[name] != bytes;
    }
  CHECK(images == 19);
  CHECK(differing == images);
}

TEST_CASE("synthetic: the tree is an A2D2 tree: split files like the reference, loads with the A2D2 loader") {
  TempDir tmp("synth");
  SynthOptions o = small_options(tmp.str(), 3, 0);
  generate_synthetic_a2d2(o);
  for (const char* f : {"highway_train_gt.txt", "highway_val_gt.txt", "highway_test_gt.txt", "urban_train_gt.txt",
                        "urban_val_gt.txt", "urban_test_gt.txt", "ambiguous_test_gt.txt", "all_train_gt.txt",
                        "all_val_gt.txt", "all_test_gt.txt"})
    CHECK_MESSAGE(fs::exists(tmp.path / "splits" / f), f);
  CHECK(fs::exists(tmp.path / "class_list.json"));
  // all_* is exactly highway_* followed by urban_*
  for (const char* split : {"train", "val", "test"}) {
    auto h = read_lines(tmp.str(std::string("splits/highway_") + split + "_gt.txt"));
    auto u = read_lines(tmp.str(std::string("splits/urban_") + split + "_gt.txt"));
    auto all = read_lines(tmp.str(std::string("splits/all_") + split + "_gt.txt"));
    h.insert(h.end(), u.begin(), u.end());
    CHECK(all == h);
  }
  CHECK(read_lines(tmp.str("splits/highway_train_gt.txt")).front().rfind("highway/train_val/GT/", 0) == 0);
  CHECK(read_lines(tmp.str("splits/urban_test_gt.txt")).front().rfind("urban/test/GT/", 0) == 0);
  // every image loads, and the decoded label equals the renderer's class map
  A2D2Options ao;
  ao.root = tmp.str();
  for (const char* subset : {"highway", "urban"})
    for (SynthSplit sp : {SynthSplit::Train, SynthSplit::Val, SynthSplit::Test}) {
      ao.subset = subset;
      ao.split = synth_split_name(sp);
      A2D2Dataset ds(ao);
      const int n = sp == SynthSplit::Train ? 4 : 2;
      REQUIRE(static_cast<int>(ds.size()) == n);
      const SceneDomain dom = std::string(subset) == "highway" ? SceneDomain::Highway : SceneDomain::Urban;
      for (int i = 0; i < n; ++i) {
        Sample s = ds.get(static_cast<size_t>(i));
        check_sample(s, 38, 255);
        CHECK(s.domain == subset);
        RenderedScene r = render_scene(dom, 3, static_cast<uint32_t>(sp), static_cast<uint32_t>(i), 48, 64);
        CHECK(s.label.to_vector<int64_t>() == r.label_tensor().to_vector<int64_t>());
        CHECK(tensor_to_image(s.image).pixels == r.rgb.pixels);
      }
    }
  ao.subset = "ambiguous";
  ao.split = "test";
  CHECK(A2D2Dataset(ao).size() == 3);
  // test images come from a scene folder of their own
  CHECK(synth_file_name(SceneDomain::Highway, SynthSplit::Test, 0, 4).scene != synth_file_name(SceneDomain::Highway, SynthSplit::Train, 0, 4).scene);
}

namespace {
struct ClassStats {
  std::map<int, double> pixels;
  double total = 0;
  double frac(int c) const { return pixels.count(c) ? pixels.at(c) / total : 0.0; }
};

ClassStats class_stats(SceneDomain d, int n, int h, int w) {
  ClassStats st;
  for (int i = 0; i < n; ++i) {
    RenderedScene r = render_scene(d, 21, 0, static_cast<uint32_t>(i), h, w);
    for (uint8_t c : r.class_id) st.pixels[c] += 1;
    st.total += static_cast<double>(r.class_id.size());
  }
  return st;
}
}  // namespace

TEST_CASE("synthetic: not a colour lookup: even the best per-pixel colour table is far from 100%") {
  // The best any colour-only classifier can do on these pixels: a table colour -> majority class
  // fitted on the very pixels it is scored on (5 bits per channel). If class colours did not
  // overlap in the image, this would be ~100%.
  const int H = 96, W = 128;
  std::map<uint32_t, std::map<int, int>> table;
  double total = 0;
  for (int i = 0; i < 24; ++i) {
    RenderedScene r = render_scene(static_cast<SceneDomain>(i % 3), 8, 0, static_cast<uint32_t>(i), H, W);
    for (size_t p = 0; p < r.class_id.size(); ++p) {
      const uint8_t* q = &r.rgb.pixels[p * 3];
      table[(uint32_t(q[0] >> 3) << 10) | (uint32_t(q[1] >> 3) << 5) | uint32_t(q[2] >> 3)][r.class_id[p]]++;
      total += 1;
    }
  }
  double best = 0;
  size_t shared = 0;
  std::map<int, double> class_total, class_hit;
  for (auto& [colour, counts] : table) {
    int m = 0, arg = -1;
    for (auto& [c, n] : counts) {
      class_total[c] += n;
      if (n > m) { m = n; arg = c; }
    }
    best += m;
    class_hit[arg] += m;
    shared += counts.size() > 1;
  }
  double mean_recall = 0;
  for (auto& [c, n] : class_total) mean_recall += class_hit[c] / n;
  mean_recall /= static_cast<double>(class_total.size());
  MESSAGE("best colour lookup (fitted on the scored pixels): pixel accuracy " << best / total << ", mean class accuracy "
          << mean_recall << " over " << class_total.size() << " classes; " << shared << " of " << table.size()
          << " colour bins hold several classes");
  CHECK(best / total < 0.85);
  CHECK(mean_recall < 0.5);
  CHECK(shared > table.size() / 4);
}

TEST_CASE("synthetic: domains differ: highway has no buildings/sidewalks/pedestrians, urban does") {
  ClassStats hw = class_stats(SceneDomain::Highway, 20, 60, 80), ub = class_stats(SceneDomain::Urban, 20, 60, 80),
             amb = class_stats(SceneDomain::Ambiguous, 20, 60, 80);
  for (int c : {35, 28, 2, 10}) CHECK(hw.frac(c) == 0.0);   // Buildings, Sidewalk, Pedestrian, Curbstone
  CHECK(ub.frac(35) > 0.1);    // Buildings
  CHECK(ub.frac(28) > 0.02);   // Sidewalk
  CHECK(ub.frac(2) > 0.0005);  // Pedestrians
  CHECK(hw.frac(8) > 0.003);   // Sidebars (guard rails)
  CHECK(hw.frac(26) > ub.frac(26));   // more vegetation on highways
  CHECK(hw.frac(33) > ub.frac(33));   // more road
  CHECK(hw.frac(3) > ub.frac(3));     // more trucks
  CHECK(amb.frac(35) > 0.0);          // ambiguous scenes mix both
  CHECK(amb.frac(8) > 0.0);
  MESSAGE("class fractions highway/urban/ambiguous: road " << hw.frac(33) << "/" << ub.frac(33) << "/" << amb.frac(33)
          << ", buildings " << hw.frac(35) << "/" << ub.frac(35) << "/" << amb.frac(35) << ", nature " << hw.frac(26)
          << "/" << ub.frac(26) << "/" << amb.frac(26));
}

TEST_CASE("synthetic: every label pixel is an A2D2 class colour of its class, in every domain") {
  // A cyclist's rider (Pedestrian, 3 colours) once took the bicycle's variant (0..3): variant 3
  // read past the colour list and wrote #000000 into about 1 urban image in 10.
  A2D2ColourTable table;
  for (SceneDomain d : {SceneDomain::Highway, SceneDomain::Urban, SceneDomain::Ambiguous}) {
    CAPTURE(scene_domain_name(d));
    int64_t unknown = 0, wrong_class = 0, riders = 0;
    for (uint32_t i = 0; i < 60; ++i) {
      RenderedScene r = render_scene(d, 1, 0, i, 48, 64);
      const Image l = r.label_rgb();
      for (size_t p = 0; p < r.class_id.size(); ++p) {
        const int c = table.lookup(l.pixels[3 * p], l.pixels[3 * p + 1], l.pixels[3 * p + 2]);
        unknown += c < 0;
        wrong_class += c >= 0 && c != r.class_id[p];
        riders += r.class_id[p] == 2;
      }
    }
    CHECK(unknown == 0);
    CHECK(wrong_class == 0);
    if (d != SceneDomain::Highway) CHECK(riders > 0);   // pedestrians (and riders) were drawn
  }
}
