// Data, model and augmentation of an experiment config (training/experiment_setup.h).
#include "training/experiment_setup.h"

#include <filesystem>

#include "core/error.h"
#include "data/dataset_factory.h"
#include "models/registry.h"

namespace moeseg {

std::shared_ptr<const data::Dataset> open_experiment_data(const DataConfig& d, const std::string& subsets,
                                                          const std::string& split, int max_images,
                                                          const std::string& list_file) {
  data::DatasetRequest r;
  r.dataset = d.dataset;
  r.root = d.root;
  r.subsets = subsets;
  r.split = split;
  r.list_file = list_file;
  r.max_images = max_images;
  r.camvid_dusk_holdout = d.camvid_dusk_holdout;
  r.unknown_colour_to_ignore = d.unknown_colour_to_ignore;
  return data::make_dataset(r);
}

std::shared_ptr<SegmentationModel> build_experiment_model(const ExperimentConfig& c) {
  return make_model_from_config(c.model, c.base_dir);
}

std::shared_ptr<SegmentationModel> load_trained_experiment_model(const ExperimentConfig& c, const std::string& checkpoint,
                                                                 std::string* used) {
  auto model = build_experiment_model(c);
  std::string file = checkpoint;
  const std::string best = c.out + "/best/model.safetensors";
  if (file.empty() && std::filesystem::exists(best)) file = best;
  if (!file.empty()) {
    MOESEG_CHECK(std::filesystem::is_regular_file(file), c.name, ": checkpoint '", file, "' does not exist");
    load_checkpoint(*model, file);
  }
  if (used) *used = file;
  return model;
}

data::AugmentConfig augment_for(const DataConfig& d, bool train, int ignore_index) {
  data::AugmentConfig a = data::reference_preset(d.height, d.width, train && d.preset == "reference");
  a.ignore_index = ignore_index;
  return a;
}

}  // namespace moeseg
