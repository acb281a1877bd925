// Cityscapes directory walk and labelId -> trainId mapping (see cityscapes.h).
#include "data/cityscapes.h"

#include <algorithm>
#include <filesystem>

#include "data/image_io.h"

namespace moeseg::data {

namespace fs = std::filesystem;

std::array<int, 256> cityscapes_train_id_table(int ignore_index) {
  std::array<int, 256> t;
  t.fill(ignore_index);
  const int ids[19] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33};
  for (int k = 0; k < 19; ++k) t[ids[k]] = k;
  return t;
}

CityscapesDataset::CityscapesDataset(CityscapesOptions opt) : opt_(std::move(opt)), table_(cityscapes_train_id_table(opt_.ignore_index)) {
  MOESEG_CHECK(opt_.ignore_index < 0 || opt_.ignore_index >= 19, "Cityscapes: ignore_index ", opt_.ignore_index,
               " collides with a train id");
  const fs::path img_dir = fs::path(opt_.root) / "leftImg8bit" / opt_.split;
  const fs::path gt_dir = fs::path(opt_.root) / "gtFine" / opt_.split;
  MOESEG_CHECK(is_dir_noexcept(img_dir), "Cityscapes: image folder '", img_dir.string(), "' does not exist");
  MOESEG_CHECK(is_dir_noexcept(gt_dir), "Cityscapes: label folder '", gt_dir.string(), "' does not exist");
  const std::string suffix = "_leftImg8bit.png";
  for (const auto& city : fs::directory_iterator(img_dir)) {
    if (!city.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(city.path())) {
      const std::string name = f.path().filename().string();
      if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
      const std::string stem = name.substr(0, name.size() - suffix.size());
      Entry e;
      e.image_path = f.path().string();
      e.label_path = (gt_dir / city.path().filename() / (stem + "_gtFine_labelIds.png")).string();
      e.id = stem;
      e.city = city.path().filename().string();
      MOESEG_CHECK(is_file_noexcept(e.label_path), "Cityscapes: image '", e.image_path, "' has no label file '",
                   e.label_path, "'");
      entries_.push_back(std::move(e));
    }
  }
  // Directory order is file-system dependent; sorting makes indices the same on every machine.
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.id < b.id; });
  MOESEG_CHECK(!entries_.empty(), "Cityscapes: no *", suffix, " images under '", img_dir.string(), "'");
}

Sample CityscapesDataset::get(size_t i) const {
  MOESEG_CHECK(i < entries_.size(), "Cityscapes: index ", i, " out of range (size ", entries_.size(), ")");
  const Entry& e = entries_[i];
  Image img = read_image(e.image_path, 3);
  Image lab = read_gray_label(e.label_path);
  check_label_matches_image(img, e.image_path, lab, e.label_path, "Cityscapes");
  Sample s;
  s.image = image_to_tensor(img);
  s.label = Tensor::empty({lab.height, lab.width}, DType::Int64);
  int64_t* out = s.label.data<int64_t>();
  for (size_t k = 0; k < lab.pixels.size(); ++k) out[k] = table_[lab.pixels[k]];
  s.id = e.id;
  s.domain = e.city;
  return s;
}

}  // namespace moeseg::data
