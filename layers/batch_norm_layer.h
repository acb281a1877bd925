// BatchNorm2d layer (torch.nn.BatchNorm2d): parameters weight (1) and bias (0), buffers
// running_mean (0), running_var (1) and num_batches_tracked (int64 scalar), momentum 0.1,
// eps 1e-5. Training mode normalises with batch statistics and updates the running ones (in
// place, by the batch_norm2d op); eval mode uses the running statistics.
#pragma once
#include "kernels/batch_norm.h"
#include "layers/module.h"

namespace moeseg {

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true);
  Tensor forward(const Tensor& x) override;

  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }

  Tensor weight, bias;                                        // undefined when not affine
  Tensor running_mean, running_var, num_batches_tracked;      // undefined when not tracking

 private:
  int64_t num_features_;
  double eps_, momentum_;
  // The host's count of num_batches_tracked while the buffer is on a CUDA device (forward).
  const void* tracked_storage_ = nullptr;   // compared, never dereferenced
  int64_t tracked_count_ = 0;
  uint64_t tracked_version_ = 0;
};

}  // namespace moeseg
