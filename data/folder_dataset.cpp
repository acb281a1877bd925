// Folder-pair dataset (see folder_dataset.h).
#include "data/folder_dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "data/image_io.h"

namespace moeseg::data {

namespace fs = std::filesystem;

namespace {
bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}
}  // namespace

FolderDataset::FolderDataset(FolderOptions opt) : opt_(std::move(opt)) {
  MOESEG_CHECK(opt_.num_classes > 0, "FolderDataset: num_classes must be given (> 0)");
  MOESEG_CHECK(is_dir_noexcept(opt_.image_dir), "FolderDataset: image folder '", opt_.image_dir, "' does not exist");
  MOESEG_CHECK(is_dir_noexcept(opt_.label_dir), "FolderDataset: label folder '", opt_.label_dir, "' does not exist");
  if (opt_.domain.empty()) opt_.domain = fs::path(opt_.image_dir).lexically_normal().filename().string();
  if (opt_.domain.empty()) opt_.domain = fs::path(opt_.image_dir).lexically_normal().parent_path().filename().string();
  std::map<std::string, std::string> labels;   // stem -> path
  for (const auto& f : fs::directory_iterator(opt_.label_dir)) {
    if (!f.is_regular_file() || f.path().extension() != ".png") continue;
    auto [it, fresh] = labels.emplace(f.path().stem().string(), f.path().string());
    MOESEG_CHECK(fresh, "FolderDataset: two labels with stem '", it->first, "' in '", opt_.label_dir, "'");
  }
  std::map<std::string, std::string> images;
  for (const auto& f : fs::directory_iterator(opt_.image_dir)) {
    if (!f.is_regular_file() || !is_image_file(f.path())) continue;
    auto [it, fresh] = images.emplace(f.path().stem().string(), f.path().string());
    MOESEG_CHECK(fresh, "FolderDataset: two images with stem '", it->first, "' in '", opt_.image_dir, "'");
  }
  for (auto& [stem, path] : images) {   // std::map: sorted by stem, the same order everywhere
    auto it = labels.find(stem);
    MOESEG_CHECK(it != labels.end(), "FolderDataset: image '", path, "' has no label '", stem, ".png' in '", opt_.label_dir, "'");
    entries_.push_back({path, it->second, stem});
  }
  MOESEG_CHECK(!entries_.empty(), "FolderDataset: no images in '", opt_.image_dir, "'");
}

Sample FolderDataset::get(size_t i) const {
  MOESEG_CHECK(i < entries_.size(), "FolderDataset: index ", i, " out of range (size ", entries_.size(), ")");
  const Entry& e = entries_[i];
  Image img = read_image(e.image_path, 3);
  Image lab = read_gray_label(e.label_path);
  check_label_matches_image(img, e.image_path, lab, e.label_path, "FolderDataset");
  for (size_t k = 0; k < lab.pixels.size(); ++k) {
    const int v = lab.pixels[k];
    MOESEG_CHECK(v < opt_.num_classes || v == opt_.ignore_index, "FolderDataset: label '", e.label_path, "' has value ", v,
                 " at (x=", k % lab.width, ", y=", k / lab.width, "), outside [0, ", opt_.num_classes,
                 ") and not the ignore index ", opt_.ignore_index);
  }
  Sample s;
  s.image = image_to_tensor(img);
  s.label = gray_to_label_tensor(lab);
  s.id = e.id;
  s.domain = opt_.domain;
  return s;
}

}  // namespace moeseg::data
