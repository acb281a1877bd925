// Fuzzes the CamVid list-file reader (data/camvid.h CamVidDataset's constructor): the input is
// written as the list file of a scratch root that holds a few (empty) image files, so that lines
// naming them pass the existence check and the rest of the parsing (the SegNet prefix, the
// sequence and domain of a name) is reached.
// Built and run by tests/fuzz/CMakeLists.txt (ctest -R fuzz/camvid_list).
#include <fstream>

#include "data/camvid.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path root = [] {
    auto r = moeseg::fuzz::scratch_dir("camvid");
    std::filesystem::create_directories(r / "train");
    std::filesystem::create_directories(r / "trainannot");
    for (const char* f : {"train/0001TP_006690.png", "trainannot/0001TP_006690.png", "train/Seq05VD_f00000.png",
                          "trainannot/Seq05VD_f00000.png", "a.png", "b.png"})
      std::ofstream(r / f) << "";
    return r;
  }();
  const std::filesystem::path list = root / "train.txt";
  {
    std::ofstream out(list, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  return moeseg::fuzz::refuse_cleanly([&] {
    moeseg::data::CamVidOptions o;
    o.root = root.string();
    o.list_file = list.string();
    moeseg::data::CamVidDataset ds(o);
    if (ds.size() == 0) __builtin_trap();
  });
}
