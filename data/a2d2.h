// A2D2 semantic segmentation read from its ORIGINAL `camera_lidar_semantic` tree, the way the
// reference selects it: a split file lists label PNGs (only each line's basename is used), the
// basename gives the scene folder and camera, and the camera image sits beside the label
//   <root>/<YYYYMMDD_hhmmss>/label/cam_front_center/<YYYYMMDDhhmmss>_label_frontcenter_<id>.png
//   <root>/<YYYYMMDD_hhmmss>/camera/cam_front_center/<YYYYMMDDhhmmss>_camera_frontcenter_<id>.png
// class_list.json at the root is checked against the built-in 38-class table (a2d2_classes.h).
// Labels decode every variant colour to its merged class (the reference maps only the first).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/a2d2_classes.h"
#include "data/dataset.h"
#include "data/image_io.h"

namespace moeseg::data {

struct A2D2Options {
  std::string root;          // the dataset root (holds class_list.json and the scene folders)
  // Either an explicit split file, or subset + split naming <split_dir>/<subset>_<split>_gt.txt
  // (subset: highway, urban, ambiguous, all; split: train, val, test), like the reference.
  std::string split_file;
  std::string subset;
  std::string split;
  std::string split_dir;     // default: <root>/splits
  bool eleven_classes = false;            // the §1.2.2 grouping; Blurred area / Rain dirt -> ignore
  int ignore_index = 255;
  bool unknown_colour_to_ignore = false;  // default: an unknown colour is an error naming file + colour
  bool check_files = true;                // stat every image/label at construction (fail early)
};

struct A2D2Entry {
  std::string image_path, label_path, id;
};

// Resolves one split-file line to its files as spec §1.2 says; throws naming `where` (file:line)
// when the basename is not <14 digits>_label_<camtag>_<id>.png.
A2D2Entry resolve_a2d2_line(const std::string& root, const std::string& line, const std::string& where);

class A2D2Dataset : public Dataset {
 public:
  explicit A2D2Dataset(A2D2Options opt);
  size_t size() const override { return entries_.size(); }
  Sample get(size_t i) const override;
  int num_classes() const override { return opt_.eleven_classes ? kA2D2NumGroups : kA2D2NumClasses; }
  int ignore_index() const override { return opt_.ignore_index; }
  std::string name() const override { return "a2d2:" + domain_; }
  const std::vector<A2D2Entry>& entries() const { return entries_; }
  const std::string& split_file() const { return split_file_; }

  // RGB label image -> int64 [H,W] class ids (38 or 11 classes); `path` names the file in errors.
  Tensor decode_label(const Image& rgb, const std::string& path) const;

 private:
  A2D2Options opt_;
  std::string split_file_, domain_;
  std::vector<A2D2Entry> entries_;
  A2D2ColourTable colours_;
};

// The split file the reference would read for subset/split: <split_dir>/<subset>_<split>_gt.txt.
std::string a2d2_split_path(const std::string& split_dir, const std::string& subset, const std::string& split);

// "highway,urban" -> the concatenation of both subsets (how the reference trains MoEs and the
// baseline); a single name gives that subset alone.
std::shared_ptr<Dataset> open_a2d2(const A2D2Options& base, const std::string& subsets_csv);

}  // namespace moeseg::data
