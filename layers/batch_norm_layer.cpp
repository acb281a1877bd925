// BatchNorm2d layer: parameters and buffers with PyTorch's names and initial values; forward
// through kernels/batch_norm.h.
#include "layers/batch_norm_layer.h"

#include "core/autograd.h"

namespace moeseg {

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum, bool affine, bool track_running_stats)
    : Module("BatchNorm2d"), num_features_(num_features), eps_(eps), momentum_(momentum) {
  MOESEG_CHECK(num_features > 0, "BatchNorm2d: num_features must be positive, got ", num_features);
  MOESEG_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, "BatchNorm2d: eps=", eps, " must be > 0 and momentum=",
               momentum, " in [0, 1]");
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({num_features}));
    bias = register_parameter("bias", Tensor::zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
    running_var = register_buffer("running_var", Tensor::ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::Int64));
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  check_dim(x, 4, "BatchNorm2d", "x");
  MOESEG_CHECK(x.size(1) == num_features_, "BatchNorm2d(", num_features_, "): input ", x.str(), " has ", x.size(1),
               " channels");
  // As PyTorch: without running statistics the batch statistics are used in eval mode too.
  const bool use_batch_stats = is_training() || !running_mean.defined();
  if (is_training() && num_batches_tracked.defined()) {
    NoGradGuard ng;
    if (num_batches_tracked.device().is_cpu()) {
      num_batches_tracked.data<int64_t>()[0] += 1;
      num_batches_tracked.bump_version();
    } else {
      // Host code must not touch device memory: count on the host and write the count with a
      // device fill (no synchronisation). The buffer is read back only when it is another buffer or
      // someone else wrote it since (a loaded state_dict), which its storage and version tell.
      if (tracked_storage_ != num_batches_tracked.raw_data() || num_batches_tracked.version() != tracked_version_)
        tracked_count_ = static_cast<int64_t>(num_batches_tracked.item());
      num_batches_tracked.fill_(static_cast<double>(++tracked_count_));
      tracked_version_ = num_batches_tracked.version();
      tracked_storage_ = num_batches_tracked.raw_data();
    }
  }
  return batch_norm2d(x, weight, bias, running_mean, running_var, use_batch_stats, momentum_, eps_);
}

}  // namespace moeseg
