// Adversarial attacks (training/attacks.h) on a small FRRN-A and a two-expert MoE:
//   - against PyTorch (tests/fixtures/training/attacks.safetensors, made by
//     tools/fixtures/make_attack_fixtures.py from the weights of tests/fixtures/models/): the input
//     gradient, the FGSM δ and 3 steps of the reference PGD, in float64, signs exact and values
//     to 1e-9 (the issue asks for 1e-5);
//   - behaviour: FGSM / PGD raise CE and lower accuracy, δ stays in [−eps, eps], clamping, Madry's
//     step, targeted descent (and making a class disappear), gradients through the frozen
//     experts and the gate, the model's train/eval mode restored;
//   - universal δ over a dataset, its safetensors and PNG files, and bad input errors.
// Run: build/tests/test_training -tc="attacks*"
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "data/image_io.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "models/frrn.h"
#include "models/moe.h"
#include "support/gradcheck.h"
#include "tests/support/temp_dir.h"
#include "training/attacks.h"
#include "training/metrics.h"

using namespace moeseg;
using moeseg::testing::expect_error;

namespace {

std::string fixture(const std::string& rel) { return std::string(MOESEG_FIXTURE_DIR) + "/" + rel; }

const TensorFile& experts_file() {
  static TensorFile f = load_safetensors(fixture("models/moe_experts.safetensors"));
  return f;
}
const TensorFile& attack_file() {
  static TensorFile f = load_safetensors(fixture("training/attacks.safetensors"));
  return f;
}

std::shared_ptr<FRRN> fixture_expert(int i) {
  FRRNConfig c;
  c.num_classes = 5;
  c.width = 0.0625;
  auto e = std::make_shared<FRRN>(c);
  e->load_state_dict(testing::tensors_with_prefix(experts_file(), "expert" + std::to_string(i) + "."));
  return e;
}

// The two fixture experts with the simple gate of moe_simple.safetensors (input 32x48).
std::shared_ptr<MoE> fixture_moe() {
  static TensorFile f = load_safetensors(fixture("models/moe_simple.safetensors"));
  MoEConfig m;
  m.input_h = 32;
  m.input_w = 48;
  auto moe = std::make_shared<MoE>(std::vector<std::shared_ptr<SegmentationModel>>{fixture_expert(1), fixture_expert(2)}, m);
  auto sd = testing::tensors_with_prefix(f, "sd.");
  for (auto& [k, v] : moe->state_dict())
    if (k.rfind("expert", 0) == 0) sd[k] = v;
  moe->load_state_dict(sd);
  return moe;
}

std::shared_ptr<SegmentationModel> fixture_model(const std::string& name, DType dt) {
  std::shared_ptr<SegmentationModel> m = name == "frrn" ? std::shared_ptr<SegmentationModel>(fixture_expert(1))
                                                        : std::shared_ptr<SegmentationModel>(fixture_moe());
  m->to(dt);
  return m;
}

Tensor fixture_x(DType dt) { return experts_file().get("x").slice(0, 0, 1).to(dt).contiguous(); }
Tensor fixture_y() { return experts_file().get("target").slice(0, 0, 1).contiguous(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}
double max_abs(const Tensor& a) {
  double m = 0;
  for (double v : a.to(DType::Float64).to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

// Signs equal wherever torch's |g| exceeds a tiny fraction of its largest value; returns the
// number of elements compared that way (all others are allowed to differ).
int64_t check_signs(const Tensor& ours, const Tensor& torch_g) {
  auto a = ours.to(DType::Float64).to_vector<double>(), b = torch_g.to(DType::Float64).to_vector<double>();
  const double tiny = 1e-12 * max_abs(torch_g);
  int64_t compared = 0, wrong = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::abs(b[i]) <= tiny) continue;
    ++compared;
    if ((a[i] > 0) != (b[i] > 0) || a[i] == 0) ++wrong;
  }
  CHECK_MESSAGE(wrong == 0, wrong << " of " << compared << " signs differ from torch");
  return compared;
}

double ce_of(SegmentationModel& m, const Tensor& x, const Tensor& y) {
  NoGradGuard ng;
  m.eval();
  return cross_entropy(m.forward(x), y, Tensor(), 255).item();
}
double miou_of(SegmentationModel& m, const Tensor& x, const Tensor& y) {
  NoGradGuard ng;
  m.eval();
  ConfusionMatrix cm(m.num_classes());
  cm.update_from_logits(m.forward(x), y);
  return cm.mean_iou();
}
double accuracy_of(SegmentationModel& m, const Tensor& x, const Tensor& y) {
  NoGradGuard ng;
  m.eval();
  ConfusionMatrix cm(m.num_classes());
  cm.update_from_logits(m.forward(x), y);
  return cm.pixel_accuracy();
}


// A dataset held in memory: random images, labels = a model's own clean prediction.
class MemoryDataset : public data::Dataset {
 public:
  MemoryDataset(std::vector<Tensor> images, std::vector<Tensor> labels) : images_(std::move(images)), labels_(std::move(labels)) {}
  size_t size() const override { return images_.size(); }
  data::Sample get(size_t i) const override {
    return {images_.at(i), labels_.at(i), "m" + std::to_string(i), "memory"};
  }
  int num_classes() const override { return 5; }
  int ignore_index() const override { return 255; }
  std::string name() const override { return "memory"; }

 private:
  std::vector<Tensor> images_, labels_;
};

}  // namespace

TEST_CASE("attacks: input gradient and FGSM delta = PyTorch (FRRN-A and MoE, float64)") {
  const auto params = nlohmann::json::parse(attack_file().metadata.at("params"));
  for (const std::string name : {"frrn", "moe"}) {
    CAPTURE(name);
    auto model = fixture_model(name, DType::Float64);
    const double eps = params.at(name).at("eps").get<double>();
    const Tensor x = fixture_x(DType::Float64), y = fixture_y();
    const Tensor& tg = attack_file().get(name + ".grad_x");
    Tensor g = input_gradient(*model, x, y, 255);
    const double err = max_abs_diff(g, tg) / max_abs(tg);
    INFO("grad_x relative error " << err);
    CHECK(err <= 1e-9);
    CHECK(check_signs(g, tg) == g.numel());   // no torch gradient is that small here

    AttackOptions o;
    o.eps = eps;
    AttackResult r = fgsm(*model, x, y, o);
    CHECK(max_abs_diff(r.delta, attack_file().get(name + ".fgsm_delta")) <= 1e-12);
    CHECK(max_abs_diff(r.adversarial, add(x, attack_file().get(name + ".fgsm_delta"))) <= 1e-12);
    CHECK(r.loss == doctest::Approx(ce_of(*model, x, y)).epsilon(1e-12));   // the clean CE
  }
}

TEST_CASE("attacks: 3 steps of the reference PGD (Adam on delta, sign gradient, clamps) = PyTorch") {
  const auto params = nlohmann::json::parse(attack_file().metadata.at("params"));
  for (const std::string name : {"frrn", "moe"}) {
    CAPTURE(name);
    auto model = fixture_model(name, DType::Float64);
    const Tensor x = fixture_x(DType::Float64), y = fixture_y();
    PgdOptions o;
    o.eps = params.at(name).at("eps").get<double>();
    o.clamp_01 = params.at(name).at("clamp_01").get<bool>();
    o.lr = params.at("lr").get<double>();
    o.init_delta = attack_file().get(name + ".pgd_delta0");
    const Tensor losses = attack_file().get(name + ".pgd_loss");
    for (int k = 1; k <= 3; ++k) {
      CAPTURE(k);
      o.steps = k;
      AttackResult r = pgd(*model, x, y, o);
      const Tensor& want = attack_file().get(name + ".pgd_delta" + std::to_string(k));
      const double err = max_abs_diff(r.delta, want);
      INFO("delta max abs error " << err);
      CHECK(err <= 1e-9);
      CHECK(max_abs(r.delta) <= o.eps);
      CHECK(std::abs(r.loss - losses.at({k - 1})) <= 1e-10 * std::abs(losses.at({k - 1})));
      // The step moved δ: it differs from the previous one by up to lr per element.
      const Tensor& prev = attack_file().get(name + ".pgd_delta" + std::to_string(k - 1));
      const double moved = max_abs_diff(r.delta, prev);
      CHECK(moved > 0.5 * o.lr);
      CHECK(moved <= o.lr * 1.0000001);
      // Our own ∇δ at this step has torch's signs.
      Tensor xin = add(x, prev);
      if (o.clamp_01) xin = clamp(xin, 0.0, 1.0);
      check_signs(input_gradient(*model, xin, y, 255), attack_file().get(name + ".pgd_grad" + std::to_string(k)));
    }
    if (o.clamp_01) {
      // Pixels where x + δ0 leaves [0,1] get no gradient through the clamp (torch agrees).
      const auto g1 = attack_file().get(name + ".pgd_grad1").to_vector<double>();
      const auto xv = x.to_vector<double>(), d0 = o.init_delta.to_vector<double>();
      int64_t outside = 0;
      for (size_t i = 0; i < xv.size(); ++i)
        if (xv[i] + d0[i] < 0 || xv[i] + d0[i] > 1) {
          ++outside;
          CHECK(g1[i] == 0.0);
        }
      CHECK(outside > 0);
    }
  }
}

TEST_CASE("attacks: FGSM and PGD raise the loss and lower the accuracy, delta stays within eps") {
  // The fixture expert (random weights, BatchNorm statistics set): labels = its own clean
  // prediction, so the clean accuracy is exactly 1 and mIoU is 1 over the predicted classes. A
  // random network reacts weakly to its input: eps 0.1 raises CE, eps 0.5 flips pixels (mIoU < 1).
  auto model = fixture_model("frrn", DType::Float32);
  Generator gen(5);
  const Tensor x = rand({2, 3, 32, 48}, DType::Float32, gen);
  Tensor y;
  {
    NoGradGuard ng;
    model->eval();
    y = argmax(model->forward(x), 1);
  }
  const double ce0 = ce_of(*model, x, y);
  REQUIRE(accuracy_of(*model, x, y) == 1.0);
  REQUIRE(miou_of(*model, x, y) == 1.0);
  for (double eps : {0.1, 0.5}) {
    CAPTURE(eps);
    AttackOptions fo;
    fo.eps = eps;
    AttackResult f = fgsm(*model, x, y, fo);
    CHECK(max_abs(f.delta) <= eps * (1 + 1e-6));
    CHECK(max_abs(f.delta) >= eps * (1 - 1e-6));
    const double ce_f = ce_of(*model, f.adversarial, y), miou_f = miou_of(*model, f.adversarial, y);
    MESSAGE("FGSM eps " << eps << ": CE " << ce0 << " -> " << ce_f << ", mIoU 1 -> " << miou_f);
    // FGSM is one linear step: it raises CE for a small eps; at 0.5 it overshoots (CE may fall
    // on this network) but flips pixels.
    if (eps < 0.5) CHECK(ce_f > ce0);
    else CHECK(miou_f < 1.0);

    for (PgdVariant v : {PgdVariant::Reference, PgdVariant::Madry}) {
      CAPTURE(to_string(v));
      PgdOptions po;
      po.eps = eps;
      po.steps = 5;
      po.variant = v;
      po.lr = eps / 4;
      po.clamp_01 = true;
      AttackResult p = pgd(*model, x, y, po);
      CHECK(max_abs(p.delta) <= eps * (1 + 1e-6));
      auto adv = p.adversarial.to_vector<float>();
      CHECK(*std::min_element(adv.begin(), adv.end()) >= 0.0f);
      CHECK(*std::max_element(adv.begin(), adv.end()) <= 1.0f);
      const double ce_p = ce_of(*model, p.adversarial, y), miou_p = miou_of(*model, p.adversarial, y);
      MESSAGE("PGD-5 " << to_string(v) << " eps " << eps << ": CE " << ce_p << ", mIoU " << miou_p);
      CHECK(ce_p > ce0);
      if (eps >= 0.5) CHECK(miou_p < 1.0);
    }
  }
}

TEST_CASE("attacks: Madry PGD from zero takes alpha-sign steps and projects, targeted descends") {
  auto model = fixture_model("frrn", DType::Float64);
  const Tensor x = fixture_x(DType::Float64), y = fixture_y();
  PgdOptions o;
  o.variant = PgdVariant::Madry;
  o.random_start = false;
  o.eps = 0.05;
  o.alpha = 0.02;
  o.steps = 1;
  AttackResult r = pgd(*model, x, y, o);
  const Tensor want = scale(sign(input_gradient(*model, x, y, 255)), 0.02);
  CHECK(max_abs_diff(r.delta, want) <= 1e-15);
  o.steps = 4;   // 4 x 0.02 > eps: projected back onto the eps ball
  r = pgd(*model, x, y, o);
  CHECK(max_abs(r.delta) == doctest::Approx(0.05).epsilon(1e-12));

  // Targeted: toward a target map, CE to that map goes down.
  Tensor target = Tensor::full({1, 32, 48}, 3, DType::Int64);
  const double before = ce_of(*model, x, target);
  AttackOptions t;
  t.eps = 0.05;
  t.targeted = true;
  CHECK(ce_of(*model, fgsm(*model, x, target, t).adversarial, target) < before);
  PgdOptions tp;
  tp.eps = 0.05;
  tp.targeted = true;
  tp.steps = 3;
  CHECK(ce_of(*model, pgd(*model, x, target, tp).adversarial, target) < before);
}

TEST_CASE("attacks: targeted PGD toward class_removal_target makes a class (mostly) disappear") {
  auto model = fixture_model("frrn", DType::Float32);
  Generator gen(9);
  const Tensor x = rand({1, 3, 32, 48}, DType::Float32, gen);
  Tensor logits;
  {
    NoGradGuard ng;
    model->eval();
    logits = model->forward(x);
  }
  const Tensor pred = argmax(logits, 1);
  auto count = [](const Tensor& labels, int64_t c) {
    int64_t n = 0;
    for (int64_t v : labels.to_vector<int64_t>()) n += v == c;
    return n;
  };
  // The least frequent predicted class is the one to remove.
  int64_t cls = -1;
  for (int64_t c = 0; c < 5; ++c)
    if (count(pred, c) > 0 && (cls < 0 || count(pred, c) < count(pred, cls))) cls = c;
  REQUIRE(cls >= 0);
  const int64_t before = count(pred, cls);
  const Tensor target = class_removal_target(logits, cls);
  CHECK(count(target, cls) == 0);
  // Elsewhere the target is the prediction; where cls was predicted, the runner-up.
  const auto pv = pred.to_vector<int64_t>(), tv = target.to_vector<int64_t>();
  for (size_t i = 0; i < pv.size(); ++i)
    if (pv[i] != cls) CHECK(tv[i] == pv[i]);
  PgdOptions o;
  o.eps = 0.5;   // the random network reacts weakly to its input (see above)
  o.steps = 10;
  o.lr = 0.1;
  o.targeted = true;
  AttackResult r = pgd(*model, x, target, o);
  Tensor after_pred;
  {
    NoGradGuard ng;
    after_pred = argmax(model->forward(r.adversarial), 1);
  }
  const int64_t after = count(after_pred, cls);
  MESSAGE("class " << cls << ": " << before << " pixels -> " << after << " after targeted PGD-10 (eps 0.5)");
  CHECK(after < before);
  expect_error([&] { class_removal_target(logits, 5); }, {"class 5", "[0, 5)"});
}

TEST_CASE("attacks: white-box through the MoE: frozen experts and gate pass the input gradient") {
  auto moe = fixture_moe();
  moe->train();   // the attack switches to eval and back
  for (auto& p : moe->experts()[0]->parameters()) CHECK_FALSE(p.requires_grad());
  const Tensor x = fixture_x(DType::Float32), y = fixture_y();
  Tensor logits;
  Tensor g = input_gradient(*moe, x, y, 255, &logits);
  CHECK(max_abs(g) > 0);
  CHECK(moe->is_training());
  CHECK_FALSE(moe->experts()[0]->is_training());
  for (auto& [k, p] : moe->named_parameters()) CHECK_MESSAGE(!p.grad().defined(), k << " got a .grad");
  // The gradient depends on the gate: through expert 1 alone it differs.
  Tensor g1 = input_gradient(*moe->experts()[0], x, y, 255);
  CHECK(max_abs_diff(g, g1) > 1e-3 * max_abs(g));
  // Works inside a caller's NoGradGuard too (evaluation loops).
  NoGradGuard ng;
  CHECK(max_abs_diff(input_gradient(*moe, x, y, 255), g) == 0.0);
}

TEST_CASE("attacks: universal perturbation over a dataset, saved and loaded (safetensors, PNG)") {
  auto model = fixture_model("frrn", DType::Float32);
  Generator gen(7);
  std::vector<Tensor> images, labels;
  for (int i = 0; i < 4; ++i) {
    Tensor img = rand({3, 32, 48}, DType::Float32, gen);
    NoGradGuard ng;
    model->eval();
    labels.push_back(argmax(model->forward(img.unsqueeze(0)), 1).squeeze(0).contiguous());
    images.push_back(img);
  }
  auto ds = std::make_shared<MemoryDataset>(images, labels);
  UniversalOptions uo;
  uo.eps = 0.08;
  uo.epochs = 2;
  uo.steps_per_batch = 3;
  uo.lr = 0.02;
  uo.loader.batch_size = 2;
  uo.loader.num_workers = 0;
  Tensor delta = universal_perturbation(*model, ds, uo);
  CHECK(delta.sizes() == Shape{3, 32, 48});
  CHECK(delta.dtype() == DType::Float32);
  CHECK(max_abs(delta) <= uo.eps * (1 + 1e-6));
  // The same seed gives the same δ.
  CHECK(max_abs_diff(universal_perturbation(*model, ds, uo), delta) == 0.0);

  // One δ for all images raises CE on every image of the set.
  data::DataLoader all(ds, uo.loader);
  all.start_epoch(0);
  data::Batch b;
  int batches = 0;
  while (all.next(b)) {
    CHECK(ce_of(*model, apply_universal_delta(b.images, delta), b.labels) > ce_of(*model, b.images, b.labels));
    ++batches;
  }
  CHECK(batches == 2);

  testing::TempDir dir("attacks");
  save_universal_delta(dir.str("u.safetensors"), delta, uo.eps);
  Tensor back = load_universal_delta(dir.str("u.safetensors"), 32, 48);
  CHECK(max_abs_diff(back, delta) == 0.0);
  CHECK(load_safetensors(dir.str("u.safetensors")).metadata.at("eps") == "0.080000000000000002");

  save_delta_png(dir.str("u.png"), delta, uo.eps);
  data::Image img = data::read_image(dir.str("u.png"), 3);
  CHECK(img.height == 32);
  CHECK(img.width == 48);
  const auto dv = delta.to_vector<float>();
  for (int c = 0; c < 3; ++c)
    for (int yy : {0, 17, 31})
      for (int xx : {0, 20, 47}) {
        const double want = std::round((dv[(c * 32 + yy) * 48 + xx] + uo.eps) / (2 * uo.eps) * 255.0);
        CHECK(img.at(yy, xx)[c] == static_cast<int>(want));
      }

  // Wrong size, wrong rank, wrong dtype, no tensor "delta": errors naming the file.
  const std::string p = dir.str("u.safetensors");
  expect_error([&] { load_universal_delta(p, 64, 48); }, {p, "[3, 32, 48]", "64x48"});
  save_safetensors(dir.str("rank.safetensors"), {{"delta", Tensor::zeros({2, 32, 48})}});
  expect_error([&] { load_universal_delta(dir.str("rank.safetensors")); }, {dir.str("rank.safetensors"), "[2, 32, 48]"});
  save_safetensors(dir.str("int.safetensors"), {{"delta", Tensor::zeros({3, 32, 48}, DType::Int64)}});
  expect_error([&] { load_universal_delta(dir.str("int.safetensors")); }, {dir.str("int.safetensors"), "int64"});
  save_safetensors(dir.str("other.safetensors"), {{"noise", Tensor::zeros({3, 32, 48})}});
  expect_error([&] { load_universal_delta(dir.str("other.safetensors")); }, {"other.safetensors", "'delta'", "noise"});
  expect_error([&] { apply_universal_delta(b.images, Tensor::zeros({3, 16, 48})); }, "[3, 16, 48]");
}

TEST_CASE("attacks: bad input is one clear error naming the value") {
  auto model = fixture_model("frrn", DType::Float32);
  const Tensor x = fixture_x(DType::Float32), y = fixture_y();
  for (double eps : {0.0, -0.1, std::nan(""), std::numeric_limits<double>::infinity()}) {
    CAPTURE(eps);
    AttackOptions o;
    o.eps = eps;
    std::ostringstream v;
    v << eps;
    expect_error([&] { fgsm(*model, x, y, o); }, {"fgsm", "eps", v.str()});
    PgdOptions p;
    p.eps = eps;
    expect_error([&] { pgd(*model, x, y, p); }, {"pgd", "eps", v.str()});
    UniversalOptions u;
    u.eps = eps;
    expect_error([&] { universal_perturbation(*model, nullptr, u); }, {"universal_perturbation", "eps", v.str()});
    expect_error([&] { save_universal_delta("/tmp/never.safetensors", Tensor::zeros({3, 2, 2}), eps); }, "eps");
  }
  PgdOptions p;
  p.steps = 0;
  expect_error([&] { pgd(*model, x, y, p); }, {"steps", "0"});
  p.steps = 2;
  p.init_delta = Tensor::zeros({1, 3, 16, 48});
  expect_error([&] { pgd(*model, x, y, p); }, {"init_delta", "[1, 3, 16, 48]"});
  p.init_delta = Tensor::zeros({1, 3, 32, 48}, DType::Float64);
  expect_error([&] { pgd(*model, x, y, p); }, {"init_delta", "float64"});
  AttackOptions o;
  expect_error([&] { fgsm(*model, x, fixture_y().slice(1, 0, 16), o); }, {"labels", "[1, 16, 48]"});
  UniversalOptions u;
  u.epochs = 0;
  expect_error([&] { universal_perturbation(*model, nullptr, u); }, {"epochs", "0"});
  expect_error([&] { parse_pgd_variant("fast", "--pgd"); }, {"--pgd", "'fast'", "reference, madry"});
}
