// The simplest format: an image folder and a label folder, matched by file stem
// (images/a.jpg <-> labels/a.png). Labels are 8-bit grayscale class indices; values outside
// [0, num_classes) other than the ignore index are an error naming the file and the value.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace moeseg::data {

struct FolderOptions {
  std::string image_dir, label_dir;
  int num_classes = 0;
  int ignore_index = 255;
  std::string domain;              // written into every sample; default: the image folder name
  std::string name = "folder";
};

class FolderDataset : public Dataset {
 public:
  explicit FolderDataset(FolderOptions opt);
  size_t size() const override { return entries_.size(); }
  Sample get(size_t i) const override;
  int num_classes() const override { return opt_.num_classes; }
  int ignore_index() const override { return opt_.ignore_index; }
  std::string name() const override { return opt_.name; }

 private:
  struct Entry { std::string image_path, label_path, id; };
  FolderOptions opt_;
  std::vector<Entry> entries_;
};

}  // namespace moeseg::data
