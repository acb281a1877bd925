// `moeseg train-demo`: the README's main job until the full pipeline exists. It draws synthetic
// "driving scenes" (sky, road trapezoid with dashed lane markings, cars as coloured boxes,
// roadside background; noise and random brightness; 5 classes) deterministically from a seed,
// trains a small fully convolutional net (conv-BN-ReLU x3, a dilated conv-BN-ReLU, a 1x1
// classifier) with SGD+momentum or Adam on pixel-wise cross-entropy, prints loss and pixel
// accuracy as it goes and, at the end, per-class IoU / mIoU on held-out scenes drawn from another
// seed (with the chance baselines beside them) and the throughput in images/s.
// Every training step sees a fresh batch from the seed's stream, so the held-out score measures
// generalisation, not memorisation. Defaults finish in well under a minute on 2 cores.
//   moeseg train-demo [--steps N] [--seed S] [--batch B] [--opt adam|sgd] [--lr X]
//                     [--log-every K] [--eval-images N] [--out DIR]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <omp.h>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/cross_entropy.h"
#include "kernels/reduce.h"
#include "layers/activation_layers.h"
#include "layers/batch_norm_layer.h"
#include "layers/conv2d_layer.h"
#include "layers/sequential.h"
#include "tools/commands.h"
#include "training/optimizer.h"

namespace moeseg::cli {
namespace {

constexpr int64_t kH = 64, kW = 96, kClasses = 5;
const char* const kClassNames[kClasses] = {"sky", "road", "lane", "car", "roadside"};
enum : int64_t { kSky = 0, kRoad = 1, kLane = 2, kCar = 3, kSide = 4 };

struct Options {
  int64_t steps = 400, batch = 8, log_every = 25, eval_images = 64;
  uint64_t seed = 1;
  std::string opt = "adam", out;
  double lr = -1;   // <0: the optimiser's default below
};

// A counter-based uniform stream: scene j of a seed always gets the same numbers, whatever was
// drawn before it (Philox keyed by the seed, one counter range per scene).
class SceneRng {
 public:
  SceneRng(uint64_t seed, uint64_t scene) : gen_(seed), base_(scene << 24) {}
  double uniform(double lo = 0.0, double hi = 1.0) { return lo + (hi - lo) * (1.0 - gen_.uniform_at(base_, i_++)); }
  int64_t integer(int64_t lo, int64_t hi) {   // [lo, hi]
    return std::min(hi, lo + static_cast<int64_t>(uniform() * static_cast<double>(hi - lo + 1)));
  }
 private:
  Generator gen_;
  uint64_t base_, i_ = 0;
};

struct Rgb { double r, g, b; };

// Paints scene `index` of stream `seed` into image [3, H, W] (normalised) and label [H, W].
void draw_scene(uint64_t seed, uint64_t index, float* image, int64_t* label) {
  SceneRng rng(seed, index);
  std::vector<Rgb> px(kH * kW);
  const double brightness = rng.uniform(0.65, 1.35);
  const int64_t horizon = rng.integer(18, 30);
  // Sky: blue, lighter towards the horizon; roadside: grass or buildings, tinted per image.
  const Rgb sky{rng.uniform(0.35, 0.55), rng.uniform(0.55, 0.75), rng.uniform(0.85, 1.0)};
  const bool grass = rng.uniform() < 0.6;
  const Rgb side = grass ? Rgb{rng.uniform(0.15, 0.3), rng.uniform(0.4, 0.6), rng.uniform(0.1, 0.25)}
                         : Rgb{rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.5)};
  const Rgb road{rng.uniform(0.3, 0.4), rng.uniform(0.3, 0.4), rng.uniform(0.32, 0.44)};
  const Rgb paint = rng.uniform() < 0.7 ? Rgb{0.95, 0.95, 0.92} : Rgb{0.95, 0.8, 0.2};
  const double vx = rng.uniform(36, 60), bx = rng.uniform(38, 58), half_bottom = rng.uniform(38, 56);
  const double dash_phase = rng.uniform(), dash_count = rng.uniform(4, 7);
  for (int64_t y = 0; y < kH; ++y) {
    for (int64_t x = 0; x < kW; ++x) {
      Rgb c;
      int64_t cls;
      if (y < horizon) {
        const double t = static_cast<double>(y) / horizon;
        c = {sky.r + 0.2 * t, sky.g + 0.15 * t, sky.b + 0.05 * t};
        cls = kSky;
      } else {
        const double t = static_cast<double>(y - horizon) / static_cast<double>(kH - 1 - horizon);   // 0 far .. 1 near
        const double centre = vx + (bx - vx) * t, half = 2.0 + (half_bottom - 2.0) * t;
        const double dx = std::abs(x + 0.5 - centre);
        if (dx <= half) {
          c = road;
          cls = kRoad;
          const double mark = 0.6 + 2.2 * t;   // half width of the painted line, growing with nearness
          const bool dash_on = std::fmod(std::sqrt(t) * dash_count + dash_phase, 1.0) < 0.55;
          if ((dx <= mark && dash_on) || (half - dx <= mark && half > 6.0)) {   // centre dashes, solid edges
            c = paint;
            cls = kLane;
          }
        } else {
          const double stripe = grass ? 0.04 * std::sin(0.9 * x + 0.3 * y) : 0.06 * ((x / 7) % 2);
          c = {side.r + stripe, side.g + stripe, side.b + stripe};
          cls = kSide;
        }
      }
      px[y * kW + x] = c;
      label[y * kW + x] = cls;
    }
  }
  // Cars: boxes standing on the road, farther ones first so nearer ones cover them.
  const Rgb palette[] = {{0.8, 0.1, 0.1}, {0.1, 0.2, 0.75}, {0.9, 0.75, 0.1}, {0.08, 0.08, 0.1}, {0.6, 0.1, 0.6}};
  const int64_t cars = rng.integer(1, 3);
  std::vector<double> depth(cars);
  for (auto& d : depth) d = rng.uniform(0.1, 0.95);
  std::sort(depth.begin(), depth.end());
  for (double t : depth) {
    const double bottom = horizon + t * (kH - 1 - horizon);
    const double centre_road = vx + (bx - vx) * t, half_road = 2.0 + (half_bottom - 2.0) * t;
    const double w = 5.0 + 24.0 * t, h = w * rng.uniform(0.55, 0.8);
    const double cx = centre_road + rng.uniform(-0.7, 0.7) * std::max(0.0, half_road - w / 2);
    const Rgb body = palette[rng.integer(0, 4)];
    for (int64_t y = std::max<int64_t>(0, static_cast<int64_t>(bottom - h)); y <= static_cast<int64_t>(bottom) && y < kH; ++y)
      for (int64_t x = std::max<int64_t>(0, static_cast<int64_t>(cx - w / 2)); x <= static_cast<int64_t>(cx + w / 2) && x < kW; ++x) {
        const bool window = y < bottom - 0.55 * h && y > bottom - 0.9 * h;   // a darker band: glass
        px[y * kW + x] = window ? Rgb{0.15, 0.2, 0.25} : body;
        label[y * kW + x] = kCar;
      }
  }
  // Sensor noise and exposure, then normalisation to roughly zero mean and unit spread.
  for (int64_t i = 0; i < kH * kW; ++i) {
    const double ch[3] = {px[i].r, px[i].g, px[i].b};
    for (int c = 0; c < 3; ++c) {
      const double v = std::clamp(ch[c] * brightness + rng.uniform(-0.08, 0.08), 0.0, 1.0);
      image[c * kH * kW + i] = static_cast<float>((v - 0.5) / 0.25);
    }
  }
}

// Scenes [first, first + n) of stream `seed` as a batch: images [n, 3, H, W], labels [n, H, W].
std::pair<Tensor, Tensor> make_batch(uint64_t seed, uint64_t first, int64_t n) {
  Tensor images = Tensor::empty({n, 3, kH, kW});
  Tensor labels = Tensor::empty({n, kH, kW}, DType::Int64);
  for (int64_t i = 0; i < n; ++i)
    draw_scene(seed, first + i, images.data<float>() + i * 3 * kH * kW, labels.data<int64_t>() + i * kH * kW);
  return {images, labels};
}

std::shared_ptr<Sequential> make_fcn(Generator& gen) {
  auto net = std::make_shared<Sequential>();
  auto conv_bn_relu = [&](int64_t in, int64_t out, int64_t dilation) {
    net->push_back(std::make_shared<Conv2d>(in, out, 3, 1, dilation, dilation, 1, false, gen));
    net->push_back(std::make_shared<BatchNorm2d>(out));
    net->push_back(std::make_shared<ReLU>());
  };
  conv_bn_relu(3, 16, 1);
  conv_bn_relu(16, 32, 1);
  conv_bn_relu(32, 32, 1);
  conv_bn_relu(32, 32, 2);   // the dilated conv: receptive field 13 px with four 3x3 layers
  net->push_back(std::make_shared<Conv2d>(32, kClasses, 1, 1, 0, 1, 1, true, gen));
  return net;
}

// Adds argmax(logits) vs labels into a K x K confusion matrix (rows: truth).
void accumulate_confusion(const Tensor& logits, const Tensor& labels, std::vector<int64_t>& confusion) {
  Tensor pred = argmax(logits, 1);
  const int64_t* p = pred.data<int64_t>();
  const int64_t* t = labels.data<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) confusion[t[i] * kClasses + p[i]]++;
}

double pixel_accuracy(const std::vector<int64_t>& confusion) {
  int64_t hit = 0, all = 0;
  for (int64_t a = 0; a < kClasses; ++a)
    for (int64_t b = 0; b < kClasses; ++b) (a == b ? hit : all) += confusion[a * kClasses + b];
  return static_cast<double>(hit) / static_cast<double>(hit + all);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      MOESEG_CHECK(i + 1 < argc, "train-demo: option ", a, " needs a value");
      return argv[++i];
    };
    auto integer = [&](int64_t lo) {
      const std::string v = value();
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      MOESEG_CHECK(end && *end == 0 && n >= lo, "train-demo: ", a, " expects an integer >= ", lo, ", got '", v, "'");
      return static_cast<int64_t>(n);
    };
    if (a == "--steps") o.steps = integer(1);
    else if (a == "--seed") o.seed = static_cast<uint64_t>(integer(0));
    else if (a == "--batch") o.batch = integer(2);
    else if (a == "--log-every") o.log_every = integer(1);
    else if (a == "--eval-images") o.eval_images = integer(1);
    else if (a == "--out") o.out = value();
    else if (a == "--opt") {
      o.opt = value();
      MOESEG_CHECK(o.opt == "adam" || o.opt == "sgd", "train-demo: --opt must be adam or sgd, got '", o.opt, "'");
    } else if (a == "--lr") {
      const std::string v = value();
      char* end = nullptr;
      o.lr = std::strtod(v.c_str(), &end);
      MOESEG_CHECK(end && *end == 0 && o.lr > 0, "train-demo: --lr expects a positive number, got '", v, "'");
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: moeseg train-demo [--steps N=400] [--seed S=1] [--batch B=8] [--opt adam|sgd]\n"
                  "                         [--lr X (adam 0.01, sgd 0.05)] [--log-every K=25]\n"
                  "                         [--eval-images N=64] [--out DIR]\n");
      std::exit(0);
    } else {
      MOESEG_FAIL("train-demo: unknown option '", a, "' (see --help)");
    }
  }
  if (o.lr < 0) o.lr = o.opt == "adam" ? 0.01 : 0.05;
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int run_train_demo(int argc, char** argv) {
  const Options o = parse(argc, argv);
  Generator init_gen(o.seed);
  auto net = make_fcn(init_gen);
  std::unique_ptr<Optimizer> opt;
  if (o.opt == "adam") {
    AdamOptions a;
    a.lr = o.lr;
    opt = std::make_unique<Adam>(net->named_parameters(), a);
  } else {
    SGDOptions s;
    s.lr = o.lr;
    s.momentum = 0.9;
    s.weight_decay = 1e-4;
    opt = std::make_unique<SGD>(net->named_parameters(), s);
  }
  std::printf("train-demo: synthetic driving scenes %lldx%lld, %lld classes (", static_cast<long long>(kH),
              static_cast<long long>(kW), static_cast<long long>(kClasses));
  for (int64_t c = 0; c < kClasses; ++c) std::printf("%s%s", c ? ", " : "", kClassNames[c]);
  std::printf(")\nmodel: FCN conv-BN-ReLU x3 + dilated conv-BN-ReLU + 1x1 classifier, %lld parameters\n",
              static_cast<long long>(net->num_parameters()));
  std::printf("optimiser: %s lr %g, batch %lld, %lld steps, seed %llu (fresh scenes every step)\n", opt->type_name().c_str(),
              o.lr, static_cast<long long>(o.batch), static_cast<long long>(o.steps), static_cast<unsigned long long>(o.seed));

  // Cosine decay to 5% of the initial rate: the last steps settle instead of bouncing.
  auto lr_at = [&](int64_t step) {
    const double progress = static_cast<double>(step) / static_cast<double>(o.steps);
    return o.lr * (0.05 + 0.95 * 0.5 * (1.0 + std::cos(M_PI * progress)));
  };

  net->train();
  double train_seconds = 0, first_loss = 0, window_loss = 0;
  std::vector<int64_t> window_conf(kClasses * kClasses, 0);
  int64_t window_steps = 0;
  std::vector<double> losses;
  for (int64_t step = 0; step < o.steps; ++step) {
    auto [images, labels] = make_batch(o.seed, static_cast<uint64_t>(step * o.batch), o.batch);
    const auto t0 = std::chrono::steady_clock::now();
    opt->set_lr(lr_at(step));
    Tensor logits = net->forward(images);
    Tensor loss = cross_entropy(logits, labels);
    opt->zero_grad();
    loss.backward();
    opt->step();
    train_seconds += seconds_since(t0);

    const double l = loss.item();
    MOESEG_CHECK(std::isfinite(l), "train-demo: loss became ", l, " at step ", step + 1);
    if (step == 0) first_loss = l;
    losses.push_back(l);
    window_loss += l;
    ++window_steps;
    {
      NoGradGuard ng;
      accumulate_confusion(logits.detach(), labels, window_conf);
    }
    if ((step + 1) % o.log_every == 0 || step == 0 || step + 1 == o.steps) {
      std::printf("step %4lld/%lld  loss %.4f  (mean of last %lld: %.4f)  pixel acc %.2f%%  lr %.5f\n",
                  static_cast<long long>(step + 1), static_cast<long long>(o.steps), l,
                  static_cast<long long>(window_steps), window_loss / window_steps, 100.0 * pixel_accuracy(window_conf),
                  opt->lr());
      std::fflush(stdout);
      window_loss = 0;
      window_steps = 0;
      std::fill(window_conf.begin(), window_conf.end(), 0);
    }
  }
  const double train_ips = static_cast<double>(o.steps * o.batch) / train_seconds;

  // Held-out scenes from a different seed, evaluated with the running BatchNorm statistics.
  net->eval();
  const uint64_t eval_seed = o.seed ^ 0x9E3779B97F4A7C15ull;
  std::vector<int64_t> conf(kClasses * kClasses, 0);
  double eval_loss = 0, eval_seconds = 0;
  {
    NoGradGuard ng;
    for (int64_t first = 0; first < o.eval_images; first += o.batch) {
      const int64_t n = std::min(o.batch, o.eval_images - first);
      auto [images, labels] = make_batch(eval_seed, static_cast<uint64_t>(first), n);
      const auto t0 = std::chrono::steady_clock::now();
      Tensor logits = net->forward(images);
      eval_seconds += seconds_since(t0);
      eval_loss += cross_entropy(logits, labels).item() * n;
      accumulate_confusion(logits, labels, conf);
    }
  }
  eval_loss /= static_cast<double>(o.eval_images);

  std::printf("\nheld-out: %lld scenes (seed %llu), eval mode\n", static_cast<long long>(o.eval_images),
              static_cast<unsigned long long>(eval_seed));
  std::printf("  %-9s %8s %8s %8s\n", "class", "pixels%", "IoU", "chance");
  int64_t total = 0;
  for (int64_t v : conf) total += v;
  double miou = 0, chance_miou = 0, max_freq = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < kClasses; ++c) {
    int64_t tp = conf[c * kClasses + c], truth = 0, predicted = 0;
    for (int64_t k = 0; k < kClasses; ++k) {
      truth += conf[c * kClasses + k];
      predicted += conf[k * kClasses + c];
    }
    const double freq = static_cast<double>(truth) / static_cast<double>(total);
    max_freq = std::max(max_freq, freq);
    // Uniform random guessing: expected TP = N f / K, union = N (f + 1/K - f/K).
    const double chance = (freq / kClasses) / (freq + 1.0 / kClasses - freq / kClasses);
    const int64_t uni = truth + predicted - tp;
    if (uni == 0) {
      std::printf("  %-9s %7.2f%% %8s %8s\n", kClassNames[c], 100 * freq, "n/a", "n/a");
      continue;
    }
    const double iou = static_cast<double>(tp) / static_cast<double>(uni);
    std::printf("  %-9s %7.2f%% %8.4f %8.4f\n", kClassNames[c], 100 * freq, iou, chance);
    miou += iou;
    chance_miou += chance;
    ++present;
  }
  miou /= static_cast<double>(present);
  chance_miou /= static_cast<double>(present);
  std::printf("  mIoU %.4f   pixel acc %.2f%%   loss %.4f\n", miou, 100.0 * pixel_accuracy(conf), eval_loss);
  std::printf("  baselines: uniform random guess mIoU %.4f, always-majority-class mIoU %.4f (pixel acc %.2f%%)\n",
              chance_miou, max_freq / static_cast<double>(present), 100 * max_freq);
  const int64_t tail_n = std::min<int64_t>(10, o.steps);
  double tail = 0;
  for (int64_t i = o.steps - tail_n; i < o.steps; ++i) tail += losses[i];
  std::printf("training loss: first step %.4f -> mean of the last %lld steps %.4f\n", first_loss,
              static_cast<long long>(tail_n), tail / tail_n);
  std::printf("throughput: training %.1f images/s (%.2f s for %lld steps, forward+backward+update), "
              "inference %.1f images/s, %d OpenMP threads\n",
              train_ips, train_seconds, static_cast<long long>(o.steps),
              static_cast<double>(o.eval_images) / eval_seconds, omp_get_max_threads());
  if (!o.out.empty()) {
    std::filesystem::create_directories(o.out);
    const std::string path = (std::filesystem::path(o.out) / "train_demo_fcn.safetensors").string();
    net->save(path);
    std::printf("weights: %s (%zu tensors, PyTorch state_dict names)\n", path.c_str(), net->state_dict().size());
  }
  return 0;
}

}  // namespace moeseg::cli
