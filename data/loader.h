// Mini-batches for training and evaluation, prepared on background threads.
// Determinism: the sample order of an epoch is a Philox shuffle of (seed, epoch) and each
// sample's augmentation is keyed by (seed, epoch, sample index), and batch k always holds the
// k-th slice of that order. Workers claim batch numbers and the consumer receives them in order,
// so the batches are the same for 0, 1 or 8 workers. A bounded window (prefetch) limits how far
// workers run ahead. Destroying the loader mid-epoch stops and joins the workers.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace moeseg::data {

struct LoaderOptions {
  size_t batch_size = 1;
  bool shuffle = false;           // the reference trains with shuffle=False; we default the same
  bool drop_last = false;
  uint64_t seed = 0;
  int num_workers = 2;            // 0: batches are built on the calling thread inside next()
  int prefetch = 0;               // batches prepared ahead of the consumer; 0: 2 * num_workers
  std::optional<AugmentConfig> augment;
};

struct Batch {
  Tensor images;                  // float32 [N,3,H,W]
  Tensor labels;                  // int64 [N,H,W]
  std::vector<std::string> ids, domains;
  std::vector<size_t> indices;    // dataset indices
  // Images and labels on `d` (the loader always fills them on the CPU).
  void to(Device d) {
    images = images.to(d);
    labels = labels.to(d);
  }
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  size_t batches_per_epoch() const;
  // The sample order of an epoch (identity without shuffle).
  std::vector<size_t> epoch_order(uint64_t epoch) const;
  // Starts an epoch (stopping an unfinished one first).
  void start_epoch(uint64_t epoch);
  // The next batch of the current epoch; false when the epoch is done. A failure while loading
  // a sample is rethrown here, for the batch that contains it.
  bool next(Batch& out);
  const Dataset& dataset() const { return *dataset_; }

  // Builds one batch from dataset indices (what the workers call); public for tests and tools.
  Batch make_batch(const std::vector<size_t>& indices, uint64_t epoch) const;

 private:
  struct Result {
    Batch batch;
    std::exception_ptr error;
  };
  void worker_loop();
  void stop();
  std::vector<size_t> batch_indices(size_t b) const;

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions opt_;
  uint64_t epoch_ = 0;
  std::vector<size_t> order_;
  size_t num_batches_ = 0;
  bool started_ = false;

  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  bool stop_ = false;
  size_t next_claim_ = 0, next_consume_ = 0;
  std::map<size_t, Result> ready_;
  std::vector<std::thread> workers_;
};

}  // namespace moeseg::data
