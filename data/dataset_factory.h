// make_dataset: the one place that turns a description of data (which dataset, subsets, split,
// or a list file) into a Dataset. The dataset policy lives here, not in the trainer or the CLI:
//   A2D2 (and the synthetic scenes, written as A2D2): subsets highway, urban, ambiguous, all
//     (= highway ∪ urban, spec §1.2), splits train / val / test read from
//     <root>/splits/<subset>_<split>_gt.txt; a list file is a split file of that format.
//   CamVid: subsets dusk (sequence 0001TP), day (the other sequences), all (= dusk ∪ day).
//     CamVid as published with SegNet has train and val lists, so the splits are:
//     dusk train = the 0001TP frames of train.txt minus the last camvid_dusk_holdout; dusk
//     val / test = the first / second half of those held-out frames; day train = the day
//     frames of train.txt; day val / test = the first / second half of the day frames of
//     val.txt. The split "list:NAME" reads <root>/NAME.txt whole (e.g. "list:test" for a
//     test.txt), filtered by the subset's domain; a list file has CamVid's "<image> <label>" lines.
//   Cityscapes: subset all, splits train / val / test (leftImg8bit + gtFine); no list files.
// Each part is cut to its first max_images samples (0 = all) before the parts are concatenated.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace moeseg::data {

struct DatasetRequest {
  std::string dataset = "a2d2";        // a2d2 | camvid | cityscapes
  std::string root;
  std::string subsets = "highway";     // comma separated
  std::string split = "train";         // train | val | test (camvid also list:NAME)
  std::string list_file;               // set: the samples this list file names, instead of subsets/split
  int max_images = 0;
  int camvid_dusk_holdout = 20;
  bool unknown_colour_to_ignore = false;   // A2D2: a label colour outside the table -> ignore
};

std::shared_ptr<const Dataset> make_dataset(const DatasetRequest& request);

// The subsets a union subset stands for ("all" = highway + urban for A2D2, dusk + day for
// CamVid); empty for a subset that is not a union. Evaluation merges the parts' results.
std::vector<std::string> union_subset_parts(const std::string& dataset, const std::string& subset);

// "a,b,,c" -> {"a", "b", "c"}.
std::vector<std::string> split_csv(const std::string& s);

}  // namespace moeseg::data
