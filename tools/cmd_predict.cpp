// `moeseg predict CONFIG [IMAGE...] --out DIR`: runs the model of an experiment config (built and
// loaded as `moeseg eval` does) on image files or on dataset images and writes, per image, the
// colourised prediction, an overlay on the image, for an MoE its gate weights and, with two or
// more experts, the expert-disagreement map (pictures: training/prediction_images.h).
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/cli_args.h"
#include "core/error.h"
#include "data/augment.h"
#include "data/image_io.h"
#include "data/label_colours.h"
#include "kernels/reduce.h"
#include "models/registry.h"
#include "tools/cmd_predict.h"
#include "tools/cmd_training.h"
#include "training/prediction_images.h"
#include "training/trainer.h"

namespace moeseg::cli {

namespace fs = std::filesystem;

namespace {

// What predict writes, printed under its usage.
const char* const kPredictOutputs =
    "Runs the model of CONFIG (an experiment config, as `moeseg eval` takes) on IMAGE files, or,\n"
    "without IMAGEs, on dataset images (with their ground truth), and writes PNGs into DIR.\n"
    "Images are resized to the config's data.height x data.width, as in evaluation.\n\n"
    "Per image, named after its file stem:\n"
      "  <stem>_image.png         the input as the model saw it\n"
      "  <stem>_pred.png          predicted classes in the dataset's palette (A2D2 class colours for\n"
      "                           38 classes, Cityscapes colours for 19, CamVid colours otherwise)\n"
      "  <stem>_overlay.png       the prediction blended over the image with opacity --alpha\n"
      "  <stem>_truth.png         the ground truth in the same palette (dataset images; ignore = black)\n"
      "  <stem>_gate.png          MoE only: the gate weights as stacked bars, 256 px = weight 1, experts\n"
      "                           left to right in their colours (1 orange, 2 sky blue, 3 green, 4 yellow,\n"
      "                           5 blue, 6 pink, 7 vermilion). Simple gate: one bar. Class-wise gate: one\n"
      "                           8 px bar per class, class 0 at the top, each led by its class colour.\n"
      "  <stem>_disagreement.png  two or more experts: per pixel how the prediction relates to experts 1\n"
      "                           and 2 (the categories of `moeseg eval`): grey = all three agree\n"
      "                           (perfect), orange = follows expert 1, sky blue = follows expert 2,\n"
      "                           red = follows neither (critical); black = ignore in the ground truth.\n"
      "The weights and the disagreement fractions are printed per image too.\n";

struct Input {
  data::Sample sample;
  std::string source;   // file or dataset:index, for the printout
  bool has_truth = false;
};

std::string unique_stem(std::string stem, std::set<std::string>& used) {
  if (stem.empty()) stem = "image";
  std::string s = stem;
  for (int k = 2; used.count(s); ++k) s = stem + "_" + std::to_string(k);
  used.insert(s);
  return s;
}

}  // namespace

int run_predict(int argc, char** argv) {
  ensure_passive_omp_wait("predict");
  std::string checkpoint, out_dir, subset, split = "test", list_file;
  std::vector<std::string> positional, sets;
  int max_images = 4;
  double alpha = 0.5;
  bool dataset_options = false;
  auto dataset_option = [&](std::string* out) {
    return [&, out](const std::string& v) {
      *out = v;
      dataset_options = true;
    };
  };
  ArgParser args("moeseg predict", "CONFIG [IMAGE...] --out DIR [options]", kPredictOutputs);
  args.positionals(&positional, "CONFIG", 1, static_cast<size_t>(-1))
      .option("--out", &out_dir, "DIR", "output folder (created)")
      .required("--out")
      .option("--checkpoint", &checkpoint, "W", "weights (default <run>/best/model.safetensors, else what the model config loads)")
      .action("--data", "ROOT", "dataset root (overrides data.root)",
              [&](const std::string& v) {
                sets.push_back("data.root=" + nlohmann::json(fs::absolute(v).string()).dump());
                dataset_options = true;
              })
      .action("--subset", "S", "dataset subset (default: the config's first test subset)", dataset_option(&subset))
      .action("--split", "S", "dataset split (default test)", dataset_option(&split))
      .action("--list", "FILE", "the images this list file names (the dataset's list format) instead of subset/split",
              dataset_option(&list_file))
      .option("--max", &max_images, "N", "at most N dataset images (default 4; 0 = all)", 0)
      .option("--alpha", &alpha, "A", "opacity of the prediction in the overlay (default 0.5)", 0.0, 1.0)
      .repeated("--set", &sets, "KEY=VALUE", "override a config value");
  if (!args.parse(argc, argv)) return 0;
  const std::string config = positional[0];
  const std::vector<std::string> images(positional.begin() + 1, positional.end());
  MOESEG_CHECK(images.empty() || !dataset_options,
               "predict: give image files or dataset options (--data/--subset/--split/--list), not both");
  for (const std::string& f : images) MOESEG_CHECK(fs::is_regular_file(f), "predict: image file '", f, "' does not exist");

  ExperimentConfig c = load_experiment_config(config, sets);
  auto model = load_trained_experiment_model(c, checkpoint, &checkpoint);
  const int64_t C = model->num_classes();

  // The inputs: files (no ground truth) or dataset samples.
  std::vector<Input> inputs;
  if (!images.empty()) {
    for (const std::string& f : images) {
      Input in;
      in.sample.image = data::image_to_tensor(data::read_image(f, 3));
      in.sample.label = Tensor::full({in.sample.image.size(1), in.sample.image.size(2)}, c.train.ignore_index, DType::Int64);
      in.sample.id = fs::path(f).stem().string();
      in.source = f;
      inputs.push_back(std::move(in));
    }
  } else {
    if (subset.empty()) subset = c.data.test_subsets.empty() ? c.data.subset : c.data.test_subsets.front();
    std::shared_ptr<const data::Dataset> ds = open_experiment_data(c.data, subset, split, max_images, list_file);
    const size_t n = max_images > 0 ? std::min(ds->size(), static_cast<size_t>(max_images)) : ds->size();
    for (size_t i = 0; i < n; ++i) {
      Input in;
      in.sample = ds->get(i);
      in.source = ds->name() + " #" + std::to_string(i);
      in.has_truth = true;
      inputs.push_back(std::move(in));
    }
  }

  fs::create_directories(out_dir);
  model->eval();
  NoGradGuard ng;
  std::set<std::string> stems;
  bool said_no_truth = false;
  for (Input& in : inputs) {
    const data::Sample s = (c.data.height > 0 && c.data.width > 0) ? data::resize_sample(in.sample, c.data.height, c.data.width)
                                                                  : in.sample;
    const Tensor x = s.image.unsqueeze(0).contiguous();
    const ModelOutput o = model->forward_detailed(x);
    const Tensor& logits = o.logits;
    const Tensor& gate = o.gate;
    const std::vector<Tensor>& expert_logits = o.member_logits;
    const Tensor pred = argmax(logits, 1).select(0, 0).contiguous();
    const std::string base = (fs::path(out_dir) / unique_stem(s.id, stems)).string();
    const data::Image image = data::tensor_to_image(s.image);
    const data::Image colours = data::colourise_labels(pred, C);
    data::write_png(base + "_image.png", image);
    data::write_png(base + "_pred.png", colours, data::PngMode::Fast);
    data::write_png(base + "_overlay.png", data::blend_images(image, colours, alpha));
    std::string written = "image, pred, overlay", info;
    if (in.has_truth) {
      data::write_png(base + "_truth.png", data::colourise_labels(s.label, C), data::PngMode::Fast);
      written += ", truth";
    }
    if (gate.defined()) {
      const Tensor g = gate.select(0, 0);
      data::write_png(base + "_gate.png", gate_image(g, C));
      written += ", gate";
      // Printed: the weights (simple gate) or their mean over classes (class-wise).
      const Tensor gm = g.to(DType::Float32).contiguous();
      const int64_t G = gm.size(0), E = gm.size(1);
      info += G > 1 ? "  gate (mean over classes)" : "  gate";
      for (int64_t e = 0; e < E; ++e) {
        double w = 0;
        for (int64_t k = 0; k < G; ++k) w += gm.data<float>()[k * E + e];
        char b[32];
        std::snprintf(b, sizeof b, " %.3f", w / static_cast<double>(G));
        info += b;
      }
    }
    if (expert_logits.size() >= 2) {
      DisagreementMap d = disagreement_map(pred, argmax(expert_logits[0], 1).select(0, 0), argmax(expert_logits[1], 1).select(0, 0),
                                           in.has_truth ? s.label : Tensor(), C);
      data::write_png(base + "_disagreement.png", d.image, data::PngMode::Fast);
      written += ", disagreement";
      auto pct = [&](ExpertAgreement k) {
        return d.valid ? 100.0 * static_cast<double>(d.counts[static_cast<int>(k)]) / static_cast<double>(d.valid) : 0.0;
      };
      char b[160];
      std::snprintf(b, sizeof b, "  perfect %.1f%% follows 1 %.1f%% follows 2 %.1f%% critical %.1f%%",
                    pct(ExpertAgreement::Perfect), pct(ExpertAgreement::Follows1), pct(ExpertAgreement::Follows2),
                    pct(ExpertAgreement::Critical));
      info += b;
      if (!in.has_truth && !said_no_truth) {
        std::printf("predict: image files have no ground truth: the disagreement maps count every pixel\n");
        said_no_truth = true;
      }
    }
    std::printf("%s -> %s_{%s}.png%s\n", in.source.c_str(), base.c_str(), written.c_str(), info.c_str());
  }
  std::printf("predict: %zu image(s), %s, into %s\n", inputs.size(),
              checkpoint.empty() ? "weights from the model config" : checkpoint.c_str(), out_dir.c_str());
  return 0;
}

}  // namespace moeseg::cli
