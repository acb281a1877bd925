// Writing the synthetic A2D2 tree (see synthetic_scenes.h).
#include "data/synthetic_scenes.h"

#include <omp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/json_checks.h"
#include "data/a2d2_classes.h"
#include "data/image_io.h"

namespace moeseg::data {

namespace fs = std::filesystem;

const char* synth_split_name(SynthSplit s) {
  switch (s) {
    case SynthSplit::Train: return "train";
    case SynthSplit::Val: return "val";
    case SynthSplit::Test: return "test";
  }
  return "?";
}

// Like the reference: train and val images come from a pool of scenes (three per domain here),
// test images from a scene of their own. Scene names are fixed dates, one day per domain.
SynthFileName synth_file_name(SceneDomain domain, SynthSplit split, int index, int train_count) {
  const int day = 1 + static_cast<int>(domain);
  int scene_no, frame;
  if (split == SynthSplit::Test) {
    scene_no = 3;
    frame = index;
  } else {
    const int pool_index = split == SynthSplit::Train ? index : train_count + index;
    scene_no = pool_index % 3;
    frame = pool_index;
  }
  auto two = [](int v) { return std::string(v < 10 ? "0" : "") + std::to_string(v); };
  const std::string date = "201901" + two(day), time = two(10 + scene_no) + "0000";
  std::string fr = std::to_string(frame);
  fr.insert(0, fr.size() < 9 ? 9 - fr.size() : 0, '0');
  return {date + "_" + time, date + time, fr};
}

namespace {

struct Job {
  SceneDomain domain;
  SynthSplit split;
  int index;
  std::string image_path, label_path, list_line;
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path);
  MOESEG_CHECK(f.good(), "synthetic scenes: cannot write '", path.string(), "'");
  f << text;
  MOESEG_CHECK(f.good(), "synthetic scenes: write to '", path.string(), "' failed");
}

}  // namespace

int synthetic_tree_version(const std::string& root) {
  const std::string path = (fs::path(root) / "synthetic_scenes.json").string();
  std::ifstream f(path);
  if (!f) return 0;
  // Not JSON (e.g. cut short by a crash while the tree was written): no version recorded, the
  // tree is regenerated. Valid JSON holding something else than our record (a hand edit:
  // "generator_version": "2", 2^32 + 2 wrapping to 2) is an error naming the file and the key.
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  MOESEG_CHECK(j.is_object(), path, ": expected a JSON object, got ", json_text(j));
  return static_cast<int>(get_int_in(j, "generator_version", 0, 0, std::numeric_limits<int>::max(), path));
}

SynthReport generate_synthetic_a2d2(const SynthOptions& opt) {
  MOESEG_CHECK(!opt.out.empty(), "synthetic scenes: no output folder given");
  MOESEG_CHECK(opt.height >= 16 && opt.width >= 16, "synthetic scenes: size ", opt.height, "x", opt.width, " too small (16 minimum)");
  MOESEG_CHECK(opt.train >= 0 && opt.val >= 0 && opt.test >= 0, "synthetic scenes: negative image count");
  const int amb = opt.ambiguous_test < 0 ? opt.test : opt.ambiguous_test;
  const fs::path root(opt.out);
  std::error_code ec;
  fs::create_directories(root / "splits", ec);
  MOESEG_CHECK(!ec, "synthetic scenes: cannot create '", (root / "splits").string(), "': ", ec.message());

  // class_list.json in A2D2's own order and spelling ("Car 1".."Car 4", ...)
  nlohmann::ordered_json classes;
  for (const auto& c : a2d2_classes())
    for (size_t v = 0; v < c.colours.size(); ++v) classes[rgb_hex(c.colours[v])] = a2d2_raw_name(c.id, static_cast<int>(v));
  write_text(root / "class_list.json", classes.dump(2) + "\n");

  // jobs and split files
  std::vector<Job> jobs;
  std::map<std::string, std::string> lists;   // split file name -> content
  auto add = [&](SceneDomain d, SynthSplit s, int count) {
    const std::string dn = scene_domain_name(d), sn = synth_split_name(s);
    std::string& list = lists[dn + "_" + sn + "_gt.txt"];
    for (int i = 0; i < count; ++i) {
      const SynthFileName n = synth_file_name(d, s, i, opt.train);
      const std::string label_base = n.sequence + "_label_frontcenter_" + n.frame + ".png";
      const std::string image_base = n.sequence + "_camera_frontcenter_" + n.frame + ".png";
      Job j{d, s, i, (root / n.scene / "camera" / "cam_front_center" / image_base).string(),
            (root / n.scene / "label" / "cam_front_center" / label_base).string(),
            dn + (s == SynthSplit::Test ? "/test/GT/" : "/train_val/GT/") + label_base};
      list += j.list_line + "\n";
      if (d != SceneDomain::Ambiguous) lists["all_" + sn + "_gt.txt"] += j.list_line + "\n";
      fs::create_directories(fs::path(j.image_path).parent_path(), ec);
      MOESEG_CHECK(!ec, "synthetic scenes: cannot create '", fs::path(j.image_path).parent_path().string(), "'");
      fs::create_directories(fs::path(j.label_path).parent_path(), ec);
      MOESEG_CHECK(!ec, "synthetic scenes: cannot create '", fs::path(j.label_path).parent_path().string(), "'");
      jobs.push_back(std::move(j));
    }
  };
  for (SceneDomain d : {SceneDomain::Highway, SceneDomain::Urban}) {
    add(d, SynthSplit::Train, opt.train);
    add(d, SynthSplit::Val, opt.val);
    add(d, SynthSplit::Test, opt.test);
  }
  add(SceneDomain::Ambiguous, SynthSplit::Test, amb);
  for (auto& [name, text] : lists) write_text(root / "splits" / name, text);

  nlohmann::ordered_json info = {{"generator", "moeseg synthetic scenes (A2D2 layout)"},
                                 {"generator_version", kSynthGeneratorVersion},
                                 {"seed", opt.seed},
                                 {"height", opt.height},
                                 {"width", opt.width},
                                 {"train", opt.train},
                                 {"val", opt.val},
                                 {"test", opt.test},
                                 {"ambiguous_test", amb}};
  write_text(root / "synthetic_scenes.json", info.dump(2) + "\n");

  // render + encode + write, one image per iteration; errors are collected and rethrown
  const auto t0 = std::chrono::steady_clock::now();
  std::mutex mu;
  std::string first_error;
  const int n = static_cast<int>(jobs.size());
  const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 2) num_threads(threads)
  for (int k = 0; k < n; ++k) {
    const Job& j = jobs[static_cast<size_t>(k)];
    try {
      RenderedScene r = render_scene(j.domain, opt.seed, static_cast<uint32_t>(j.split), static_cast<uint32_t>(j.index),
                                     opt.height, opt.width);
      write_png(j.image_path, r.rgb, PngMode::Stored);
      write_png(j.label_path, r.label_rgb(), PngMode::Fast);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.empty()) first_error = e.what();
    }
  }
  MOESEG_CHECK(first_error.empty(), "synthetic scenes: ", first_error);
  SynthReport rep;
  rep.images = n;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

SyntheticSceneDataset::SyntheticSceneDataset(SceneDomain domain, SynthSplit split, int count, uint64_t seed, int height, int width)
    : domain_(domain), split_(split), count_(count), seed_(seed), height_(height), width_(width) {
  MOESEG_CHECK(count >= 0, "SyntheticSceneDataset: negative count ", count);
  MOESEG_CHECK(height >= 16 && width >= 16, "SyntheticSceneDataset: size ", height, "x", width, " too small (16 minimum)");
}

Sample SyntheticSceneDataset::get(size_t i) const {
  MOESEG_CHECK(i < size(), "SyntheticSceneDataset '", name(), "': index ", i, " out of range (size ", size(), ")");
  RenderedScene r = render_scene(domain_, seed_, static_cast<uint32_t>(split_), static_cast<uint32_t>(i), height_, width_);
  Sample s;
  s.image = image_to_tensor(r.rgb);
  s.label = r.label_tensor();
  s.id = std::string(scene_domain_name(domain_)) + "_" + synth_split_name(split_) + "_" + std::to_string(i);
  s.domain = scene_domain_name(domain_);
  return s;
}

std::string SyntheticSceneDataset::name() const {
  return std::string("synthetic:") + scene_domain_name(domain_) + ":" + synth_split_name(split_);
}

}  // namespace moeseg::data
