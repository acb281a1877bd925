// `moeseg model summary`: builds a model from a registry name or a JSON config, runs one eval
// forward on a zero image and prints one row per layer (name, type, output shape, parameters)
// and `total parameters: N`. The rows come from the models' forward trace (models/frrn_trace.h);
// models without trace points get one row per top-level child instead.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "core/autograd.h"
#include "core/cli_args.h"
#include "core/error.h"
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

}  // namespace

int run_model(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "summary") != 0) {
    const bool help = argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"));
    std::printf("usage: moeseg model summary (--model NAME --classes N [--width-mult M] | --config FILE) [--height H --width W]\n");
    return help ? 0 : 1;
  }
  ModelChoice m;
  int64_t h = 480, w = 640;
  ArgParser args("moeseg model summary", "(--model NAME --classes N [--width-mult M] | --config FILE) [--height H --width W]",
                 "NAME: frrn_a, frrn_b, deeplabv3plus_resnet18/50/101; FILE: a model/MoE/ensemble config or an experiment\n"
                 "config. Default size: the model's fixed input size (an MoE with a fixed-size gate), else 480x640.");
  add_model_choice(args, m);
  args.option("--height", &h, "H", "input height", 1, 1 << 16).option("--width", &w, "W", "input width", 1, 1 << 16);
  if (!args.parse(argc - 1, argv + 1)) return 0;
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

}  // namespace moeseg::cli
