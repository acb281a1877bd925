// The threaded data loader (see loader.h for the determinism contract).
#include "data/loader.h"

#include <algorithm>
#include <cstring>

#include "data/random_stream.h"

namespace moeseg::data {

namespace {
constexpr uint32_t kShuffleTag = 0x5F0FF1E5u;
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions opt) : dataset_(std::move(dataset)), opt_(std::move(opt)) {
  MOESEG_CHECK(dataset_ != nullptr, "DataLoader: no dataset");
  MOESEG_CHECK(opt_.batch_size > 0, "DataLoader: batch_size must be positive");
  MOESEG_CHECK(opt_.num_workers >= 0, "DataLoader: num_workers must be >= 0, got ", opt_.num_workers);
  if (opt_.prefetch <= 0) opt_.prefetch = std::max(1, 2 * opt_.num_workers);
}

DataLoader::~DataLoader() { stop(); }

size_t DataLoader::batches_per_epoch() const {
  const size_t n = dataset_->size();
  return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
}

std::vector<size_t> DataLoader::epoch_order(uint64_t epoch) const {
  std::vector<size_t> order(dataset_->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (!opt_.shuffle) return order;
  // Fisher-Yates with Philox draws of (seed, epoch): one permutation per epoch, on any machine.
  RandomStream rng(opt_.seed, static_cast<uint32_t>(epoch), static_cast<uint32_t>(epoch >> 32), kShuffleTag);
  for (size_t i = order.size(); i > 1; --i) {
    const uint64_t r = (static_cast<uint64_t>(rng.next_u32()) << 32) | rng.next_u32();
    std::swap(order[i - 1], order[r % i]);
  }
  return order;
}

std::vector<size_t> DataLoader::batch_indices(size_t b) const {
  const size_t begin = b * opt_.batch_size, end = std::min(order_.size(), begin + opt_.batch_size);
  return std::vector<size_t>(order_.begin() + static_cast<std::ptrdiff_t>(begin), order_.begin() + static_cast<std::ptrdiff_t>(end));
}

Batch DataLoader::make_batch(const std::vector<size_t>& indices, uint64_t epoch) const {
  MOESEG_CHECK(!indices.empty(), "DataLoader: empty batch");
  Batch b;
  const int64_t n = static_cast<int64_t>(indices.size());
  for (int64_t k = 0; k < n; ++k) {
    const size_t idx = indices[static_cast<size_t>(k)];
    Sample s = dataset_->get(idx);
    if (opt_.augment) s = augment_sample(s, *opt_.augment, opt_.seed, epoch, idx);
    MOESEG_CHECK(s.image.dim() == 3 && s.image.size(0) == 3 && s.image.dtype() == DType::Float32 && s.label.dim() == 2 &&
                     s.label.dtype() == DType::Int64 && s.label.size(0) == s.image.size(1) && s.label.size(1) == s.image.size(2),
                 "DataLoader: sample '", s.id, "' of '", dataset_->name(), "' has image ", s.image.str(), " and label ",
                 s.label.str(), " (float32 [3,H,W] and int64 [H,W] expected)");
    if (k == 0) {
      b.images = Tensor::empty({n, 3, s.image.size(1), s.image.size(2)}, DType::Float32);
      b.labels = Tensor::empty({n, s.label.size(0), s.label.size(1)}, DType::Int64);
    }
    MOESEG_CHECK(s.image.size(1) == b.images.size(2) && s.image.size(2) == b.images.size(3), "DataLoader: sample '", s.id,
                 "' is ", s.image.size(1), "x", s.image.size(2), " but sample '", b.ids.front(), "' of the same batch is ",
                 b.images.size(2), "x", b.images.size(3), "; set a resize or crop in the augment options");
    Tensor im = s.image.contiguous(), lb = s.label.contiguous();
    std::memcpy(b.images.data<float>() + k * im.numel(), im.data<float>(), static_cast<size_t>(im.numel()) * sizeof(float));
    std::memcpy(b.labels.data<int64_t>() + k * lb.numel(), lb.data<int64_t>(), static_cast<size_t>(lb.numel()) * sizeof(int64_t));
    b.ids.push_back(s.id);
    b.domains.push_back(s.domain);
    b.indices.push_back(idx);
  }
  return b;
}

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  ready_.clear();
  stop_ = false;
  started_ = false;
}

void DataLoader::start_epoch(uint64_t epoch) {
  stop();
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  num_batches_ = batches_per_epoch();
  next_claim_ = next_consume_ = 0;
  started_ = true;
  for (int w = 0; w < opt_.num_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

void DataLoader::worker_loop() {
  for (;;) {
    size_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] {
        return stop_ || next_claim_ >= num_batches_ || next_claim_ < next_consume_ + static_cast<size_t>(opt_.prefetch);
      });
      if (stop_ || next_claim_ >= num_batches_) return;
      b = next_claim_++;
    }
    Result r;
    try {
      r.batch = make_batch(batch_indices(b), epoch_);
    } catch (...) {
      r.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      ready_.emplace(b, std::move(r));
    }
    ready_cv_.notify_all();
  }
}

bool DataLoader::next(Batch& out) {
  MOESEG_CHECK(started_, "DataLoader: call start_epoch() before next()");
  if (next_consume_ >= num_batches_) return false;
  if (opt_.num_workers == 0) {
    out = make_batch(batch_indices(next_consume_), epoch_);
    ++next_consume_;
    return true;
  }
  Result r;
  {
    std::unique_lock<std::mutex> lock(mu_);
    ready_cv_.wait(lock, [&] { return ready_.count(next_consume_) > 0; });
    auto it = ready_.find(next_consume_);
    r = std::move(it->second);
    ready_.erase(it);
    ++next_consume_;
  }
  work_cv_.notify_all();
  if (r.error) std::rethrow_exception(r.error);
  out = std::move(r.batch);
  return true;
}

}  // namespace moeseg::data
