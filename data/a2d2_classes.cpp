// Tables of spec §1.2.1 / §1.2.2 and the class_list.json check.
#include "data/a2d2_classes.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moeseg::data {

namespace {
// Group ids of the 11-class mapping (spec §1.2.2).
enum G { Person = 0, CarG, TruckG, Drivable, Nondrivable, Blocker, Info, SkyG, BuildingsG, Nature, Lanes, Ign = -1 };

std::string normalise(std::string s) {
  // lower case, trimmed, a trailing " <digits>" (the variant number) removed
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  s = s.substr(b);
  size_t e = s.size();
  while (e > 0 && std::isdigit(static_cast<unsigned char>(s[e - 1]))) --e;
  if (e < s.size() && e > 0 && s[e - 1] == ' ') s = s.substr(0, e - 1);
  return s;
}
}  // namespace

const std::vector<A2D2Class>& a2d2_classes() {
  static const std::vector<A2D2Class> t = {
      {0, "Car", {{255, 0, 0}, {200, 0, 0}, {150, 0, 0}, {128, 0, 0}}, CarG},
      {1, "Bicycle", {{182, 89, 6}, {150, 50, 4}, {90, 30, 1}, {90, 30, 30}}, Person},
      {2, "Pedestrian", {{204, 153, 255}, {189, 73, 155}, {239, 89, 191}}, Person},
      {3, "Truck", {{255, 128, 0}, {200, 128, 0}, {150, 128, 0}}, TruckG},
      {4, "Small vehicles", {{0, 255, 0}, {0, 200, 0}, {0, 150, 0}}, CarG},
      {5, "Traffic signal", {{0, 128, 255}, {30, 28, 158}, {60, 28, 100}}, Info},
      {6, "Traffic sign", {{0, 255, 255}, {30, 220, 220}, {60, 157, 199}}, Info},
      {7, "Utility vehicle", {{255, 255, 0}, {255, 255, 200}}, TruckG},
      {8, "Sidebars", {{233, 100, 0}}, Info},
      {9, "Speed bumper", {{110, 110, 0}}, Info},
      {10, "Curbstone", {{128, 128, 0}}, Nondrivable},
      {11, "Solid line", {{255, 193, 37}}, Lanes},
      {12, "Irrelevant signs", {{64, 0, 64}}, Blocker},
      {13, "Road blocks", {{185, 122, 87}}, Blocker},
      {14, "Tractor", {{0, 0, 100}}, TruckG},
      {15, "Non-drivable street", {{139, 99, 108}}, Nondrivable},
      {16, "Zebra crossing", {{210, 50, 115}}, Info},
      {17, "Obstacles / trash", {{255, 0, 128}}, Blocker},
      {18, "Poles", {{255, 246, 143}}, Blocker},
      {19, "RD restricted area", {{150, 0, 150}}, Nondrivable},
      {20, "Animals", {{204, 255, 153}}, Person},
      {21, "Grid structure", {{238, 162, 173}}, Blocker},
      {22, "Signal corpus", {{33, 44, 177}}, Blocker},
      {23, "Drivable cobblestone", {{180, 50, 180}}, Drivable},
      {24, "Electronic traffic", {{255, 70, 185}}, Info},
      {25, "Slow drive area", {{238, 233, 191}}, Nondrivable},
      {26, "Nature object", {{147, 253, 194}}, Nature},
      {27, "Parking area", {{150, 150, 200}}, Drivable},
      {28, "Sidewalk", {{180, 150, 200}}, Nondrivable},
      {29, "Ego car", {{72, 209, 204}}, CarG},
      {30, "Painted driv. instr.", {{200, 125, 210}}, Info},
      {31, "Traffic guide obj.", {{159, 121, 238}}, Info},
      {32, "Dashed line", {{128, 0, 255}}, Lanes},
      {33, "RD normal street", {{255, 0, 255}}, Drivable},
      {34, "Sky", {{135, 206, 255}}, SkyG},
      {35, "Buildings", {{241, 230, 255}}, BuildingsG},
      {36, "Blurred area", {{96, 69, 143}}, Ign},
      {37, "Rain dirt", {{53, 46, 82}}, Ign},
  };
  return t;
}

const std::vector<std::string>& a2d2_group_names() {
  static const std::vector<std::string> g = {"Person", "Car",  "Truck",     "Drivable", "Nondrivable", "Blocker",
                                             "Info",   "Sky",  "Buildings", "Nature",   "Lanes"};
  return g;
}

std::string a2d2_raw_name(int class_id, int variant) {
  const A2D2Class& c = a2d2_classes().at(static_cast<size_t>(class_id));
  MOESEG_CHECK(variant >= 0 && variant < static_cast<int>(c.colours.size()), "a2d2_raw_name: class '", c.name,
               "' has no variant ", variant);
  if (c.colours.size() == 1) return c.name;
  return std::string(c.name) + " " + std::to_string(variant + 1);
}

int a2d2_class_by_name(const std::string& name) {
  const std::string n = normalise(name);
  for (const auto& c : a2d2_classes())
    if (normalise(c.name) == n) return c.id;
  return -1;
}

std::string rgb_hex(RGB c) {
  static const char* hex = "0123456789abcdef";
  std::string s = "#";
  for (uint8_t v : c) {
    s += hex[v >> 4];
    s += hex[v & 15];
  }
  return s;
}

bool parse_rgb_hex(const std::string& s, RGB& out) {
  if (s.size() != 7 || s[0] != '#') return false;
  for (int k = 0; k < 3; ++k) {
    int v = 0;
    for (int j = 1; j <= 2; ++j) {
      char ch = static_cast<char>(std::tolower(static_cast<unsigned char>(s[2 * k + j])));
      int d = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    out[k] = static_cast<uint8_t>(v);
  }
  return true;
}

A2D2ColourTable::A2D2ColourTable() {
  for (const auto& c : a2d2_classes())
    for (const RGB& rgb : c.colours) map_[rgb_key(rgb[0], rgb[1], rgb[2])] = c.id;
}

void validate_a2d2_class_list(const std::string& path) {
  std::ifstream in(path);
  MOESEG_CHECK(in.good(), "A2D2: class list '", path, "' cannot be opened (class_list.json must be at the dataset root)");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    MOESEG_FAIL("A2D2: class list '", path, "' is not valid JSON: ", e.what());
  }
  MOESEG_CHECK(j.is_object() && !j.empty(), "A2D2: class list '", path, "' must be a non-empty object \"#rrggbb\" -> name");
  static const A2D2ColourTable table;
  for (auto it = j.begin(); it != j.end(); ++it) {
    RGB rgb;
    MOESEG_CHECK(parse_rgb_hex(it.key(), rgb), "A2D2: class list '", path, "': key '", it.key(),
                 "' is not a \"#rrggbb\" colour");
    MOESEG_CHECK(it.value().is_string(), "A2D2: class list '", path, "': value of '", it.key(), "' is not a class name");
    const std::string name = it.value().get<std::string>();
    const int by_colour = table.lookup(rgb[0], rgb[1], rgb[2]);
    const int by_name = a2d2_class_by_name(name);
    MOESEG_CHECK(by_name >= 0, "A2D2: class list '", path, "': colour ", it.key(), " has unknown class name '", name, "'");
    MOESEG_CHECK(by_colour >= 0, "A2D2: class list '", path, "': colour ", it.key(), " ('", name,
                 "') is not one of the 55 A2D2 colours");
    MOESEG_CHECK(by_colour == by_name, "A2D2: class list '", path, "': colour ", it.key(), " is named '", name,
                 "' but that colour belongs to '", a2d2_classes()[by_colour].name, "'");
  }
}

}  // namespace moeseg::data
