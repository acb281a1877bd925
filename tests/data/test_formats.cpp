// Cityscapes, folder and CamVid loaders on the committed fixtures, and CamVid on the real data
// when /work/shared/data/camvid (../shared/data/camvid from the repository root) is present.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/camvid.h"
#include "data/cityscapes.h"
#include "data/folder_dataset.h"
#include "data/image_io.h"
#include "data_test_util.h"
#include "support/skip.h"

using namespace moeseg;
using namespace moeseg::data;
using namespace moeseg::testing;

TEST_CASE("cityscapes: labelIds -> 19 train ids, ignore 255, domain = city, sorted order") {
  CityscapesOptions o;
  o.root = data_fixture("cityscapes");
  o.split = "val";
  CityscapesDataset ds(o);
  REQUIRE(ds.size() == 2);
  CHECK(ds.num_classes() == 19);
  Sample a = ds.get(0), b = ds.get(1);
  CHECK(a.id == "frankfurt_000000_000019");
  CHECK(a.domain == "frankfurt");
  CHECK(b.domain == "lindau");
  CHECK(a.image.shape() == Shape{3, 5, 7});
  CHECK(a.label.to_vector<int64_t>() == data_expected()["cityscapes"][a.id].get<std::vector<int64_t>>());
  CHECK(b.label.to_vector<int64_t>() == data_expected()["cityscapes"][b.id].get<std::vector<int64_t>>());
  check_sample(a, 19, 255);
  auto t = cityscapes_train_id_table(255);
  CHECK(t[7] == 0);
  CHECK(t[26] == 13);
  CHECK(t[33] == 18);
  CHECK(t[0] == 255);
  CHECK(t[34] == 255);
  o.split = "train";
  CHECK(contains(error_of([&] { CityscapesDataset d(o); }), "leftImg8bit/train"));
}

TEST_CASE("folder: images and class-index labels matched by stem") {
  FolderOptions o;
  o.image_dir = data_fixture("folder/images");
  o.label_dir = data_fixture("folder/labels");
  o.num_classes = 4;
  FolderDataset ds(o);
  REQUIRE(ds.size() == 3);
  for (size_t i = 0; i < ds.size(); ++i) {
    Sample s = ds.get(i);
    CHECK(s.label.to_vector<int64_t>() == data_expected()["folder"][s.id].get<std::vector<int64_t>>());
    CHECK(s.domain == "images");
    check_sample(s, 4, 255);
  }
  CHECK(ds.get(0).id == "a");
  // a label value outside [0, num_classes) names the file and the value
  o.num_classes = 2;
  FolderDataset narrow(o);
  std::string msg = error_of([&] { narrow.get(0); });
  CHECK(contains(msg, "a.png"));
  CHECK((contains(msg, "value 2") || contains(msg, "value 3")));
  // an image without a label
  TempDir tmp("folder");
  std::filesystem::create_directories(tmp.path / "im");
  std::filesystem::create_directories(tmp.path / "lb");
  std::filesystem::copy_file(data_fixture("folder/images/a.png"), tmp.path / "im" / "lonely.png");
  o.image_dir = tmp.str("im");
  o.label_dir = tmp.str("lb");
  CHECK(contains(error_of([&] { FolderDataset d(o); }), "lonely.png"));
}

TEST_CASE("camvid: /SegNet/CamVid/ paths, void -> ignore, dusk/day domains, sequence filter") {
  CamVidOptions o;
  o.root = data_fixture("camvid");
  CamVidDataset ds(o);
  REQUIRE(ds.size() == 3);
  std::map<std::string, std::string> domains;
  for (size_t i = 0; i < ds.size(); ++i) {
    Sample s = ds.get(i);
    domains[s.id] = s.domain;
    CHECK(s.label.to_vector<int64_t>() == data_expected()["camvid"][s.id].get<std::vector<int64_t>>());
    check_sample(s, 11, 255);
  }
  CHECK(domains["0001TP_006690"] == "dusk");
  CHECK(domains["0006R0_f00930"] == "day");
  CHECK(domains["0016E5_00390"] == "day");
  CHECK(camvid_resolve("/root", "/SegNet/CamVid/train/x.png") == "/root/train/x.png");
  o.domains = {"dusk"};
  CHECK(CamVidDataset(o).size() == 1);
  o.domains.clear();
  o.sequences = {"0006R0", "0016E5"};
  CamVidDataset day(o);
  CHECK(day.size() == 2);
  CHECK(day.get(0).domain == "day");
  o.sequences = {"Seq05VD"};
  CHECK(contains(error_of([&] { CamVidDataset d(o); }), "no samples"));
}

TEST_CASE("camvid: real data (skipped, visibly, when absent)") {
  const char* env = std::getenv("MOESEG_CAMVID_ROOT");
  const std::string root = env ? env : std::string(MOESEG_FIXTURE_DIR) + "/../../../shared/data/camvid";
  if (!std::filesystem::exists(std::filesystem::path(root) / "train.txt")) {
    moeseg::testing::skip("CamVid real data absent: no " + root + "/train.txt (set MOESEG_CAMVID_ROOT)");
    return;
  }
  CamVidOptions o;
  o.root = root;
  CamVidDataset train(o);
  CHECK(train.size() == 367);
  o.domains = {"dusk"};
  CamVidDataset dusk(o);
  CHECK(dusk.size() == 62);   // sequence 0001TP
  o.domains = {"day"};
  CHECK(CamVidDataset(o).size() == 305);
  o.domains.clear();
  o.split = "val";
  CamVidDataset val(o);
  CHECK(val.size() == 101);
  for (const Dataset* d : {static_cast<const Dataset*>(&dusk), static_cast<const Dataset*>(&val)}) {
    Sample s = d->get(0);
    CHECK(s.image.shape() == Shape{3, 360, 480});
    check_sample(s, 11, 255);
    // a real street scene has several classes in it
    std::vector<int64_t> v = s.label.to_vector<int64_t>();
    std::map<int64_t, int> hist;
    for (int64_t x : v) hist[x]++;
    CHECK(hist.size() >= 5);
  }
  CHECK(dusk.get(0).domain == "dusk");
  // A sample is its files: the image divided by 255, the label's class indices with 11
  // (Unlabelled) as ignore, read here straight from the PNGs the list file names.
  for (size_t i : {size_t{0}, size_t{61}}) {
    const Sample s = dusk.get(i);
    CAPTURE(s.id);
    CHECK(s.id.rfind("0001TP_", 0) == 0);
    const Image im = read_image(root + "/train/" + s.id + ".png", 3), lb = read_image(root + "/trainannot/" + s.id + ".png", 0);
    REQUIRE(lb.channels == 1);
    REQUIRE(im.height == 360);
    REQUIRE(im.width == 480);
    CHECK(s.image.to_vector<float>() == image_to_tensor(im).to_vector<float>());
    const std::vector<int64_t> got = s.label.to_vector<int64_t>();
    REQUIRE(got.size() == lb.pixels.size());
    size_t wrong = 0, ignored = 0;
    for (size_t p = 0; p < got.size(); ++p) {
      wrong += got[p] != (lb.pixels[p] == 11 ? 255 : lb.pixels[p]);
      ignored += got[p] == 255;
    }
    CHECK(wrong == 0);
    CHECK(ignored < got.size() / 4);   // void is a small part of a CamVid frame
  }
  MESSAGE("CamVid real data at " << root << ": train 367 (dusk 62), val 101 loaded");
}
