// The default data of moeseg: synthetic road scenes written as an A2D2 tree, so the very same
// A2D2 loader, split files and experiment configs run on them and on the real dataset.
//   <out>/class_list.json                                  the 55 A2D2 colours -> names
//   <out>/<YYYYMMDD_hhmmss>/camera/cam_front_center/<seq>_camera_frontcenter_<frame>.png
//   <out>/<YYYYMMDD_hhmmss>/label/cam_front_center/<seq>_label_frontcenter_<frame>.png
//   <out>/splits/{highway,urban,all}_{train,val,test}_gt.txt, ambiguous_test_gt.txt
//   <out>/synthetic_scenes.json                            the options that made the tree
// Three domains (see scene_layout.cpp): highway and urban (train/val/test each, like the
// reference's road-type subsets; test from a scene of its own) and ambiguous (test only).
// Image i of (domain, split) depends only on (seed, domain, split, i): generation is parallel
// (OpenMP over images) and byte-identical for any thread count.
#pragma once
#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "data/scene_render.h"

namespace moeseg::data {

// Written into synthetic_scenes.json as "generator_version"; raised whenever the same options
// give different files (2: cyclists' riders no longer write stray #000000 label pixels), so a
// tree made by an older generator can be recognised and regenerated.
constexpr int kSynthGeneratorVersion = 2;
// The generator_version of the tree at `root` (0: none recorded, no tree, or a record that is not
// JSON). A record whose generator_version is not an integer in [0, 2^31) is an error naming the
// file and the key.
int synthetic_tree_version(const std::string& root);

struct SynthOptions {
  std::string out;            // output root (created)
  uint64_t seed = 1;
  int height = 240, width = 320;
  int train = 1000, val = 150, test = 250;   // per domain (highway, urban)
  int ambiguous_test = -1;    // -1: same as test
  int threads = 0;            // 0: OpenMP default
};

struct SynthReport {
  int images = 0;
  double seconds = 0;
  double images_per_second() const { return seconds > 0 ? images / seconds : 0; }
};

// Writes the whole tree; throws naming the path on I/O errors.
SynthReport generate_synthetic_a2d2(const SynthOptions& opt);

// Split codes used as Philox stream ids (also in the scene folder names).
enum class SynthSplit : uint32_t { Train = 0, Val = 1, Test = 2 };
const char* synth_split_name(SynthSplit s);

// Scene folder and file base name of image `index` of (domain, split), as the generator writes them.
struct SynthFileName {
  std::string scene;      // "20190101_100000"
  std::string sequence;   // "20190101100000"
  std::string frame;      // 9 digits
};
SynthFileName synth_file_name(SceneDomain domain, SynthSplit split, int index, int train_count);

// The same scenes rendered on the fly, without files (38 A2D2 classes, ignore 255).
class SyntheticSceneDataset : public Dataset {
 public:
  SyntheticSceneDataset(SceneDomain domain, SynthSplit split, int count, uint64_t seed, int height, int width);
  size_t size() const override { return static_cast<size_t>(count_); }
  Sample get(size_t i) const override;
  int num_classes() const override { return 38; }
  int ignore_index() const override { return 255; }
  std::string name() const override;

 private:
  SceneDomain domain_;
  SynthSplit split_;
  int count_;
  uint64_t seed_;
  int height_, width_;
};

}  // namespace moeseg::data
