// CamVid list-file dataset (see camvid.h).
#include "data/camvid.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/value_checks.h"
#include "data/image_io.h"

namespace moeseg::data {

namespace fs = std::filesystem;

const char* const kCamVidClassNames[11] = {"Sky",  "Building", "Pole", "Road",       "Pavement",  "Tree",
                                           "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"};

std::string camvid_sequence(const std::string& file_name) {
  const std::string base = fs::path(file_name).filename().string();
  return base.substr(0, base.find('_'));
}

std::string camvid_domain(const std::string& sequence) { return sequence == "0001TP" ? "dusk" : "day"; }

std::string camvid_resolve(const std::string& root, const std::string& listed) {
  static const std::string prefix = "/SegNet/CamVid/";
  std::string rel = listed;
  if (rel.rfind(prefix, 0) == 0) rel = rel.substr(prefix.size());
  else if (fs::path(rel).is_absolute()) return rel;   // a list written for this machine
  return (fs::path(root) / rel).string();
}

CamVidDataset::CamVidDataset(CamVidOptions opt) : opt_(std::move(opt)) {
  MOESEG_CHECK(opt_.ignore_index < 0 || opt_.ignore_index >= 11, "CamVid: ignore_index ", opt_.ignore_index,
               " collides with a class id");
  list_file_ = opt_.list_file.empty() ? (fs::path(opt_.root) / (opt_.split + ".txt")).string() : opt_.list_file;
  std::ifstream in(list_file_);
  MOESEG_CHECK(in.good(), "CamVid: list file '", list_file_, "' cannot be opened");
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    std::istringstream ls(line);
    std::string img, lab, extra;
    if (!(ls >> img)) continue;   // blank line
    MOESEG_CHECK(static_cast<bool>(ls >> lab) && !(ls >> extra), "CamVid: ", list_file_, ":", lineno,
                 ": expected '<image> <label>', got '", printable(line), "'");
    Entry e;
    e.image_path = camvid_resolve(opt_.root, img);
    e.label_path = camvid_resolve(opt_.root, lab);
    e.id = fs::path(img).stem().string();
    const std::string seq = camvid_sequence(img);
    e.domain = camvid_domain(seq);
    if (!opt_.sequences.empty() && std::find(opt_.sequences.begin(), opt_.sequences.end(), seq) == opt_.sequences.end())
      continue;
    if (!opt_.domains.empty() && std::find(opt_.domains.begin(), opt_.domains.end(), e.domain) == opt_.domains.end())
      continue;
    MOESEG_CHECK(is_file_noexcept(e.image_path), "CamVid: image '", e.image_path, "' (", list_file_, ":", lineno,
                 ") does not exist");
    MOESEG_CHECK(is_file_noexcept(e.label_path), "CamVid: label '", e.label_path, "' (", list_file_, ":", lineno,
                 ") does not exist");
    entries_.push_back(std::move(e));
  }
  MOESEG_CHECK(!entries_.empty(), "CamVid: no samples in '", list_file_, "' after the sequence/domain filters");
}

std::string CamVidDataset::name() const {
  std::string n = "camvid:" + fs::path(list_file_).stem().string();
  for (auto& s : opt_.sequences) n += ":" + s;
  for (auto& d : opt_.domains) n += ":" + d;
  return n;
}

Sample CamVidDataset::get(size_t i) const {
  MOESEG_CHECK(i < entries_.size(), "CamVid: index ", i, " out of range (size ", entries_.size(), ")");
  const Entry& e = entries_[i];
  Image img = read_image(e.image_path, 3);
  Image lab = read_gray_label(e.label_path);
  check_label_matches_image(img, e.image_path, lab, e.label_path, "CamVid");
  Sample s;
  s.image = image_to_tensor(img);
  s.label = Tensor::empty({lab.height, lab.width}, DType::Int64);
  int64_t* out = s.label.data<int64_t>();
  for (size_t k = 0; k < lab.pixels.size(); ++k) {
    const int v = lab.pixels[k];
    MOESEG_CHECK(v <= 11, "CamVid: label '", e.label_path, "' has value ", v, " at (x=", k % lab.width, ", y=",
                 k / lab.width, "); 0..10 are classes and 11 is void");
    out[k] = v == 11 ? opt_.ignore_index : v;
  }
  s.id = e.id;
  s.domain = e.domain;
  return s;
}

}  // namespace moeseg::data
