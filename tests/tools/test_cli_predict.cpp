// `moeseg predict` end to end: the real CLI binary on tiny FRRN-A experts (width 0.125, random
// weights saved as a checkpoint) inside simple and class-wise MoEs, on tiny synthetic scenes
// (dataset mode, with ground truth) and on a PNG file (no ground truth). Checks the files, their
// sizes, that the colourised prediction is the palette colour of the argmax class, the overlay
// blend (written out from its definition, at two --alpha values), the disagreement map and gate
// bar against the MoE's own outputs in this process, the printed weights and percentages, and
// the one-line errors for a missing image or checkpoint.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "data/augment.h"
#include "data/image_io.h"
#include "data/label_colours.h"
#include "data/synthetic_scenes.h"
#include "kernels/reduce.h"
#include "models/moe.h"
#include "models/registry.h"
#include "training/experiment_config.h"
#include "training/trainer.h"
#include "tests/support/read_text.h"
#include "tests/support/temp_dir.h"

using namespace moeseg;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using Tmp = moeseg::testing::TempDir;   // tests/support/temp_dir.h

using moeseg::testing::read_text;

// Runs `moeseg predict ARGS`; stdout and stderr land in <dir>/out.txt and <dir>/err.txt.
int predict(const Tmp& t, const std::string& args) {
  const std::string cmd = std::string(MOESEG_CLI_PATH) + " predict " + args + " > " + t.str("out.txt") + " 2> " + t.str("err.txt");
  return std::system(cmd.c_str());
}

json expert(uint64_t seed) { return {{"model", "frrn_a"}, {"num_classes", 38}, {"width", 0.125}, {"seed", seed}}; }

json moe(const std::string& gate) {
  return {{"type", "moe"},      {"num_classes", 38}, {"experts", {expert(1), expert(2)}}, {"gate", gate}, {"with_conv", false},
          {"tap", "frrnlayer4"}, {"input_size", {32, 32}}, {"fc_features", 8}, {"seed", 4}};
}

// A tiny synthetic tree, a config around `model`, and a checkpoint of the model's weights
// (every weight scaled by 1 + 2 sin(i): predictions then match only when the checkpoint is
// really loaded, and the random model predicts several classes, not one everywhere).
struct Setup {
  Tmp t{"setup"};
  std::string config, checkpoint;
  ExperimentConfig cfg;
  explicit Setup(const json& model) {
    data::SynthOptions o;
    o.out = t.str("data");
    o.seed = 7;
    o.height = 32;
    o.width = 32;
    o.train = 1;
    o.val = 1;
    o.test = 2;
    o.ambiguous_test = 1;
    data::generate_synthetic_a2d2(o);
    json c = {{"name", "tiny"},
              {"model", model},
              {"data", {{"root", t.str("data")}, {"height", 32}, {"width", 32}, {"test_subsets", {"urban"}}}},
              {"out", t.str("run")}};
    config = t.str("tiny.json");
    std::ofstream(config) << c.dump(2);
    cfg = load_experiment_config(config);
    auto m = build_experiment_model(cfg);
    std::map<std::string, Tensor> sd;
    for (auto& [k, v] : m->state_dict()) {
      Tensor x = v.clone();
      if (x.dtype() == DType::Float32 && k.find("running_var") == std::string::npos) {
        float* p = x.data<float>();
        for (int64_t i = 0; i < x.numel(); ++i) p[i] *= 1.0f + 2.0f * std::sin(static_cast<float>(i));
      }
      sd[k] = x;
    }
    checkpoint = t.str("w.safetensors");
    save_safetensors(checkpoint, sd);
  }
};

std::vector<std::string> files_ending(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string s = e.path().string();
    if (s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0) out.push_back(s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The model's own logits on `image` [3, H, W] (same weights, in this process).
Tensor logits_of(const Setup& s, const Tensor& image) {
  auto m = build_experiment_model(s.cfg);
  load_checkpoint(*m, s.checkpoint);
  m->eval();
  NoGradGuard ng;
  return m->forward(image.unsqueeze(0).contiguous()).select(0, 0).contiguous();
}

// Every pixel of `pred` has the palette colour of the argmax class of `logits` [C, H, W]; a
// pixel may differ only where the two best logits tie within 1e-4 (summation order).
void check_palette_of_argmax(const data::Image& pred, const Tensor& logits) {
  const int64_t C = logits.size(0), H = logits.size(1), W = logits.size(2);
  REQUIRE(pred.height == H);
  REQUIRE(pred.width == W);
  const float* l = logits.data<float>();
  int64_t checked = 0, mismatched_clear = 0;
  std::set<int64_t> classes;
  for (int64_t p = 0; p < H * W; ++p) {
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (l[c * H * W + p] > l[best * H * W + p]) best = c;
    float second = -INFINITY;
    for (int64_t c = 0; c < C; ++c)
      if (c != best) second = std::max(second, l[c * H * W + p]);
    const data::RGB want = data::class_colour(best, C);
    const uint8_t* got = pred.pixels.data() + 3 * p;
    const bool same = got[0] == want[0] && got[1] == want[1] && got[2] == want[2];
    if (!same && l[best * H * W + p] - second > 1e-4f) ++mismatched_clear;
    ++checked;
    classes.insert(best);
  }
  CHECK(checked == H * W);
  CHECK(mismatched_clear == 0);
  CHECK(classes.size() >= 2);   // else the palette check would test one colour only
}

// The overlay by its definition (cmd_predict --alpha, data/label_colours.h): per value
// round((1 - alpha) * image + alpha * prediction), halves up. alpha = q/4 exactly, so this is
// integer arithmetic: (4 - q) * image + q * prediction over 4, rounded.
std::vector<uint8_t> overlay_by_definition(const data::Image& image, const data::Image& pred, int quarters) {
  REQUIRE(image.pixels.size() == pred.pixels.size());
  std::vector<uint8_t> out(image.pixels.size());
  for (size_t k = 0; k < out.size(); ++k)
    out[k] = static_cast<uint8_t>(((4 - quarters) * image.pixels[k] + quarters * pred.pixels[k] + 2) / 4);
  return out;
}

// argmax over classes of logits [C, H, W] at pixel p, and whether it is clear of a tie (1e-4).
int64_t argmax_at(const Tensor& logits, int64_t p, bool& clear) {
  const int64_t C = logits.size(0), HW = logits.size(1) * logits.size(2);
  const float* l = logits.data<float>();
  int64_t best = 0;
  for (int64_t c = 1; c < C; ++c)
    if (l[c * HW + p] > l[best * HW + p]) best = c;
  for (int64_t c = 0; c < C; ++c)
    if (c != best && l[best * HW + p] - l[c * HW + p] <= 1e-4f) clear = false;
  return best;
}

// The MoE's combined logits, gate weights and expert logits on `image` [3, H, W], in this process.
struct MoEResult {
  Tensor logits, gate;
  std::vector<Tensor> experts;
};
MoEResult moe_of(const Setup& s, const Tensor& image) {
  auto m = build_experiment_model(s.cfg);
  load_checkpoint(*m, s.checkpoint);
  m->eval();
  auto* moe = dynamic_cast<MoE*>(m.get());
  REQUIRE(moe != nullptr);
  NoGradGuard ng;
  ModelOutput o = moe->forward_detailed(image.unsqueeze(0).contiguous());
  MoEResult r{o.logits.select(0, 0).contiguous(), o.gate.select(0, 0).to(DType::Float32).contiguous(), {}};
  for (const Tensor& e : o.member_logits) r.experts.push_back(e.select(0, 0).contiguous());
  return r;
}

// The line `moeseg predict` printed for dataset image #i.
std::string printed_line(const std::string& printed, size_t i) {
  std::istringstream in(printed);
  for (std::string line; std::getline(in, line);)
    if (line.find(" #" + std::to_string(i) + " -> ") != std::string::npos) return line;
  return "";
}

}  // namespace

TEST_CASE("moeseg predict: simple-gate MoE on dataset images writes prediction, overlay, truth, gate, disagreement") {
  Setup s(moe("simple"));
  Tmp out("simple");
  REQUIRE(predict(out, s.config + " --checkpoint " + s.checkpoint + " --out " + out.str("png") + " --max 2") == 0);
  const auto preds = files_ending(out.str("png"), "_pred.png");
  REQUIRE(preds.size() == 2);
  auto ds = open_experiment_data(s.cfg.data, "urban", "test", 2);
  for (size_t i = 0; i < preds.size(); ++i) {
    const std::string base = preds[i].substr(0, preds[i].size() - std::string("_pred.png").size());
    CAPTURE(base);
    for (const char* kind : {"_image", "_overlay", "_truth", "_gate", "_disagreement"}) CHECK(fs::exists(base + kind + ".png"));
    const data::Image pred = data::read_image(preds[i], 3), image = data::read_image(base + "_image.png", 3),
                      overlay = data::read_image(base + "_overlay.png", 3), gate = data::read_image(base + "_gate.png", 3),
                      dis = data::read_image(base + "_disagreement.png", 3);
    for (const data::Image* im : {&pred, &image, &overlay, &dis}) {
      CHECK(im->height == 32);
      CHECK(im->width == 32);
    }
    CHECK(gate.height == 24);   // one stacked bar
    CHECK(gate.width == 256);
    // The prediction is the palette colour of the argmax class of the model's logits.
    const data::Sample sample = ds->get(i);
    CHECK(data::tensor_to_image(sample.image).pixels == image.pixels);
    check_palette_of_argmax(pred, logits_of(s, sample.image));
    // The overlay is the 50% blend of image and prediction (the default --alpha).
    CHECK(overlay.pixels == overlay_by_definition(image, pred, 2));
    CHECK(overlay.pixels != image.pixels);
    // Disagreement: each pixel has the colour of its category (grey perfect, orange follows
    // expert 1, sky blue follows expert 2, red critical; prediction_images.h), computed here from
    // the experts' and the MoE's argmax in this process; pixels where any argmax is a near-tie
    // are not judged. No ignore pixels in synthetic scenes.
    const MoEResult r = moe_of(s, sample.image);
    REQUIRE(r.experts.size() == 2);
    const std::array<uint8_t, 3> colour_of[4] = {{128, 128, 128}, {230, 159, 0}, {86, 180, 233}, {220, 0, 0}};
    int64_t clear = 0, wrong = 0, count[4] = {0, 0, 0, 0};
    for (int64_t p = 0; p < 32 * 32; ++p) {
      bool ok = true;
      const int64_t m = argmax_at(r.logits, p, ok), e1 = argmax_at(r.experts[0], p, ok), e2 = argmax_at(r.experts[1], p, ok);
      const int k = m == e1 && m == e2 ? 0 : m == e1 ? 1 : m == e2 ? 2 : 3;
      ++count[k];
      if (!ok) continue;
      ++clear;
      const uint8_t* got = dis.pixels.data() + 3 * p;
      wrong += got[0] != colour_of[k][0] || got[1] != colour_of[k][1] || got[2] != colour_of[k][2];
    }
    CHECK(wrong == 0);
    CHECK(clear > 32 * 32 / 2);
    CHECK(count[0] < 32 * 32);   // the experts disagree somewhere, else one colour is tested only
    // The gate bar: expert 1's orange segment is its weight times 256 px, expert 2's the rest.
    REQUIRE(r.gate.shape() == Shape{1, 2});
    const float w1 = r.gate.data<float>()[0], w2 = r.gate.data<float>()[1];
    int orange = 0, blue = 0;
    for (int x = 0; x < 256; ++x) {
      const uint8_t* g = gate.at(12, x);
      orange += g[0] == 230 && g[1] == 159 && g[2] == 0;
      blue += g[0] == 86 && g[1] == 180 && g[2] == 233;
    }
    CHECK(std::abs(orange - 256.0 * w1) <= 1.0);
    CHECK(orange + blue == 256);
    // The printed line: the gate weights and the category percentages of this image.
    const std::string line = printed_line(read_text(out.str("out.txt")), i);
    CAPTURE(line);
    const size_t at = line.find("  gate ");
    REQUIRE(at != std::string::npos);
    double pw1 = -1, pw2 = -1, pct[4] = {-1, -1, -1, -1};
    REQUIRE(std::sscanf(line.c_str() + at, "  gate %lf %lf  perfect %lf%% follows 1 %lf%% follows 2 %lf%% critical %lf%%", &pw1,
                        &pw2, &pct[0], &pct[1], &pct[2], &pct[3]) == 6);
    CHECK(std::abs(pw1 - w1) <= 0.0006);
    CHECK(std::abs(pw2 - w2) <= 0.0006);
    const double tie_pct = 100.0 * static_cast<double>(32 * 32 - clear) / (32 * 32);
    for (int k = 0; k < 4; ++k) CHECK(std::abs(pct[k] - 100.0 * static_cast<double>(count[k]) / (32 * 32)) <= tie_pct + 0.051);
  }
}

TEST_CASE("moeseg predict: class-wise MoE on an image file: one gate row per class, no truth") {
  Setup s(moe("classwise"));
  Tmp out("classwise");
  // A 40x48 camera image: resized to the config's 32x32 like evaluation inputs.
  data::write_png(out.str("scene.png"), data::render_scene(data::SceneDomain::Urban, 3, 0, 1, 40, 48).rgb);
  REQUIRE(predict(out, s.config + " " + out.str("scene.png") + " --checkpoint " + s.checkpoint + " --out " + out.str("png") +
                            " --alpha 0.25") == 0);
  for (const char* kind : {"_image", "_pred", "_overlay", "_gate", "_disagreement"})
    CHECK(fs::exists(out.str("png/scene") + kind + ".png"));
  CHECK(!fs::exists(out.str("png/scene_truth.png")));
  const data::Image pred = data::read_image(out.str("png/scene_pred.png"), 3), gate = data::read_image(out.str("png/scene_gate.png"), 3);
  CHECK(pred.height == 32);
  CHECK(pred.width == 32);
  CHECK(gate.height == 38 * 8 + 37);   // 38 class rows of 8 px, 1 px apart
  CHECK(gate.width == 12 + 4 + 256);   // class swatch, gap, bar
  // Row k starts with the colour of class k.
  for (int k : {0, 10, 37}) {
    const data::RGB want = data::class_colour(k, 38);
    const uint8_t* got = gate.at(k * 9 + 4, 5);
    CHECK(got[0] == want[0]);
    CHECK(got[1] == want[1]);
    CHECK(got[2] == want[2]);
  }
  // The model's input: the file, resized as the CLI does.
  data::Sample in;
  in.image = data::image_to_tensor(data::read_image(out.str("scene.png"), 3));
  in.label = Tensor::full({40, 48}, 255, DType::Int64);
  check_palette_of_argmax(pred, logits_of(s, data::resize_sample(in, 32, 32).image));
  // --alpha 0.25: the overlay is a quarter prediction, three quarters image.
  const data::Image image = data::read_image(out.str("png/scene_image.png"), 3),
                    overlay = data::read_image(out.str("png/scene_overlay.png"), 3);
  CHECK(image.pixels == data::tensor_to_image(data::resize_sample(in, 32, 32).image).pixels);
  CHECK(overlay.pixels == overlay_by_definition(image, pred, 1));
  CHECK(overlay.pixels != overlay_by_definition(image, pred, 2));
  CHECK(read_text(out.str("out.txt")).find("no ground truth") != std::string::npos);
}

TEST_CASE("moeseg predict: a single model writes no gate or disagreement picture") {
  Setup s(expert(3));
  Tmp out("single");
  REQUIRE(predict(out, s.config + " --checkpoint " + s.checkpoint + " --out " + out.str("png") + " --max 1") == 0);
  REQUIRE(files_ending(out.str("png"), "_pred.png").size() == 1);
  CHECK(files_ending(out.str("png"), "_gate.png").empty());
  CHECK(files_ending(out.str("png"), "_disagreement.png").empty());
  CHECK(files_ending(out.str("png"), "_truth.png").size() == 1);
}

TEST_CASE("moeseg predict: a missing image or checkpoint is one clear error line naming the file") {
  Setup s(expert(3));
  Tmp out("errors");
  const std::string missing_image = out.str("nope.png"), missing_ckpt = out.str("nope.safetensors");
  CHECK(predict(out, s.config + " " + missing_image + " --out " + out.str("png")) != 0);
  std::string err = read_text(out.str("err.txt"));
  CHECK(err.find("image file '" + missing_image + "' does not exist") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK(predict(out, s.config + " --checkpoint " + missing_ckpt + " --out " + out.str("png")) != 0);
  err = read_text(out.str("err.txt"));
  CHECK(err.find("checkpoint '" + missing_ckpt + "' does not exist") != std::string::npos);
  CHECK(predict(out, s.config + " --max 1") != 0);
  CHECK(read_text(out.str("err.txt")).find("--out") != std::string::npos);
  CHECK(!fs::exists(out.str("png")));
  CHECK(predict(out, "--help") == 0);
  CHECK(read_text(out.str("out.txt")).find("_disagreement.png") != std::string::npos);
}
