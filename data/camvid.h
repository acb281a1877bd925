// CamVid as published with the SegNet tutorial: list files (train.txt, val.txt, test.txt) with
// one "<image> <label>" pair per line, written as absolute paths under /SegNet/CamVid/ which we
// resolve against the dataset root; labels are 8-bit grayscale class indices, 11 classes
// (Sky..Bicyclist) and 11 = Unlabelled -> ignore. The sequence prefix of a file name (0001TP,
// 0006R0, 0016E5, Seq05VD) selects the lighting domain: 0001TP was filmed at dusk, the others
// by day, which gives a real day/dusk split for two experts.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace moeseg::data {

struct CamVidOptions {
  std::string root;            // the folder that holds train.txt, train/, trainannot/, ...
  std::string split = "train"; // reads <root>/<split>.txt, unless list_file is set
  std::string list_file;
  std::vector<std::string> sequences;   // keep only these sequence prefixes (empty: all)
  std::vector<std::string> domains;     // keep only these domains, "day"/"dusk" (empty: all)
  int ignore_index = 255;
};

extern const char* const kCamVidClassNames[11];
std::string camvid_sequence(const std::string& file_name);   // "0001TP_006690.png" -> "0001TP"
std::string camvid_domain(const std::string& sequence);      // "0001TP" -> "dusk", others "day"
// "/SegNet/CamVid/train/x.png" -> <root>/train/x.png; relative paths are taken under root too.
std::string camvid_resolve(const std::string& root, const std::string& listed);

class CamVidDataset : public Dataset {
 public:
  explicit CamVidDataset(CamVidOptions opt);
  size_t size() const override { return entries_.size(); }
  Sample get(size_t i) const override;
  int num_classes() const override { return 11; }
  int ignore_index() const override { return opt_.ignore_index; }
  std::string name() const override;

 private:
  struct Entry { std::string image_path, label_path, id, domain; };
  CamVidOptions opt_;
  std::string list_file_;
  std::vector<Entry> entries_;
};

}  // namespace moeseg::data
