// validate_model and the class-weight tensor of the loss (training/validation.h).
#include "training/validation.h"

#include <cmath>

#include "core/autograd.h"
#include "data/loader.h"
#include "kernels/cross_entropy.h"
#include "training/experiment_setup.h"
#include "training/metrics.h"
#include "training/progress.h"

namespace moeseg {

Tensor class_weight_tensor(const TrainConfig& t, int64_t classes) {
  if (t.class_weights.empty()) return Tensor();
  MOESEG_CHECK(static_cast<int64_t>(t.class_weights.size()) == classes, "train.class_weights: ", t.class_weights.size(),
               " weights for ", classes, " classes");
  std::vector<float> w(t.class_weights.begin(), t.class_weights.end());
  return Tensor::from_vector(w, {classes});
}

ValidationResult validate_model(SegmentationModel& model, const data::Dataset& ds, const ExperimentConfig& c,
                                bool quiet) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  data::LoaderOptions lo;
  lo.batch_size = static_cast<size_t>(c.train.batch);
  lo.num_workers = c.data.workers;
  lo.augment = augment_for(c.data, false, ds.ignore_index());
  std::shared_ptr<const data::Dataset> view(&ds, [](const data::Dataset*) {});
  data::DataLoader loader(view, lo);
  loader.start_epoch(0);
  ConfusionMatrix cm(model.num_classes());
  Tensor weights = class_weight_tensor(c.train, model.num_classes());
  double loss_sum = 0;
  int64_t n = 0, k = 0;
  ProgressBar bar("  validate", static_cast<int64_t>(loader.batches_per_epoch()), quiet);
  data::Batch b;
  const Device dev = model.device();
  if (weights.defined()) weights = weights.to(dev);
  while (loader.next(b)) {
    b.to(dev);
    Tensor logits = model.forward(b.images);
    const int64_t bn = b.images.size(0);
    loss_sum += cross_entropy(logits, b.labels, weights, c.train.ignore_index).item() * static_cast<double>(bn);
    cm.update_from_logits(logits, b.labels);
    n += bn;
    bar.update(++k, loss_sum / static_cast<double>(n), n);
  }
  bar.finish();
  model.train(was_training);
  ValidationResult r;
  r.loss = n ? loss_sum / static_cast<double>(n) : NAN;
  r.miou = cm.mean_iou();
  r.images = n;
  return r;
}

}  // namespace moeseg
