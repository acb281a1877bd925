// FGSM, PGD (the reference's Adam-on-δ variant and Madry's), universal perturbations and their
// files (training/attacks.h). Gradients come from autograd::grad on the input / δ, so no
// parameter's .grad is touched and frozen parameters (requires_grad = false) never block the
// path to the input. δ updates run under NoGradGuard; the reference's Adam update is the
// project's Adam (training/optimizer.h) on the single tensor δ, whose .grad is set to ∓sign(∇δ CE).
#include "training/attacks.h"

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "core/autograd.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "data/image_io.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "training/optimizer.h"

namespace moeseg {

namespace {

// Eval mode for the attack, the caller's mode afterwards; graph recording on even inside a
// caller's NoGradGuard.
class AttackModeGuard {
 public:
  explicit AttackModeGuard(SegmentationModel& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~AttackModeGuard() {
    if (was_training_) m_.train(true);
  }
  AttackModeGuard(const AttackModeGuard&) = delete;
  AttackModeGuard& operator=(const AttackModeGuard&) = delete;

 private:
  SegmentationModel& m_;
  bool was_training_;
  EnableGradGuard grad_on_;
};

std::string fmt_double(double v) {
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}

void check_eps(double eps, const char* op) {
  MOESEG_CHECK(std::isfinite(eps) && eps > 0, op, ": eps must be a finite number > 0, got ", eps);
}

void check_options(const AttackOptions& opt, const char* op) {
  check_eps(opt.eps, op);
}

// x float [N,C,H,W], labels int64 [N,H,W] of the same N, H, W.
void check_batch(const Tensor& x, const Tensor& labels, const char* op) {
  check_defined(x, op, "x");
  check_defined(labels, op, "labels");
  MOESEG_CHECK(x.dim() == 4 && is_floating(x.dtype()), op, ": input must be a float [N, C, H, W] tensor, got ",
               x.str());
  MOESEG_CHECK(labels.dim() == 3 && labels.dtype() == DType::Int64 && labels.size(0) == x.size(0) &&
                   labels.size(1) == x.size(2) && labels.size(2) == x.size(3),
               op, ": labels must be int64 [N, H, W] = [", x.size(0), ", ", x.size(2), ", ", x.size(3),
               "] for input ", x.str(), ", got ", labels.str());
}

DType model_dtype(const SegmentationModel& model) {
  for (const Tensor& p : model.parameters())
    if (is_floating(p.dtype())) return p.dtype();
  return DType::Float32;
}

Tensor forward_ce(SegmentationModel& model, const Tensor& xin, const Tensor& labels, int64_t ignore_index,
                  Tensor& logits) {
  logits = model.forward(xin);
  return cross_entropy(logits, labels, Tensor(), ignore_index);
}

// sign(∇) oriented so that adding it is the attack's direction (ascent, or descent if targeted).
Tensor attack_direction(const Tensor& grad, bool targeted) {
  Tensor s = sign(grad);
  return targeted ? neg(s) : s;
}

// δ0: the given one (checked), a U(−eps, eps) draw, or zeros.
Tensor initial_delta(const PgdOptions& opt, const Tensor& x, bool random, const char* op) {
  if (opt.init_delta.defined()) {
    MOESEG_CHECK(opt.init_delta.sizes() == x.sizes() && opt.init_delta.dtype() == x.dtype(), op,
                 ": init_delta must have the input's shape and dtype ", x.str(), ", got ", opt.init_delta.str());
    return opt.init_delta.to(x.device()).contiguous().clone().detach();
  }
  Tensor d = Tensor::zeros(x.sizes(), x.dtype());
  if (random) {
    Generator g(opt.seed);
    uniform_(d, -opt.eps, opt.eps, g);
  }
  return d.to(x.device()).contiguous();
}

}  // namespace

PgdVariant parse_pgd_variant(const std::string& name, const std::string& where) {
  if (name == "reference") return PgdVariant::Reference;
  if (name == "madry") return PgdVariant::Madry;
  MOESEG_FAIL(where, " is '", name, "' (known: reference, madry)");
}

std::string to_string(PgdVariant v) { return v == PgdVariant::Reference ? "reference" : "madry"; }

Tensor input_gradient(SegmentationModel& model, const Tensor& x, const Tensor& labels, int64_t ignore_index,
                      Tensor* logits_out, double* loss_out) {
  check_batch(x, labels, "input_gradient");
  AttackModeGuard guard(model);
  const Device dev = model.device();
  Tensor xi = x.to(dev).detach().contiguous().clone().detach();
  xi.set_requires_grad(true);
  Tensor logits;
  Tensor loss = forward_ce(model, xi, labels.to(dev), ignore_index, logits);
  if (loss_out) *loss_out = loss.to(Device{}).item();
  Tensor g = autograd::grad(loss, {xi})[0];
  MOESEG_CHECK(g.defined(), "input_gradient: the model's output does not depend on its input");
  if (logits_out) *logits_out = logits.detach();
  return g;
}

AttackResult fgsm(SegmentationModel& model, const Tensor& x, const Tensor& labels, const AttackOptions& opt) {
  check_options(opt, "fgsm");
  AttackResult r;
  const Device dev = model.device();
  const Tensor xd = x.to(dev).detach();
  Tensor g = input_gradient(model, xd, labels, opt.ignore_index, &r.logits, &r.loss);
  NoGradGuard ng;
  Tensor adv = add(xd, scale(attack_direction(g, opt.targeted), opt.eps));
  if (opt.clamp_01) adv = clamp(adv, 0.0, 1.0);
  r.adversarial = adv;
  r.delta = sub(adv, xd);
  return r;
}

AttackResult pgd(SegmentationModel& model, const Tensor& x, const Tensor& labels, const PgdOptions& opt) {
  check_options(opt, "pgd");
  MOESEG_CHECK(opt.steps >= 1, "pgd: steps must be >= 1, got ", opt.steps);
  MOESEG_CHECK(std::isfinite(opt.lr) && opt.lr > 0, "pgd: lr must be a finite number > 0, got ", opt.lr);
  MOESEG_CHECK(std::isfinite(opt.alpha) && opt.alpha >= 0, "pgd: alpha must be a finite number >= 0, got ", opt.alpha);
  check_batch(x, labels, "pgd");
  AttackModeGuard guard(model);
  const Device dev = model.device();
  const Tensor xd = x.to(dev).detach().contiguous();
  const Tensor y = labels.to(dev);
  const bool madry = opt.variant == PgdVariant::Madry;
  Tensor delta = initial_delta(opt, xd, !madry || opt.random_start, "pgd");
  AttackResult r;

  if (!madry) {
    delta.set_requires_grad(true);
    AdamOptions ao;
    ao.lr = opt.lr;
    Adam adam({{"delta", delta}}, ao);
    for (int k = 0; k < opt.steps; ++k) {
      Tensor xin = add(xd, delta);
      if (opt.clamp_01) xin = clamp(xin, 0.0, 1.0);
      Tensor loss = forward_ce(model, xin, y, opt.ignore_index, r.logits);
      Tensor g = autograd::grad(loss, {delta})[0];
      NoGradGuard ng;
      r.loss = loss.detach().to(Device{}).item();
      r.logits = r.logits.detach();
      // Adam minimises: the gradient it sees is minus the ascent direction.
      delta.set_grad(neg(attack_direction(g, opt.targeted)).contiguous());
      adam.step();
      delta.zero_grad();
      delta.copy_(clamp(delta.detach(), -opt.eps, opt.eps));
    }
    NoGradGuard ng;
    r.delta = delta.detach();
    r.adversarial = add(xd, r.delta);
    if (opt.clamp_01) r.adversarial = clamp(r.adversarial, 0.0, 1.0);
    return r;
  }

  const double alpha = opt.alpha > 0 ? opt.alpha : 2.5 * opt.eps / opt.steps;
  auto project = [&](const Tensor& d) {
    Tensor p = clamp(d, -opt.eps, opt.eps);
    if (opt.clamp_01) p = sub(clamp(add(xd, p), 0.0, 1.0), xd);
    return p.contiguous();
  };
  {
    NoGradGuard ng;
    delta = project(delta);
  }
  for (int k = 0; k < opt.steps; ++k) {
    Tensor di = delta.detach();
    di.set_requires_grad(true);
    Tensor loss = forward_ce(model, add(xd, di), y, opt.ignore_index, r.logits);
    Tensor g = autograd::grad(loss, {di})[0];
    NoGradGuard ng;
    r.loss = loss.detach().to(Device{}).item();
    r.logits = r.logits.detach();
    delta = project(add(di.detach(), scale(attack_direction(g, opt.targeted), alpha)));
  }
  r.delta = delta;
  NoGradGuard ng;
  r.adversarial = add(xd, delta);
  return r;
}

Tensor class_removal_target(const Tensor& logits, int64_t cls) {
  check_defined(logits, "class_removal_target", "logits");
  MOESEG_CHECK(logits.dim() == 4 && is_floating(logits.dtype()) && logits.size(1) >= 2,
               "class_removal_target: logits must be float [N, C >= 2, H, W], got ", logits.str());
  const int64_t N = logits.size(0), C = logits.size(1), HW = logits.size(2) * logits.size(3);
  MOESEG_CHECK(cls >= 0 && cls < C, "class_removal_target: class ", cls, " is outside [0, ", C, ")");
  const Tensor l = logits.detach().to(Device{}).to(DType::Float64).contiguous();
  const double* p = l.data<double>();
  Tensor out = Tensor::empty({N, logits.size(2), logits.size(3)}, DType::Int64);
  int64_t* o = out.data<int64_t>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      const double* q = p + n * C * HW + i;
      int64_t best = 0, second = -1;
      for (int64_t c = 1; c < C; ++c)
        if (q[c * HW] > q[best * HW]) best = c;
      if (best == cls)
        for (int64_t c = 0; c < C; ++c)
          if (c != cls && (second < 0 || q[c * HW] > q[second * HW])) second = c;
      o[n * HW + i] = best == cls ? second : best;
    }
  return out;
}

Tensor apply_universal_delta(const Tensor& images, const Tensor& delta) {
  check_defined(images, "apply_universal_delta", "images");
  check_defined(delta, "apply_universal_delta", "delta");
  MOESEG_CHECK(images.dim() == 4 && delta.dim() == 3 && delta.size(0) == images.size(1) &&
                   delta.size(1) == images.size(2) && delta.size(2) == images.size(3),
               "apply_universal_delta: delta ", delta.str(), " does not fit images ", images.str(),
               " (need [C, H, W] of the images)");
  return add(images, delta.to(images.device()).to(images.dtype()));
}

Tensor universal_perturbation(SegmentationModel& model, std::shared_ptr<const data::Dataset> dataset,
                              const UniversalOptions& opt) {
  check_eps(opt.eps, "universal_perturbation");
  MOESEG_CHECK(opt.epochs >= 1, "universal_perturbation: epochs must be >= 1, got ", opt.epochs);
  MOESEG_CHECK(opt.steps_per_batch >= 1, "universal_perturbation: steps_per_batch must be >= 1, got ",
               opt.steps_per_batch);
  MOESEG_CHECK(std::isfinite(opt.lr) && opt.lr > 0, "universal_perturbation: lr must be a finite number > 0, got ",
               opt.lr);
  MOESEG_CHECK(dataset != nullptr && dataset->size() > 0, "universal_perturbation: the dataset is empty");
  AttackModeGuard guard(model);
  const Device dev = model.device();
  const DType dt = model_dtype(model);
  const int64_t ignore = dataset->ignore_index();
  data::DataLoader loader(dataset, opt.loader);
  Tensor delta;
  std::unique_ptr<Adam> adam;
  for (int epoch = 0; epoch < opt.epochs; ++epoch) {
    loader.start_epoch(static_cast<uint64_t>(epoch));
    data::Batch b;
    for (int nb = 0; (opt.max_batches < 0 || nb < opt.max_batches) && loader.next(b); ++nb) {
      check_batch(b.images, b.labels, "universal_perturbation");
      const Tensor x = b.images.to(dt).to(dev);
      const Tensor y = b.labels.to(dev);
      if (!delta.defined()) {
        Tensor d = Tensor::zeros({x.size(1), x.size(2), x.size(3)}, dt);
        Generator g(opt.seed);
        uniform_(d, -opt.eps, opt.eps, g);
        delta = d.to(dev).contiguous();
        delta.set_requires_grad(true);
        AdamOptions ao;
        ao.lr = opt.lr;
        adam = std::make_unique<Adam>(NamedParameters{{"delta", delta}}, ao);
      }
      MOESEG_CHECK(x.size(1) == delta.size(0) && x.size(2) == delta.size(1) && x.size(3) == delta.size(2),
                   "universal_perturbation: batch ", nb, " of epoch ", epoch, " has images ", x.str(),
                   " but delta is ", delta.str(), " (resize the dataset to one size)");
      for (int k = 0; k < opt.steps_per_batch; ++k) {
        Tensor xin = add(x, delta);
        if (opt.clamp_01) xin = clamp(xin, 0.0, 1.0);
        Tensor logits;
        Tensor loss = forward_ce(model, xin, y, ignore, logits);
        Tensor g = autograd::grad(loss, {delta})[0];
        NoGradGuard ng;
        delta.set_grad(neg(sign(g)).contiguous());
        adam->step();
        delta.zero_grad();
        delta.copy_(clamp(delta.detach(), -opt.eps, opt.eps));
      }
    }
  }
  MOESEG_CHECK(delta.defined(), "universal_perturbation: no batch was processed (max_batches ", opt.max_batches, ")");
  return delta.detach().to(Device{}).to(DType::Float32).contiguous();
}

void save_universal_delta(const std::string& path, const Tensor& delta, double eps) {
  check_eps(eps, "save_universal_delta");
  check_defined(delta, "save_universal_delta", "delta");
  MOESEG_CHECK(delta.dim() == 3 && delta.size(0) == 3 && is_floating(delta.dtype()),
               "save_universal_delta: delta must be a float [3, H, W] tensor, got ", delta.str());
  save_safetensors(path, {{"delta", delta.detach().to(Device{}).to(DType::Float32).contiguous()}},
                   {{"eps", fmt_double(eps)}});
}

void save_delta_png(const std::string& path, const Tensor& delta, double eps) {
  check_eps(eps, "save_delta_png");
  check_defined(delta, "save_delta_png", "delta");
  MOESEG_CHECK(delta.dim() == 3 && delta.size(0) == 3 && is_floating(delta.dtype()),
               "save_delta_png: delta must be a float [3, H, W] tensor, got ", delta.str());
  const Tensor d = delta.detach().to(Device{}).to(DType::Float64).contiguous();
  const double* p = d.data<double>();
  const int H = static_cast<int>(d.size(1)), W = static_cast<int>(d.size(2));
  data::Image img(H, W, 3);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const double v = std::round((p[(static_cast<int64_t>(c) * H + y) * W + x] + eps) / (2 * eps) * 255.0);
        img.at(y, x)[c] = static_cast<uint8_t>(std::isfinite(v) ? std::min(255.0, std::max(0.0, v)) : 0.0);
      }
  data::write_png(path, img);
}

Tensor load_universal_delta(const std::string& path, int64_t expect_h, int64_t expect_w) {
  TensorFile f = load_safetensors(path);
  if (!f.has("delta")) {
    std::string names;
    for (auto& [k, v] : f.tensors) names += (names.empty() ? "" : ", ") + k;
    MOESEG_FAIL("universal delta file ", path, ": no tensor named 'delta' (tensors: ", names.empty() ? "none" : names,
                ")");
  }
  const Tensor& d = f.get("delta", path);
  MOESEG_CHECK(d.dtype() == DType::Float32 || d.dtype() == DType::Float64, "universal delta file ", path,
               ": tensor 'delta' has dtype ", dtype_name(d.dtype()), " (need float32 or float64)");
  MOESEG_CHECK(d.dim() == 3 && d.size(0) == 3, "universal delta file ", path, ": tensor 'delta' has shape ",
               shape_str(d.sizes()), " (need [3, H, W])");
  MOESEG_CHECK((expect_h <= 0 || d.size(1) == expect_h) && (expect_w <= 0 || d.size(2) == expect_w),
               "universal delta file ", path, ": tensor 'delta' has shape ", shape_str(d.sizes()), " but the images are ",
               expect_h, "x", expect_w);
  return d.to(DType::Float32).contiguous();
}

}  // namespace moeseg
