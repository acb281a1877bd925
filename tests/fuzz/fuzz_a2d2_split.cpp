// Fuzzes the A2D2 split-file reader (data/a2d2.h A2D2Dataset's constructor and
// resolve_a2d2_line): the input is written as a split file under a scratch dataset root (with a
// one-entry class_list.json) and opened with check_files off, so every line is parsed and
// resolved, none is stat'ed.
// Built and run by tests/fuzz/CMakeLists.txt (ctest -R fuzz/a2d2_split).
#include <fstream>

#include "data/a2d2.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path root = [] {
    auto r = moeseg::fuzz::scratch_dir("a2d2");
    std::ofstream(r / "class_list.json") << "{\"#ff0000\": \"Car 1\"}\n";
    return r;
  }();
  const std::filesystem::path split = root / "highway_train_gt.txt";
  {
    std::ofstream out(split, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  return moeseg::fuzz::refuse_cleanly([&] {
    moeseg::data::A2D2Options o;
    o.root = root.string();
    o.split_file = split.string();
    o.check_files = false;
    moeseg::data::A2D2Dataset ds(o);
    if (ds.size() == 0) __builtin_trap();   // the constructor refuses an empty list
  });
}
