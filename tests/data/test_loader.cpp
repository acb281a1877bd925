// The threaded loader: batch shapes, drop_last, shuffling, identical batches for any number of
// workers, bounded prefetch, error propagation and clean shutdown mid-epoch.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "data/loader.h"
#include "data/synthetic_scenes.h"
#include "data_test_util.h"

using namespace moeseg;
using namespace moeseg::data;
using namespace moeseg::testing;

namespace {
// A tiny dataset whose samples encode their index; can be slowed down or made to fail.
class CountingDataset : public Dataset {
 public:
  CountingDataset(size_t n, int delay_ms = 0, size_t fail_at = SIZE_MAX) : n_(n), delay_ms_(delay_ms), fail_at_(fail_at) {}
  size_t size() const override { return n_; }
  Sample get(size_t i) const override {
    calls++;
    if (delay_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    MOESEG_CHECK(i != fail_at_, "CountingDataset: sample ", i, " is broken");
    Sample s;
    s.image = Tensor::full({3, 6, 5}, static_cast<double>(i) / 100.0);
    s.label = Tensor::full({6, 5}, static_cast<double>(i % 4), DType::Int64);
    s.id = std::to_string(i).insert(0, 1, 's');   // GCC 12 warns -Wrestrict, falsely, on "s" + to_string(i)
    s.domain = i % 2 ? "odd" : "even";
    return s;
  }
  int num_classes() const override { return 4; }
  int ignore_index() const override { return 255; }
  std::string name() const override { return "counting"; }
  mutable std::atomic<int> calls{0};

 private:
  size_t n_;
  int delay_ms_;
  size_t fail_at_;
};

// Waiting for a background thread: poll with a deadline far beyond what any machine needs, so a
// loaded one never fails a correct loader; a condition that never comes true still fails.
constexpr double kDeadlineSeconds = 30;
template <typename Cond>
bool eventually(Cond&& cond) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(kDeadlineSeconds);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}
// A pause that gives a wrong loader time to do what it must not (run past its bound); a right
// one passes whatever the pause, so its length is no timing assumption.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(300)); }

std::vector<Batch> run_epoch(DataLoader& dl, uint64_t epoch) {
  std::vector<Batch> out;
  dl.start_epoch(epoch);
  Batch b;
  while (dl.next(b)) out.push_back(b);
  return out;
}
}  // namespace

TEST_CASE("loader: batch shapes, order without shuffle, drop_last") {
  auto ds = std::make_shared<CountingDataset>(10);
  LoaderOptions o;
  o.batch_size = 4;
  DataLoader dl(ds, o);
  CHECK(dl.batches_per_epoch() == 3);
  auto batches = run_epoch(dl, 0);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0].images.shape() == Shape{4, 3, 6, 5});
  CHECK(batches[0].labels.shape() == Shape{4, 6, 5});
  CHECK(batches[2].images.shape() == Shape{2, 3, 6, 5});
  CHECK(batches[1].ids == std::vector<std::string>{"s4", "s5", "s6", "s7"});
  CHECK(batches[1].domains[1] == "odd");
  CHECK(batches[2].images.at({1, 2, 5, 4}) == doctest::Approx(0.09));
  CHECK(batches[2].labels.at({1, 0, 0}) == 1);
  o.drop_last = true;
  DataLoader dl2(ds, o);
  CHECK(dl2.batches_per_epoch() == 2);
  CHECK(run_epoch(dl2, 0).size() == 2);
}

TEST_CASE("loader: shuffling is a permutation per epoch, fixed by the seed") {
  auto ds = std::make_shared<CountingDataset>(50);
  LoaderOptions o;
  o.shuffle = true;
  o.seed = 3;
  DataLoader a(ds, o), b(ds, o);
  auto e0 = a.epoch_order(0), e1 = a.epoch_order(1);
  CHECK(std::set<size_t>(e0.begin(), e0.end()).size() == 50);
  CHECK(e0 != e1);
  CHECK(e0 == b.epoch_order(0));
  o.seed = 4;
  CHECK(DataLoader(ds, o).epoch_order(0) != e0);
}

TEST_CASE("loader: the same seed gives the same batches for 0, 1 and 3 workers") {
  auto ds = std::make_shared<SyntheticSceneDataset>(SceneDomain::Urban, SynthSplit::Train, 11, 5, 36, 48);
  auto run = [&](int workers) {
    LoaderOptions o;
    o.batch_size = 3;
    o.shuffle = true;
    o.seed = 9;
    o.num_workers = workers;
    AugmentConfig aug;
    aug.scale_min = 0.75;
    aug.scale_max = 1.25;
    aug.crop_height = 32;
    aug.crop_width = 40;
    aug.flip_p = 0.5;
    aug.brightness = 0.2;
    o.augment = aug;
    DataLoader dl(ds, o);
    std::vector<float> im;
    std::vector<int64_t> lb;
    std::vector<std::string> ids;
    for (uint64_t e : {0, 1}) {
      for (const Batch& b : run_epoch(dl, e)) {
        auto v = b.images.to_vector<float>();
        im.insert(im.end(), v.begin(), v.end());
        auto l = b.labels.to_vector<int64_t>();
        lb.insert(lb.end(), l.begin(), l.end());
        ids.insert(ids.end(), b.ids.begin(), b.ids.end());
      }
    }
    return std::make_tuple(im, lb, ids);
  };
  auto r0 = run(0), r1 = run(1), r3 = run(3);
  CHECK(std::get<2>(r0).size() == 22);
  CHECK(std::get<0>(r0) == std::get<0>(r1));
  CHECK(std::get<0>(r0) == std::get<0>(r3));
  CHECK(std::get<1>(r0) == std::get<1>(r3));
  CHECK(std::get<2>(r0) == std::get<2>(r3));
}

TEST_CASE("loader: prefetch bounds how far workers run ahead") {
  // Batch size 1, so calls = batches prepared. The workers must prepare exactly `prefetch`
  // batches ahead of the consumer and then wait: polled with a generous deadline (a loaded
  // machine may start the threads late), then held for a while to give an unbounded loader the
  // chance to overshoot. A correct loader can never exceed the bound, however slow the machine.
  auto ds = std::make_shared<CountingDataset>(40);
  LoaderOptions o;
  o.num_workers = 3;
  o.prefetch = 2;
  DataLoader dl(ds, o);
  dl.start_epoch(0);
  REQUIRE_MESSAGE(eventually([&] { return ds->calls.load() >= 2; }), "the workers prepared " << ds->calls.load() << " batches in "
                                                                           << kDeadlineSeconds << " s (2 expected: no prefetch?)");
  settle();
  CHECK(ds->calls.load() == 2);   // two batches prepared, then the workers wait
  Batch b;
  REQUIRE(dl.next(b));
  CHECK(b.ids == std::vector<std::string>{"s0"});
  REQUIRE(eventually([&] { return ds->calls.load() >= 3; }));
  settle();
  CHECK(ds->calls.load() == 3);   // one consumed, one more prepared
  // The rest of the epoch, in order, each sample loaded exactly once.
  size_t k = 1;
  while (dl.next(b)) CHECK(b.ids.front() == "s" + std::to_string(k++));
  CHECK(k == 40);
  CHECK(ds->calls.load() == 40);
}

TEST_CASE("loader: the default prefetch is 2 * num_workers, and 0 workers load on next() only") {
  auto ds = std::make_shared<CountingDataset>(30);
  LoaderOptions o;
  o.num_workers = 2;   // prefetch 0: 4 batches ahead
  {
    DataLoader dl(ds, o);
    dl.start_epoch(0);
    REQUIRE(eventually([&] { return ds->calls.load() >= 4; }));
    settle();
    CHECK(ds->calls.load() == 4);
  }
  ds->calls = 0;
  o.num_workers = 0;
  DataLoader dl(ds, o);
  dl.start_epoch(0);
  settle();
  CHECK(ds->calls.load() == 0);   // no thread runs ahead
  Batch b;
  REQUIRE(dl.next(b));
  CHECK(ds->calls.load() == 1);
  CHECK(b.ids == std::vector<std::string>{"s0"});
}

TEST_CASE("loader: a failing sample is rethrown for its batch, naming it") {
  auto ds = std::make_shared<CountingDataset>(8, 0, 5);
  LoaderOptions o;
  o.batch_size = 2;
  o.num_workers = 2;
  DataLoader dl(ds, o);
  dl.start_epoch(0);
  Batch b;
  CHECK(dl.next(b));
  CHECK(dl.next(b));
  CHECK(contains(error_of([&] { dl.next(b); }), "sample 5 is broken"));
  CHECK(dl.next(b));   // the epoch goes on after the broken batch
  CHECK_FALSE(dl.next(b));
}

TEST_CASE("loader: destroying it mid-epoch stops the workers promptly") {
  // 1000 slow samples: a loader that let its workers run on would load hundreds. Stopping waits
  // only for the batches in flight, so per epoch at most (consumed + prefetch) batches are ever
  // claimed: here 1 + 4 batches of 2 samples in each of the two epochs. No wall-clock bound (a
  // loaded machine may be slow); a stop that never wakes the workers hangs and fails by timeout.
  auto ds = std::make_shared<CountingDataset>(1000, 20);
  {
    LoaderOptions o;
    o.batch_size = 2;
    o.num_workers = 2;
    o.prefetch = 4;
    DataLoader dl(ds, o);
    dl.start_epoch(0);
    Batch b;
    REQUIRE(dl.next(b));
    CHECK(b.ids == std::vector<std::string>{"s0", "s1"});
    dl.start_epoch(1);   // restarting mid-epoch is a stop + start as well
    REQUIRE(dl.next(b));
    CHECK(b.ids == std::vector<std::string>{"s0", "s1"});
  }
  const int after = ds->calls.load();
  CHECK(after >= 4);
  CHECK(after <= 2 * (1 + 4) * 2);
  settle();
  CHECK(ds->calls.load() == after);   // the workers were joined: nothing loads any more
}

TEST_CASE("loader: samples of different sizes in one batch are an error naming them") {
  class Mixed : public CountingDataset {
   public:
    Mixed() : CountingDataset(2) {}
    Sample get(size_t i) const override {
      Sample s = CountingDataset::get(i);
      if (i == 1) {
        s.image = Tensor::zeros({3, 7, 5});
        s.label = Tensor::zeros({7, 5}, DType::Int64);
      }
      return s;
    }
  };
  LoaderOptions o;
  o.batch_size = 2;
  o.num_workers = 0;
  DataLoader dl(std::make_shared<Mixed>(), o);
  dl.start_epoch(0);
  Batch b;
  std::string msg = error_of([&] { dl.next(b); });
  CHECK(contains(msg, "s1"));
  CHECK(contains(msg, "s0"));
}
