// Data, model and augmentation of an experiment config (training/experiment_setup.h).
#include "training/experiment_setup.h"

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

data::AugmentConfig augment_for(const DataConfig& d, bool train, int ignore_index) {
  data::AugmentConfig a = data::reference_preset(d.height, d.width, train && d.preset == "reference");
  a.ignore_index = ignore_index;
  return a;
}

}  // namespace moeseg
