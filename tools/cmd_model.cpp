// `moeseg model summary`: builds a model from a registry name or a JSON config, runs one eval
// forward on a zero image and prints one row per layer (name, type, output shape, parameters)
// and `total parameters: N`. The rows come from the models' forward trace (models/frrn_trace.h);
// models without trace points get one row per top-level child instead.
// `moeseg model trace`: one eval forward on a real image (a file, or a synthetic scene rendered
// by data/synthetic_scenes.h) listing every tensor of the pass (models/forward_inspect.h) with
// its shape, then the gate's weight per expert and the predicted-class histogram. Deterministic:
// weights are printed with 3 decimals, shares of pixels with 1. docs/moe-internals.md uses it;
// tests/tools/test_docs_tour.cpp runs the tour's commands and compares their output.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "core/autograd.h"
#include "core/cli_args.h"
#include "core/device_probe.h"
#include "core/error.h"
#include "data/a2d2_classes.h"
#include "data/augment.h"
#include "data/image_io.h"
#include "data/synthetic_scenes.h"
#include "models/forward_inspect.h"
#include "models/frrn_trace.h"
#include "models/registry.h"
#include "tools/cmd_models.h"
#include "tools/model_choice.h"

namespace moeseg::cli {

namespace {

std::string param_str(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

int run_summary(int argc, char** argv) {
  ModelChoice m;
  int64_t h = 480, w = 640;
  ArgParser args("moeseg model summary", "(--model NAME --classes N [--width-mult M] | --config FILE) [--height H --width W]",
                 "NAME: frrn_a, frrn_b, deeplabv3plus_resnet18/50/101; FILE: a model/MoE/ensemble config or an experiment\n"
                 "config. Default size: the model's fixed input size (an MoE with a fixed-size gate), else 480x640.");
  add_model_choice(args, m);
  args.option("--height", &h, "H", "input height", 1, 1 << 16).option("--width", &w, "W", "input width", 1, 1 << 16);
  if (!args.parse(argc, argv)) return 0;
  std::shared_ptr<SegmentationModel> model = build_chosen_model(m, "moeseg model summary");
  if (auto size = model->fixed_input_size()) {
    if (!args.given("--height")) h = size->first;
    if (!args.given("--width")) w = size->second;
  }
  model->eval();
  ForwardTrace trace;
  Tensor logits;
  {
    NoGradGuard ng;
    ForwardTraceScope scope(&trace);
    logits = model->forward(Tensor::zeros({1, 3, h, w}));
  }
  if (trace.rows.empty())   // a model without trace points: its top-level children
    for (auto& [name, child] : model->children()) trace.rows.push_back({name, child->type_name(), {}, child->num_parameters()});
  std::printf("%s at 1x3x%lldx%lld\n", model->type_name().c_str(), static_cast<long long>(h), static_cast<long long>(w));
  std::printf("%-36s %-28s %-22s %14s\n", "layer", "type", "output shape", "parameters");
  for (auto& r : trace.rows)
    std::printf("%-36s %-28s %-22s %14s\n", r.name.c_str(), r.type.c_str(),
                r.shape.empty() ? "-" : shape_str(r.shape).c_str(), param_str(r.params).c_str());
  std::printf("%-36s %-28s %-22s\n", "(output)", "logits", shape_str(logits.shape()).c_str());
  std::printf("trainable parameters: %lld\n", static_cast<long long>(model->num_parameters(true)));
  std::printf("total parameters: %lld\n", static_cast<long long>(model->num_parameters()));
  return 0;
}

// The input of the trace: an image file or a synthetic scene, at the size the model takes.
struct TraceInput {
  std::string image, synthetic;
  uint64_t seed = 1;
  int index = 0;
};

Tensor trace_input(const TraceInput& in, int64_t h, int64_t w, std::string& what) {
  MOESEG_CHECK(in.image.empty() != in.synthetic.empty(), "moeseg model trace: give either --image PATH or --synthetic DOMAIN");
  data::Sample s;
  if (!in.image.empty()) {
    s.image = data::image_to_tensor(data::read_image(in.image, 3));
    s.label = Tensor::zeros({s.image.size(1), s.image.size(2)}, DType::Int64);
    what = in.image;
  } else {
    data::SceneDomain d = data::SceneDomain::Highway;
    if (in.synthetic == "urban") d = data::SceneDomain::Urban;
    else if (in.synthetic == "ambiguous") d = data::SceneDomain::Ambiguous;
    else MOESEG_CHECK(in.synthetic == "highway", "moeseg model trace: --synthetic '", in.synthetic,
                      "' is not a domain (highway, urban, ambiguous)");
    // Test image `index` of `moeseg data synth --seed S` at this size: the same pixels.
    data::SyntheticSceneDataset ds(d, data::SynthSplit::Test, in.index + 1, in.seed, static_cast<int>(h), static_cast<int>(w));
    s = ds.get(static_cast<size_t>(in.index));
    what = "synthetic " + in.synthetic + " scene (seed " + std::to_string(in.seed) + ", test image " +
           std::to_string(in.index) + ")";
  }
  if (h > 0 && w > 0 && (s.image.size(1) != h || s.image.size(2) != w))
    s = data::resize_sample(s, static_cast<int>(h), static_cast<int>(w));   // as eval and predict do
  return s.image.unsqueeze(0).contiguous();
}

std::string class_label(int64_t c, int64_t classes) {
  if (classes == data::kA2D2NumClasses) return data::a2d2_classes()[static_cast<size_t>(c)].name;
  return "class " + std::to_string(c);
}

int run_trace(int argc, char** argv) {
  ModelChoice m;
  TraceInput in;
  std::string weights, device = "cpu";
  int64_t h = 0, w = 0;
  int top = 5;
  ArgParser args("moeseg model trace",
                 "(--model NAME --classes N | --config FILE) (--image PATH | --synthetic highway|urban|ambiguous\n"
                 "                          [--seed S] [--index I]) [--height H --width W] [--weights W] [--device D]",
                 "Runs one eval forward pass and prints every tensor of it (input, each member's taps and logits, the\n"
                 "gate, the combined logits) with its shape, then the gate's weight per expert (mean over classes for a\n"
                 "class-wise gate) and the most frequent predicted classes. Size: --height/--width, else the model's\n"
                 "fixed input size, else the image's own size (synthetic scenes: 240x320). Images are resized as in eval.");
  add_model_choice(args, m);
  args.option("--image", &in.image, "PATH", "a PNG or JPEG image")
      .option("--synthetic", &in.synthetic, "DOMAIN", "a synthetic scene: highway, urban or ambiguous")
      .action("--seed", "S", "synthetic scene seed (default 1, as moeseg data synth)",
              [&](const std::string& v) {
                in.seed = static_cast<uint64_t>(ArgParser::parse_int(v, "moeseg model trace: --seed", 0, INT64_MAX));
              })
      .option("--index", &in.index, "I", "synthetic test image index (default 0)", 0, 1 << 20)
      .option("--height", &h, "H", "input height", 1, 1 << 14)
      .option("--width", &w, "W", "input width", 1, 1 << 14)
      .option("--weights", &weights, "W", "a safetensors state_dict of the whole model (as moeseg train writes)")
      .option("--device", &device, "D", "cpu or cuda (default cpu)")
      .option("--top", &top, "K", "predicted classes to list (default 5)", 1, 1 << 20);
  if (!args.parse(argc, argv)) return 0;
  std::shared_ptr<SegmentationModel> model = build_chosen_model(m, "moeseg model trace");
  if (!weights.empty()) load_checkpoint(*model, weights);
  if (auto size = model->fixed_input_size()) {
    if (!args.given("--height")) h = size->first;
    if (!args.given("--width")) w = size->second;
  }
  MOESEG_CHECK((h == 0) == (w == 0), "moeseg model trace: give both --height and --width, or neither");
  if (!in.synthetic.empty() && h == 0) h = 240, w = 320;
  std::string what;
  const Tensor x = trace_input(in, h, w, what);
  const Device dev = resolve_device(device);
  model->to(dev);
  model->eval();
  NoGradGuard ng;
  const InspectedForward f = inspect_forward(*model, x.to(dev));

  std::printf("model: %s, %s parameters (%s trainable), weights %s\n", model->type_name().c_str(),
              param_str(model->num_parameters()).c_str(), param_str(model->num_parameters(true)).c_str(),
              weights.empty() ? "from the model config (seeded initialisation, and the checkpoints it names)"
                              : weights.c_str());
  std::printf("input: %s, %s on %s\n", what.c_str(), shape_str(x.shape()).c_str(), dev.str().c_str());
  std::printf("%-28s %-18s %-8s %s\n", "tensor", "shape", "dtype", "what it is");
  for (const InspectedTensor& t : f.tensors)
    std::printf("%-28s %-18s %-8s %s\n", t.name.c_str(), shape_str(t.tensor.shape()).c_str(),
                dtype_name(t.tensor.dtype()), t.role.c_str());
  const ModelOutput& o = f.output;
  if (o.gate.defined()) {   // 3 decimals: the same digits on any x86-64 CPU
    const std::vector<double> g = mean_gate_weights(o.gate);
    const int64_t G = o.gate.size(1);
    std::printf("gate weights%s:", G > 1 ? (" (mean over " + std::to_string(G) + " classes)").c_str() : "");
    for (size_t e = 0; e < g.size(); ++e) {
      const std::string name = e < f.member_names.size() ? f.member_names[e] : "expert" + std::to_string(e + 1);
      std::printf(" %s %.3f", name.c_str(), g[e]);
    }
    std::printf("\n");
  }
  const auto hist = argmax_class_histogram(o.logits);
  const double pixels = static_cast<double>(o.logits.size(2) * o.logits.size(3));
  // Shares that print as 0.0% are left out: a pixel or two near a tie may go either way on
  // another CPU, and the printout is meant to be the same everywhere.
  std::printf("predicted classes (argmax of logits, %lld pixels):", static_cast<long long>(pixels));
  for (size_t i = 0; i < hist.size() && i < static_cast<size_t>(top); ++i) {
    const double pct = 100.0 * static_cast<double>(hist[i].second) / pixels;
    if (pct < 0.05) break;
    std::printf("%s %s %.1f%%", i ? "," : "", class_label(hist[i].first, o.logits.size(1)).c_str(), pct);
  }
  std::printf("\n");
  return 0;
}

}  // namespace

int run_model(int argc, char** argv) {
  const char* sub = argc >= 2 ? argv[1] : "";
  if (!std::strcmp(sub, "summary")) return run_summary(argc - 1, argv + 1);
  if (!std::strcmp(sub, "trace")) return run_trace(argc - 1, argv + 1);
  const bool help = !std::strcmp(sub, "--help") || !std::strcmp(sub, "-h");
  if (*sub && !help) std::fprintf(stderr, "moeseg model: unknown subcommand '%s'\n", sub);
  std::printf("usage: moeseg model summary (--model NAME --classes N [--width-mult M] | --config FILE) [--height H --width W]\n"
              "       moeseg model trace (--model NAME --classes N | --config FILE) (--image PATH | --synthetic DOMAIN) [options]\n"
              "(see moeseg model summary --help, moeseg model trace --help)\n");
  return help ? 0 : 1;
}

}  // namespace moeseg::cli
