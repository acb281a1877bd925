// A2D2 in its original layout: split-file resolution, class_list.json, 38/11-class decoding of
// every variant colour, and the errors for unknown colours, size mismatches and missing files.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "data/a2d2.h"
#include "data_test_util.h"

using namespace moeseg;
using namespace moeseg::data;
using namespace moeseg::testing;

namespace {
A2D2Options fixture_options(const std::string& subset, const std::string& split = "test") {
  A2D2Options o;
  o.root = data_fixture("a2d2");
  o.subset = subset;
  o.split = split;
  return o;
}

std::vector<int64_t> label_values(const Sample& s) { return s.label.to_vector<int64_t>(); }

std::vector<int64_t> expected_ids(const std::string& base, const char* key) {
  return data_expected()["a2d2"][base][key].get<std::vector<int64_t>>();
}
}  // namespace

TEST_CASE("a2d2: a split-file line resolves to the original tree (only the basename counts)") {
  A2D2Entry e = resolve_a2d2_line("/data/a2d2", "highway/train_val/GT/20181108091945_label_frontcenter_000001234.png", "x:1");
  CHECK(e.label_path == "/data/a2d2/20181108_091945/label/cam_front_center/20181108091945_label_frontcenter_000001234.png");
  CHECK(e.image_path == "/data/a2d2/20181108_091945/camera/cam_front_center/20181108091945_camera_frontcenter_000001234.png");
  CHECK(e.id == "20181108091945_frontcenter_000001234");
  A2D2Entry side = resolve_a2d2_line("/r", "anything/else/20180807145028_label_sideleft_000000091.png", "x:2");
  CHECK(side.label_path == "/r/20180807_145028/label/cam_side_left/20180807145028_label_sideleft_000000091.png");
  std::string msg = error_of([] { resolve_a2d2_line("/r", "x/20181108091945_camera_frontcenter_000001234.png", "list.txt:7"); });
  CHECK(contains(msg, "list.txt:7"));
  CHECK(contains(msg, "20181108091945_camera_frontcenter_000001234.png"));
}

TEST_CASE("a2d2: all 55 colours decode to their 38 merged classes") {
  A2D2Dataset ds(fixture_options("highway"));
  REQUIRE(ds.size() == 2);
  CHECK(ds.num_classes() == 38);
  CHECK(ds.ignore_index() == 255);
  for (size_t i = 0; i < ds.size(); ++i) {
    Sample s = ds.get(i);
    check_sample(s, 38, 255);
    CHECK(s.domain == "highway");
    CHECK(s.image.shape() == Shape{3, 6, 8});
    const std::string base = std::filesystem::path(ds.entries()[i].label_path).filename().string();
    CHECK(label_values(s) == expected_ids(base, "ids38"));
  }
}

TEST_CASE("a2d2: variant colours map to their class, not to Car (the reference's quirk)") {
  A2D2Dataset ds(fixture_options("urban"));
  REQUIRE(ds.size() == 1);
  Sample s = ds.get(0);
  std::vector<int64_t> v = label_values(s);
  // first pixels: Car 2, Car 3, Car 4, Bicycle 2, 3, 4, Pedestrian 2, 3, Truck 2, 3, Small vehicles 2, 3
  CHECK(v[0] == 0);
  CHECK(v[2] == 0);
  CHECK(v[3] == 1);
  CHECK(v[6] == 2);   // Pedestrian 2 (#bd499b): the reference would say Car
  CHECK(v[7] == 2);
  CHECK(v[8] == 3);
  CHECK(v[10] == 4);
  CHECK(v[12] == 5);   // Traffic signal 2
  CHECK(v[14] == 6);   // Traffic sign 2
  CHECK(v[16] == 7);   // Utility vehicle 2
  CHECK(v[17] == 34);  // then sky padding
  const std::string base = std::filesystem::path(ds.entries()[0].label_path).filename().string();
  CHECK(v == expected_ids(base, "ids38"));
  // spot-check the table itself
  A2D2ColourTable t;
  CHECK(t.lookup(200, 0, 0) == 0);
  CHECK(t.lookup(90, 30, 30) == 1);
  CHECK(t.lookup(60, 157, 199) == 6);
  CHECK(t.lookup(255, 255, 200) == 7);
  CHECK(t.lookup(1, 2, 3) == -1);
}

TEST_CASE("a2d2: 11-class grouping, Blurred area and Rain dirt -> ignore") {
  A2D2Options o = fixture_options("highway");
  o.eleven_classes = true;
  A2D2Dataset ds(o);
  CHECK(ds.num_classes() == 11);
  for (size_t i = 0; i < ds.size(); ++i) {
    const std::string base = std::filesystem::path(ds.entries()[i].label_path).filename().string();
    std::vector<int64_t> v = label_values(ds.get(i));
    CHECK(v == expected_ids(base, "ids11"));
  }
  // frame 2 holds the last 7 of the 55 colours: ..., Buildings, Blurred area, Rain dirt, then road
  std::vector<int64_t> v2 = label_values(ds.get(1));
  CHECK(v2[4] == 8);     // Buildings
  CHECK(v2[5] == 255);   // Blurred area
  CHECK(v2[6] == 255);   // Rain dirt
  CHECK(v2[7] == 3);     // RD normal street -> Drivable
  o.ignore_index = 5;    // collides with a class id
  CHECK(contains(error_of([&] { A2D2Dataset bad(o); }), "collides"));
}

TEST_CASE("a2d2: an unknown colour names the file and the colour, or becomes ignore when asked") {
  A2D2Dataset ds(fixture_options("badcolour"));
  const auto& info = data_expected()["a2d2_unknown"];
  std::string msg = error_of([&] { ds.get(0); });
  CHECK(contains(msg, info["file"].get<std::string>()));
  CHECK(contains(msg, "#123456"));
  CHECK(contains(msg, "x=5, y=2"));
  A2D2Options o = fixture_options("badcolour");
  o.unknown_colour_to_ignore = true;
  o.ignore_index = 250;   // the FRRN loss's ignore value
  A2D2Dataset lenient(o);
  std::vector<int64_t> v = label_values(lenient.get(0));
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == (i == 2 * 8 + 5 ? 250 : 33));
}

TEST_CASE("a2d2: label/image size mismatch names both files") {
  A2D2Dataset ds(fixture_options("mismatch"));
  std::string msg = error_of([&] { ds.get(0); });
  CHECK(contains(msg, "20181016125231_camera_frontcenter_000000005.png"));
  CHECK(contains(msg, "20181016125231_label_frontcenter_000000005.png"));
  CHECK(contains(msg, "8x6"));
  CHECK(contains(msg, "7x6"));
}

TEST_CASE("a2d2: missing files, malformed lines, missing split files") {
  CHECK(contains(error_of([] { A2D2Dataset d(fixture_options("missing")); }), "20181016125231_label_frontcenter_000000099.png"));
  std::string msg = error_of([] { A2D2Dataset d(fixture_options("malformed")); });
  CHECK(contains(msg, "malformed_test_gt.txt:1"));
  CHECK(contains(error_of([] { A2D2Dataset d(fixture_options("nosuch")); }), "nosuch_test_gt.txt"));
}

TEST_CASE("a2d2: class_list.json is required and checked") {
  TempDir tmp("a2d2");
  A2D2Options o;
  o.root = tmp.str();
  o.split_file = data_fixture("a2d2/splits/urban_test_gt.txt");
  CHECK(contains(error_of([&] { A2D2Dataset d(o); }), "class_list.json"));
  {
    std::ofstream f(tmp.str("class_list.json"));
    f << R"({"#ff0000": "Car 1", "#c80000": "Pedestrian 2"})";
  }
  std::string msg = error_of([&] { A2D2Dataset d(o); });
  CHECK(contains(msg, "#c80000"));
  CHECK(contains(msg, "class_list.json"));
  {
    std::ofstream f(tmp.str("class_list.json"));
    f << R"({"#ff0000": "Car 1", "#12345": "Car 2"})";
  }
  CHECK(contains(error_of([&] { A2D2Dataset d(o); }), "#12345"));
}

TEST_CASE("a2d2: \"highway,urban\" concatenates the subsets like the reference's all split") {
  A2D2Options base;
  base.root = data_fixture("a2d2");
  base.split = "test";
  auto both = open_a2d2(base, "highway,urban");
  A2D2Dataset all(fixture_options("all"));
  REQUIRE(both->size() == 3);
  REQUIRE(all.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    Sample a = both->get(i), b = all.get(i);
    CHECK(a.id == b.id);
    CHECK(label_values(a) == label_values(b));
  }
  CHECK(both->get(2).domain == "urban");
  CHECK(both->name() == "a2d2:highway,a2d2:urban");
}
