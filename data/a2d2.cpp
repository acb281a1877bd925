// A2D2 split-file parsing, path resolution and colour decoding (see a2d2.h).
#include "data/a2d2.h"

#include "core/value_checks.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>

namespace moeseg::data {

namespace fs = std::filesystem;

namespace {
// A2D2 writes the camera without underscores in file names and with them in folder names.
const std::map<std::string, std::string>& camera_folders() {
  static const std::map<std::string, std::string> m = {
      {"frontcenter", "cam_front_center"}, {"frontleft", "cam_front_left"}, {"frontright", "cam_front_right"},
      {"sideleft", "cam_side_left"},       {"sideright", "cam_side_right"}, {"rearcenter", "cam_rear_center"}};
  return m;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}
}  // namespace

std::string a2d2_split_path(const std::string& split_dir, const std::string& subset, const std::string& split) {
  return (fs::path(split_dir) / (subset + "_" + split + "_gt.txt")).string();
}

A2D2Entry resolve_a2d2_line(const std::string& root, const std::string& line, const std::string& where) {
  // Only the basename counts: "highway/train_val/GT/20181108091945_label_frontcenter_000001234.png".
  std::string base = line.substr(line.find_last_of("/\\") == std::string::npos ? 0 : line.find_last_of("/\\") + 1);
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t p; (p = base.find('_', start)) != std::string::npos; start = p + 1) parts.push_back(base.substr(start, p - start));
  parts.push_back(base.substr(start));
  const bool ok = parts.size() == 4 && parts[0].size() == 14 && all_digits(parts[0]) && parts[1] == "label" &&
                  camera_folders().count(parts[2]) && parts[3].size() > 4 && parts[3].substr(parts[3].size() - 4) == ".png";
  MOESEG_CHECK(ok, "A2D2: ", where, ": '", printable(line),
               "' is not a label file name <YYYYMMDDhhmmss>_label_<camera>_<id>.png (camera one of frontcenter, "
               "frontleft, frontright, sideleft, sideright, rearcenter)");
  const std::string scene = parts[0].substr(0, 8) + "_" + parts[0].substr(8);   // insert '_' after the date
  const std::string cam = camera_folders().at(parts[2]);
  const std::string frame = parts[3].substr(0, parts[3].size() - 4);
  A2D2Entry e;
  e.label_path = (fs::path(root) / scene / "label" / cam / base).string();
  e.image_path = (fs::path(root) / scene / "camera" / cam / (parts[0] + "_camera_" + parts[2] + "_" + parts[3])).string();
  e.id = parts[0] + "_" + parts[2] + "_" + frame;
  return e;
}

A2D2Dataset::A2D2Dataset(A2D2Options opt) : opt_(std::move(opt)) {
  MOESEG_CHECK(!opt_.root.empty(), "A2D2: no dataset root given");
  MOESEG_CHECK(is_dir_noexcept(opt_.root), "A2D2: dataset root '", opt_.root, "' is not a directory");
  MOESEG_CHECK(opt_.ignore_index < 0 || opt_.ignore_index >= num_classes(), "A2D2: ignore_index ", opt_.ignore_index,
               " collides with a class id (", num_classes(), " classes)");
  validate_a2d2_class_list((fs::path(opt_.root) / "class_list.json").string());

  if (!opt_.split_file.empty()) {
    split_file_ = opt_.split_file;
  } else {
    MOESEG_CHECK(!opt_.subset.empty() && !opt_.split.empty(), "A2D2: give split_file, or subset and split");
    split_file_ = a2d2_split_path(opt_.split_dir.empty() ? (fs::path(opt_.root) / "splits").string() : opt_.split_dir,
                                  opt_.subset, opt_.split);
  }
  // Domain = subset, taken from the split file name "<subset>_<split>_gt.txt".
  const std::string fname = fs::path(split_file_).filename().string();
  domain_ = opt_.subset.empty() ? fname.substr(0, fname.find('_')) : opt_.subset;

  std::ifstream in(split_file_);
  MOESEG_CHECK(in.good(), "A2D2: split file '", split_file_, "' cannot be opened");
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    A2D2Entry e = resolve_a2d2_line(opt_.root, line, split_file_ + ":" + std::to_string(lineno));
    if (opt_.check_files) {
      MOESEG_CHECK(is_file_noexcept(e.label_path), "A2D2: label file '", e.label_path, "' (", split_file_, ":", lineno,
                   ") does not exist");
      MOESEG_CHECK(is_file_noexcept(e.image_path), "A2D2: image file '", e.image_path, "' for label '", e.label_path,
                   "' does not exist");
    }
    entries_.push_back(std::move(e));
  }
  MOESEG_CHECK(!entries_.empty(), "A2D2: split file '", split_file_, "' lists no samples");
}

Tensor A2D2Dataset::decode_label(const Image& rgb, const std::string& path) const {
  MOESEG_CHECK(rgb.channels == 3, "A2D2: label '", path, "' must be RGB, got ", rgb.channels, " channels");
  Tensor t = Tensor::empty({rgb.height, rgb.width}, DType::Int64);
  int64_t* out = t.data<int64_t>();
  const auto& classes = a2d2_classes();
  const size_t n = static_cast<size_t>(rgb.height) * rgb.width;
  // Labels are large flat regions: remember the last colour to skip most hash lookups.
  uint32_t last_key = 0xFFFFFFFFu;
  int64_t last_val = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = rgb.pixels.data() + 3 * i;
    const uint32_t key = rgb_key(p[0], p[1], p[2]);
    if (key != last_key) {
      int c = colours_.lookup(p[0], p[1], p[2]);
      if (c < 0) {
        MOESEG_CHECK(opt_.unknown_colour_to_ignore, "A2D2: label '", path, "' has unknown colour ",
                     rgb_hex({p[0], p[1], p[2]}), " at (x=", i % rgb.width, ", y=", i / rgb.width,
                     "); not one of the 55 A2D2 class colours");
        last_val = opt_.ignore_index;
      } else if (opt_.eleven_classes) {
        last_val = classes[c].group11 < 0 ? opt_.ignore_index : classes[c].group11;
      } else {
        last_val = c;
      }
      last_key = key;
    }
    out[i] = last_val;
  }
  return t;
}

Sample A2D2Dataset::get(size_t i) const {
  MOESEG_CHECK(i < entries_.size(), "A2D2 '", split_file_, "': index ", i, " out of range (size ", entries_.size(), ")");
  const A2D2Entry& e = entries_[i];
  Image img = read_image(e.image_path, 3);
  Image lab = read_image(e.label_path, 3);
  check_label_matches_image(img, e.image_path, lab, e.label_path, "A2D2");
  Sample s;
  s.image = image_to_tensor(img);
  s.label = decode_label(lab, e.label_path);
  s.id = e.id;
  s.domain = domain_;
  return s;
}

std::shared_ptr<Dataset> open_a2d2(const A2D2Options& base, const std::string& subsets_csv) {
  std::vector<std::shared_ptr<const Dataset>> parts;
  size_t start = 0;
  while (start <= subsets_csv.size()) {
    size_t p = subsets_csv.find(',', start);
    std::string name = trim(subsets_csv.substr(start, p == std::string::npos ? std::string::npos : p - start));
    MOESEG_CHECK(!name.empty(), "A2D2: empty subset name in '", subsets_csv, "'");
    A2D2Options o = base;
    o.subset = name;
    o.split_file.clear();
    parts.push_back(std::make_shared<A2D2Dataset>(o));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  if (parts.size() == 1) return std::const_pointer_cast<Dataset>(parts.front());
  return std::make_shared<ConcatDataset>(parts);
}

}  // namespace moeseg::data
