// Validation during training: the mean loss and mIoU of a model on a dataset, in eval mode
// without gradients, batched as the config's training batches. The trainer calls it every
// train.val_every epochs; tests call it to re-check a saved best checkpoint.
#pragma once
#include "data/dataset.h"
#include "models/segmentation_model.h"
#include "training/experiment_config.h"

namespace moeseg {

struct ValidationResult {
  double loss = 0, miou = 0;
  int64_t images = 0;
};
ValidationResult validate_model(SegmentationModel& model, const data::Dataset& ds, const ExperimentConfig& c,
                                bool quiet = true);

// The config's train.class_weights as a [classes] tensor (undefined when none are set).
Tensor class_weight_tensor(const TrainConfig& t, int64_t classes);

}  // namespace moeseg
