// What an experiment config's sections build: its data (through data::make_dataset, where the
// dataset policy lives: data/dataset_factory.h), its model (the registry), and its loaders'
// augmentation. Used by the trainer, the evaluation, `moeseg eval` / `predict` and the studies.
#pragma once
#include <memory>
#include <string>

#include "data/augment.h"
#include "data/dataset.h"
#include "models/segmentation_model.h"
#include "training/experiment_config.h"

namespace moeseg {

// The dataset of `subsets` (comma separated) and `split` (train, val, test, or CamVid's
// list:NAME) as the config's data section says, each subset cut to `max_images` (0 = all); with
// `list_file` set, the samples that list names instead (A2D2 split-file or CamVid list format).
std::shared_ptr<const data::Dataset> open_experiment_data(const DataConfig& d, const std::string& subsets,
                                                          const std::string& split, int max_images,
                                                          const std::string& list_file = "");

// The model of a config (registry JSON, relative paths against the config's folder).
std::shared_ptr<SegmentationModel> build_experiment_model(const ExperimentConfig& c);

// The config's model with its trained weights, on the CPU: `checkpoint` when given (it must
// exist), else <out>/best/model.safetensors when the run has one, else the weights the model
// config itself names (an ensemble's members). `used` gets the file loaded ("" for none).
std::shared_ptr<SegmentationModel> load_trained_experiment_model(const ExperimentConfig& c,
                                                                 const std::string& checkpoint = "",
                                                                 std::string* used = nullptr);

// The augmentation of the config's preset: training (random flip for "reference") or evaluation.
data::AugmentConfig augment_for(const DataConfig& d, bool train, int ignore_index);

}  // namespace moeseg
