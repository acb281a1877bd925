// make_dataset and the dataset policy (data/dataset_factory.h).
#include "data/dataset_factory.h"

#include <algorithm>

#include "core/error.h"
#include "data/a2d2.h"
#include "data/camvid.h"
#include "data/cityscapes.h"

namespace moeseg::data {

namespace {

std::vector<size_t> index_range(size_t a, size_t b) {
  std::vector<size_t> v;
  for (size_t i = a; i < b; ++i) v.push_back(i);
  return v;
}

std::shared_ptr<const Dataset> camvid_part(const DatasetRequest& r, const std::string& subset) {
  CamVidOptions o;
  o.root = r.root;
  MOESEG_CHECK(subset == "dusk" || subset == "day", "CamVid: unknown subset '", subset, "' (known: dusk, day, all)");
  o.domains = {subset};
  if (!r.list_file.empty()) {
    o.list_file = r.list_file;
    return std::make_shared<CamVidDataset>(o);
  }
  const std::string& split = r.split;
  if (split.rfind("list:", 0) == 0) {
    o.split = split.substr(5);
    MOESEG_CHECK(!o.split.empty(), "CamVid: split 'list:' names no list (e.g. list:test for <root>/test.txt)");
    return std::make_shared<CamVidDataset>(o);
  }
  const std::string tag = "camvid:" + subset + ":" + split;
  if (subset == "dusk") {
    o.split = "train";   // every dusk frame comes from train.txt; its tail is held out
    auto all = std::make_shared<CamVidDataset>(o);
    const size_t n = all->size();
    const size_t hold = std::min<size_t>(static_cast<size_t>(std::max(r.camvid_dusk_holdout, 2)), n / 2);
    const size_t first = n - hold, mid = first + hold / 2;
    if (split == "train") return std::make_shared<IndexedDataset>(all, index_range(0, first), tag);
    if (split == "val") return std::make_shared<IndexedDataset>(all, index_range(first, mid), tag);
    if (split == "test") return std::make_shared<IndexedDataset>(all, index_range(mid, n), tag);
  } else {
    if (split == "train") {
      o.split = "train";
      return std::make_shared<CamVidDataset>(o);
    }
    o.split = "val";
    auto all = std::make_shared<CamVidDataset>(o);
    const size_t n = all->size();
    if (split == "val") return std::make_shared<IndexedDataset>(all, index_range(0, n / 2), tag);
    if (split == "test") return std::make_shared<IndexedDataset>(all, index_range(n / 2, n), tag);
  }
  MOESEG_FAIL("CamVid: unknown split '", split, "' (known: train, val, test, list:NAME)");
}

std::shared_ptr<const Dataset> a2d2_part(const DatasetRequest& r, const std::string& subset) {
  A2D2Options o;
  o.root = r.root;
  o.unknown_colour_to_ignore = r.unknown_colour_to_ignore;
  if (!r.list_file.empty()) {
    o.split_file = r.list_file;
  } else {
    o.subset = subset;
    o.split = r.split;
  }
  return std::make_shared<A2D2Dataset>(o);
}

std::shared_ptr<const Dataset> cityscapes_part(const DatasetRequest& r, const std::string& subset) {
  MOESEG_CHECK(subset == "all", "Cityscapes: unknown subset '", subset, "' (known: all)");
  MOESEG_CHECK(r.list_file.empty(), "Cityscapes: list files are not supported (", r.list_file,
               "); name a split: train, val or test");
  CityscapesOptions o;
  o.root = r.root;
  o.split = r.split;
  return std::make_shared<CityscapesDataset>(o);
}

}  // namespace

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

std::vector<std::string> union_subset_parts(const std::string& dataset, const std::string& subset) {
  if (subset != "all") return {};
  if (dataset == "a2d2") return {"highway", "urban"};
  if (dataset == "camvid") return {"dusk", "day"};
  return {};
}

std::shared_ptr<const Dataset> make_dataset(const DatasetRequest& r) {
  MOESEG_CHECK(r.dataset == "a2d2" || r.dataset == "camvid" || r.dataset == "cityscapes", "data: unknown dataset '",
               r.dataset, "' (known: a2d2, camvid, cityscapes)");
  std::vector<std::shared_ptr<const Dataset>> parts;
  // An A2D2 list file is one dataset; a CamVid list is filtered per domain subset.
  std::vector<std::string> subsets = split_csv(r.subsets);
  if (r.dataset == "a2d2" && !r.list_file.empty()) subsets = {"list"};
  MOESEG_CHECK(!subsets.empty(), "data: no subsets in '", r.subsets, "'");
  for (const std::string& s0 : subsets) {
    std::vector<std::string> names = {s0};
    if (r.dataset == "camvid" && s0 == "all") names = union_subset_parts("camvid", "all");
    for (const std::string& s : names) {
      std::shared_ptr<const Dataset> ds = r.dataset == "camvid"       ? camvid_part(r, s)
                                          : r.dataset == "cityscapes" ? cityscapes_part(r, s)
                                                                      : a2d2_part(r, s);
      if (r.max_images > 0 && ds->size() > static_cast<size_t>(r.max_images))
        ds = std::make_shared<IndexedDataset>(ds, index_range(0, static_cast<size_t>(r.max_images)),
                                              ds->name() + "[:" + std::to_string(r.max_images) + "]");
      parts.push_back(ds);
    }
  }
  if (parts.size() == 1) return parts[0];
  return std::make_shared<ConcatDataset>(parts);
}

}  // namespace moeseg::data
