// Metrics against confusion matrices computed by hand, schedules against their closed forms,
// and gradient clipping against PyTorch's rule.
#include <doctest/doctest.h>

#include "support/threads.h"

#include <cmath>

#include "kernels/elementwise.h"
#include "training/metrics.h"
#include "training/schedule.h"

using namespace moeseg;

TEST_CASE("confusion matrix and metrics match a hand-computed example") {
  // 3 classes, ignore = 255. gt / pred pairs:
  //   (0,0) (0,0) (0,1) (1,1) (1,2) (2,2) (255,0) (2,2) (0,2) (1,1)
  Tensor gt = Tensor::from_vector<int64_t>({0, 0, 0, 1, 1, 2, 255, 2, 0, 1}, {2, 5});
  Tensor pr = Tensor::from_vector<int64_t>({0, 0, 1, 1, 2, 2, 0, 2, 2, 1}, {2, 5});
  ConfusionMatrix cm(3);
  cm.update(pr, gt);
  CHECK(cm.total() == 9);
  CHECK(cm.at(0, 0) == 2); CHECK(cm.at(0, 1) == 1); CHECK(cm.at(0, 2) == 1);
  CHECK(cm.at(1, 1) == 2); CHECK(cm.at(1, 2) == 1); CHECK(cm.at(2, 2) == 2);
  auto iou = cm.iou();
  // class 0: TP 2, FP 0, FN 2 -> 2/4; class 1: TP 2, FP 1, FN 1 -> 2/4; class 2: TP 2, FP 2, FN 0 -> 2/4
  CHECK(iou[0] == doctest::Approx(0.5));
  CHECK(iou[1] == doctest::Approx(0.5));
  CHECK(iou[2] == doctest::Approx(0.5));
  CHECK(cm.mean_iou() == doctest::Approx(0.5));
  CHECK(cm.pixel_accuracy() == doctest::Approx(6.0 / 9.0));
  // recall: 2/4, 2/3, 2/2
  CHECK(cm.mean_class_accuracy() == doctest::Approx((0.5 + 2.0 / 3.0 + 1.0) / 3.0));
  // fw IoU: (4*0.5 + 3*0.5 + 2*0.5) / 9
  CHECK(cm.frequency_weighted_iou() == doctest::Approx(0.5));
}

TEST_CASE("classes absent from both ground truth and prediction are skipped by nanmean") {
  ConfusionMatrix cm(4);
  cm.update(Tensor::from_vector<int64_t>({0, 1, 1, 0}, {4}), Tensor::from_vector<int64_t>({0, 1, 0, 0}, {4}));
  auto iou = cm.iou();
  CHECK(std::isnan(iou[2]));
  CHECK(std::isnan(iou[3]));
  // class 0: TP 2, FN 1 -> 2/3; class 1: TP 1, FP 1 -> 1/2
  CHECK(cm.mean_iou() == doctest::Approx((2.0 / 3.0 + 0.5) / 2));
  CHECK(cm.to_json()["iou"][2].is_null());
}

TEST_CASE("logits path, merge and errors") {
  Tensor logits = Tensor::zeros({1, 2, 1, 3});
  logits.select(1, 1).select(2, 2).fill_(1.0);   // pixel 2 predicts class 1
  ConfusionMatrix a(2), b(2);
  a.update_from_logits(logits, Tensor::from_vector<int64_t>({0, 1, 1}, {1, 1, 3}));
  CHECK(a.at(0, 0) == 1); CHECK(a.at(1, 0) == 1); CHECK(a.at(1, 1) == 1);
  b.merge(a); b.merge(a);
  CHECK(b.total() == 6);
  CHECK_THROWS_AS(a.update(Tensor::from_vector<int64_t>({5}, {1}), Tensor::from_vector<int64_t>({0}, {1})), Error);
  CHECK_THROWS_AS(a.update(Tensor::zeros({2}, DType::Int64), Tensor::zeros({3}, DType::Int64)), Error);
  CHECK_THROWS_AS(ConfusionMatrix(0), Error);
}

TEST_CASE("large inputs give exact counts whatever the thread count") {
  // Above the parallel threshold (2^16 pixels): each thread counts its part, then the parts are
  // added. Counts are compared with a serial count made here, for 1, 2 and 3 threads, and the
  // 2-thread run must really have shared the work.
  const int64_t n = 1 << 21;
  std::vector<int64_t> g(n), p(n);
  for (int64_t i = 0; i < n; ++i) { g[i] = i % 5 == 4 ? 255 : i % 3; p[i] = (i / 7) % 3; }
  int64_t expected[3][3] = {};
  for (int64_t i = 0; i < n; ++i)
    if (g[i] != 255) expected[g[i]][p[i]]++;
  const Tensor pred = Tensor::from_vector(p, {n}), target = Tensor::from_vector(g, {n});
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    ConfusionMatrix cm(3);
    const auto use = testing::run_with_threads(threads, [&] {
      for (int rep = 0; rep < 4; ++rep) cm.update(pred, target);
    });
    if (threads == 2) testing::check_ran_on_several_threads(use, "ConfusionMatrix::update");
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) CHECK(cm.at(a, b) == 4 * expected[a][b]);
    CHECK(cm.total() == 4 * (n - n / 5));
  }
}

TEST_CASE("schedules follow their closed forms") {
  ScheduleOptions o;
  o.base_lr = 0.1;
  o.total_steps = 100;
  o.kind = "poly";
  CHECK(learning_rate_at(o, 0) == doctest::Approx(0.1));
  CHECK(learning_rate_at(o, 50) == doctest::Approx(0.1 * std::pow(0.5, 0.9)));
  CHECK(learning_rate_at(o, 100) == doctest::Approx(0.0));
  o.kind = "cosine"; o.eta_min = 1e-6;
  CHECK(learning_rate_at(o, 50) == doctest::Approx(1e-6 + (0.1 - 1e-6) * 0.5));
  CHECK(learning_rate_at(o, 100) == doctest::Approx(1e-6));
  o.kind = "step"; o.step_size = 30; o.gamma = 0.5;
  CHECK(learning_rate_at(o, 29) == doctest::Approx(0.1));
  CHECK(learning_rate_at(o, 60) == doctest::Approx(0.025));
  o.kind = "constant"; o.warmup_steps = 10; o.warmup_factor = 0.1;
  CHECK(learning_rate_at(o, 0) == doctest::Approx(0.01));
  CHECK(learning_rate_at(o, 5) == doctest::Approx(0.1 * (0.1 + 0.9 * 0.5)));
  CHECK(learning_rate_at(o, 10) == doctest::Approx(0.1));
  o.kind = "linear";
  CHECK_THROWS_AS(validate(o), Error);
}

TEST_CASE("gradient clipping scales to the max norm and reports the norm before") {
  Tensor a = Tensor::from_vector<float>({3, 0}, {2}), b = Tensor::from_vector<float>({4}, {1});
  a.set_requires_grad(true); b.set_requires_grad(true);
  a.set_grad(Tensor::from_vector<float>({3, 0}, {2}));
  b.set_grad(Tensor::from_vector<float>({4}, {1}));
  double norm = clip_grad_norm({a, b}, 1.0);
  CHECK(norm == doctest::Approx(5.0));
  CHECK(a.grad().at({0}) == doctest::Approx(3.0 / (5.0 + 1e-6)));
  CHECK(b.grad().at({0}) == doctest::Approx(4.0 / (5.0 + 1e-6)));
  CHECK(clip_grad_norm({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));   // below: unchanged
  CHECK(a.grad().at({0}) == doctest::Approx(3.0 / (5.0 + 1e-6)));
}
