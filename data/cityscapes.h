// Cityscapes fine annotations: leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png with
// gtFine/<split>/<city>/<stem>_gtFine_labelIds.png; labelIds are mapped to the 19 train ids
// (spec §3), every other id to the ignore index. domain = city.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace moeseg::data {

struct CityscapesOptions {
  std::string root;            // holds leftImg8bit/ and gtFine/
  std::string split = "train"; // train, val, test
  int ignore_index = 255;
};

// labelId (0..255) -> trainId (0..18) or ignore_index.
std::array<int, 256> cityscapes_train_id_table(int ignore_index);

class CityscapesDataset : public Dataset {
 public:
  explicit CityscapesDataset(CityscapesOptions opt);
  size_t size() const override { return entries_.size(); }
  Sample get(size_t i) const override;
  int num_classes() const override { return 19; }
  int ignore_index() const override { return opt_.ignore_index; }
  std::string name() const override { return "cityscapes:" + opt_.split; }

 private:
  struct Entry { std::string image_path, label_path, id, city; };
  CityscapesOptions opt_;
  std::vector<Entry> entries_;
  std::array<int, 256> table_;
};

}  // namespace moeseg::data
