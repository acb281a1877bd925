// `moeseg model summary`: builds a model from a registry name or a JSON config, runs one eval
// forward on a zero image and prints one row per layer (name, type, output shape, parameters)
// and `total parameters: N`. The rows come from the models' forward trace (models/frrn_trace.h);
// models without trace points get one row per top-level child instead.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "core/autograd.h"
#include "core/error.h"
#include "models/frrn_trace.h"
#include "models/moe.h"
#include "models/registry.h"
#include "tools/cmd_models.h"

namespace moeseg::cli {

namespace {

void model_usage() {
  std::printf(
      "usage: moeseg model summary (--model NAME --classes N [--width-mult M] | --config FILE)\n"
      "                            [--height H --width W]\n"
      "  NAME: frrn_a, frrn_b, deeplabv3plus_resnet18/50/101; FILE: a JSON model/MoE/ensemble config\n"
      "  default size: the config's input_size for an MoE, else 480x640\n");
}

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
    model_usage();
    return argc >= 2 && !std::strcmp(argv[1], "--help") ? 0 : 1;
  }
  std::map<std::string, std::string> args;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    MOESEG_CHECK(k.rfind("--", 0) == 0 && i + 1 < argc, "model summary: expected --option value, got '", k, "'");
    args[k] = argv[++i];
  }
  for (auto& [k, v] : args)
    MOESEG_CHECK(k == "--model" || k == "--classes" || k == "--width-mult" || k == "--config" || k == "--height" ||
                     k == "--width",
                 "model summary: unknown option ", k);
  std::shared_ptr<SegmentationModel> model;
  int64_t h = 480, w = 640;
  if (args.count("--config")) {
    MOESEG_CHECK(!args.count("--model"), "model summary: give --model or --config, not both");
    model = load_model_config(args["--config"]);
    if (auto* moe = dynamic_cast<MoE*>(model.get())) {
      h = moe->config().input_h;
      w = moe->config().input_w;
    }
  } else {
    MOESEG_CHECK(args.count("--model") && args.count("--classes"), "model summary: needs --model NAME --classes N");
    ModelOptions o;
    o.num_classes = std::stoll(args["--classes"]);
    if (args.count("--width-mult")) o.width = std::stod(args["--width-mult"]);
    model = make_model(args["--model"], o);
  }
  if (args.count("--height")) h = std::stoll(args["--height"]);
  if (args.count("--width")) w = std::stoll(args["--width"]);

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
