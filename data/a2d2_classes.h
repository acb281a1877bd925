// The A2D2 semantic classes: the 55 colour-coded raw entries of class_list.json merged into the
// 38 classes of the reference (spec §1.2.1), the 11-class grouping (§1.2.2), and the colour ->
// class lookup used to decode RGB label PNGs.
//
// Every variant colour ("Car 1".."Car 4", "Pedestrian 1".."3", ...) maps to its merged class.
// The reference loader matches only the FIRST colour of each class and leaves other pixels at
// 0, so its secondary-variant pixels (e.g. "Car 2" #c80000) silently become "Car" and, worse,
// its "Pedestrian 2" pixels become "Car" too; we decode them correctly (spec §7 note 2).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace moeseg::data {

using RGB = std::array<uint8_t, 3>;

struct A2D2Class {
  int id;                    // 0..37
  const char* name;          // merged name, e.g. "Car"
  std::vector<RGB> colours;  // first = primary colour, then the numbered variants in order
  int group11;               // id in the 11-class grouping, or -1 = ignored (Blurred area, Rain dirt)
};

constexpr int kA2D2NumClasses = 38;
constexpr int kA2D2NumGroups = 11;

const std::vector<A2D2Class>& a2d2_classes();        // the 38 classes, index = id
const std::vector<std::string>& a2d2_group_names();  // the 11 group names, index = group id
// The raw class_list.json name of a colour as A2D2 writes it: "Car 2" for a variant of a
// numbered class, the plain name for single-colour classes.
std::string a2d2_raw_name(int class_id, int variant);
// Class id of a merged class name ("Car", "Car 2" and "car 2" all give 0); -1 if unknown.
int a2d2_class_by_name(const std::string& name);

std::string rgb_hex(RGB c);                                     // "#rrggbb"
bool parse_rgb_hex(const std::string& s, RGB& out);             // accepts "#rrggbb" / "#RRGGBB"
inline uint32_t rgb_key(uint8_t r, uint8_t g, uint8_t b) { return (uint32_t(r) << 16) | (uint32_t(g) << 8) | b; }

// Reads <path> (class_list.json) and checks it against the built-in table: every key must be a
// "#rrggbb" colour whose name is a variant of the class our table gives that colour. A missing
// file, a bad key or a disagreeing entry throws naming the file and the colour.
void validate_a2d2_class_list(const std::string& path);

// Colour -> class id for the 38 classes (all variant colours included); -1 when unknown.
class A2D2ColourTable {
 public:
  A2D2ColourTable();
  int lookup(uint8_t r, uint8_t g, uint8_t b) const {
    auto it = map_.find(rgb_key(r, g, b));
    return it == map_.end() ? -1 : it->second;
  }
 private:
  std::unordered_map<uint32_t, int> map_;
};

}  // namespace moeseg::data
