// Trainer, checkpoints, experiment configs and evaluation on tiny FRRNs and tiny synthetic data:
// resume bit-exactness, atomic checkpoints, config errors naming the key, early stopping, best
// checkpoint = max val mIoU, gate training leaving the experts untouched, train + eval end to end.
// Runs in well under a minute on 2 cores (32x32 images, FRRN-A at width 0.125).
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "data/augment.h"
#include "data/loader.h"
#include "data/synthetic_scenes.h"
#include "models/moe.h"
#include "models/registry.h"
#include "training/checkpoint.h"
#include "training/experiment_config.h"
#include "training/evaluation.h"
#include "training/experiments/model_level_moe.h"
#include "training/report.h"
#include "training/trainer.h"
#include "tests/support/temp_dir.h"
#include "support/gradcheck.h"

using namespace moeseg;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using Tmp = moeseg::testing::TempDir;   // tests/support/temp_dir.h

// Tiny synthetic A2D2 tree shared by all tests of this binary (written once).
const std::string& tiny_data() {
  static Tmp dir("data");
  static bool made = [] {
    data::SynthOptions o;
    o.out = dir.str();
    o.seed = 3;
    o.height = 32;
    o.width = 48;
    o.train = 6;
    o.val = 4;
    o.test = 4;
    data::generate_synthetic_a2d2(o);
    return true;
  }();
  (void)made;
  static std::string s = dir.str();
  return s;
}

json expert_model(uint64_t seed = 1) { return {{"model", "frrn_a"}, {"num_classes", 38}, {"width", 0.125}, {"seed", seed}}; }

json tiny_config(const std::string& out, json model = expert_model()) {
  return {{"name", "tiny"},
          {"model", model},
          {"data",
           {{"root", tiny_data()}, {"subset", "highway"}, {"height", 32}, {"width", 32}, {"preset", "reference"},
            {"workers", 1}, {"test_subsets", {"highway", "urban", "ambiguous", "all"}}}},
          {"train",
           {{"epochs", 2}, {"batch", 2}, {"optimizer", {{"type", "adam"}, {"lr", 0.01}}}, {"seed", 5},
            {"val_every", 1}, {"schedule", {{"kind", "cosine"}, {"eta_min", 1e-6}}}}},
          {"out", out}};
}

ExperimentConfig cfg(const json& j) { return parse_experiment_config(j, "test.json", ""); }

std::map<std::string, Tensor> load(const std::string& path) { return load_safetensors(path).tensors; }

bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), static_cast<size_t>(x.numel()) * dtype_size(x.dtype())) == 0;
}

void require_same_tensors(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (auto& [k, v] : a) {
    INFO("tensor ", k);
    REQUIRE(b.count(k));
    CHECK(bit_equal(v, b.at(k)));
  }
}

using moeseg::testing::error_of;   // tests/support/gradcheck.h


// The evaluation recomputed by hand, independently of training/metrics and training/report:
// the test images through the same loader and model, then plain loops for the confusion counts,
// IoU per class (NaN where a class is in neither prediction nor truth), their nan-mean, the
// disagreement categories and the gate's mean weights.
struct HandEval {
  int64_t classes = 0, pixels = 0, images = 0;
  std::vector<int64_t> cm;   // [truth * C + prediction]
  int64_t perfect = 0, follows_1 = 0, follows_2 = 0, critical = 0;
  std::vector<double> gate_sum;
  int64_t gate_rows = 0;
  void add(const HandEval& o) {
    for (size_t i = 0; i < cm.size(); ++i) cm[i] += o.cm[i];
    pixels += o.pixels, images += o.images;
  }
  std::vector<double> iou() const {
    std::vector<double> out(classes);
    for (int64_t k = 0; k < classes; ++k) {
      int64_t tp = cm[k * classes + k], row = 0, col = 0;
      for (int64_t j = 0; j < classes; ++j) row += cm[k * classes + j], col += cm[j * classes + k];
      const int64_t uni = row + col - tp;
      out[k] = uni == 0 ? NAN : static_cast<double>(tp) / static_cast<double>(uni);
    }
    return out;
  }
  double miou() const {
    double s = 0;
    int n = 0;
    for (double v : iou())
      if (!std::isnan(v)) s += v, ++n;
    return s / n;
  }
};

HandEval evaluate_by_hand(SegmentationModel& model, const ExperimentConfig& c, const std::string& subset) {
  auto ds = open_experiment_data(c.data, subset, "test", c.data.max_test);
  data::LoaderOptions lo;
  lo.batch_size = static_cast<size_t>(c.train.batch);   // as the evaluation batches (same rounding)
  lo.num_workers = c.data.workers;
  lo.augment = data::reference_preset(c.data.height, c.data.width, false);
  data::DataLoader loader(ds, lo);
  loader.start_epoch(0);
  model.eval();
  NoGradGuard ng;
  auto* moe = dynamic_cast<MoE*>(&model);
  HandEval h;
  h.classes = model.num_classes();
  h.cm.assign(h.classes * h.classes, 0);
  data::Batch b;
  while (loader.next(b)) {
    ModelOutput o;
    if (moe) o = moe->forward_detailed(b.images);
    else o.logits = model.forward(b.images);
    const Tensor logits = o.logits.contiguous(), labels = b.labels.contiguous();
    const int64_t B = logits.size(0), C = logits.size(1), HW = logits.size(2) * logits.size(3);
    REQUIRE(labels.numel() == B * HW);
    auto argmax_at = [&](const Tensor& l, int64_t bi, int64_t i) {
      const float* p = l.data<float>() + bi * C * HW + i;
      int64_t best = 0;
      for (int64_t k = 1; k < C; ++k)
        if (p[k * HW] > p[best * HW]) best = k;
      return best;
    };
    std::vector<Tensor> experts;
    for (auto& e : o.member_logits) experts.push_back(e.contiguous());
    const int64_t* g = labels.data<int64_t>();
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t i = 0; i < HW; ++i) {
        const int64_t truth = g[bi * HW + i];
        if (truth < 0 || truth >= C) continue;   // ignore label
        const int64_t m = argmax_at(logits, bi, i);
        h.cm[truth * C + m]++;
        ++h.pixels;
        if (experts.size() == 2) {
          const int64_t e1 = argmax_at(experts[0], bi, i), e2 = argmax_at(experts[1], bi, i);
          if (m == e1 && m == e2) ++h.perfect;
          else if (m == e1) ++h.follows_1;
          else if (m == e2) ++h.follows_2;
          else ++h.critical;
        }
      }
    if (o.gate.defined()) {
      const Tensor gw = o.gate.contiguous();   // [B, G, E]
      const int64_t E = gw.size(2), rows = gw.size(0) * gw.size(1);
      h.gate_sum.resize(E, 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t e = 0; e < E; ++e) h.gate_sum[e] += gw.data<float>()[r * E + e];
      h.gate_rows += rows;
    }
    h.images += B;
  }
  return h;
}

void check_subset_json(const json& r, const HandEval& h) {
  CHECK(r["images"].get<int64_t>() == h.images);
  CHECK(r["pixels"].get<int64_t>() == h.pixels);
  CHECK(h.pixels > 0);
  CHECK(r["miou"].get<double>() == doctest::Approx(h.miou()).epsilon(1e-12));
  const auto iou = h.iou();
  REQUIRE(r["iou"].size() == iou.size());
  for (size_t k = 0; k < iou.size(); ++k) {
    CAPTURE(k);
    if (std::isnan(iou[k])) CHECK(r["iou"][k].is_null());
    else CHECK(r["iou"][k].get<double>() == doctest::Approx(iou[k]).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("trainer: 2 epochs == 1 epoch + resume + 1 epoch, bit for bit") {
  Tmp t("resume");
  TrainOptions q;
  q.quiet = true;
  train_experiment(cfg(tiny_config(t.str("a"))), q);
  TrainOptions stop = q;
  stop.stop_after_epochs = 1;
  auto s1 = train_experiment(cfg(tiny_config(t.str("b"))), stop);
  CHECK(s1.epochs_done == 1);
  TrainOptions resume = q;
  resume.resume = true;
  auto s2 = train_experiment(cfg(tiny_config(t.str("b"))), resume);
  CHECK(s2.epochs_done == 2);
  require_same_tensors(load(t.str("a/last/model.safetensors")), load(t.str("b/last/model.safetensors")));
  require_same_tensors(load(t.str("a/last/optimizer.safetensors")), load(t.str("b/last/optimizer.safetensors")));
  // And the run did learn something: the weights moved from their initialisation.
  auto init = build_experiment_model(cfg(tiny_config(t.str("c"))))->state_dict();
  auto trained = load(t.str("a/last/model.safetensors"));
  CHECK_FALSE(bit_equal(init.at("out_conv.weight"), trained.at("out_conv.weight")));
  // Resuming under another config is refused, naming the hash mismatch.
  json other = tiny_config(t.str("b"));
  other["train"]["optimizer"]["lr"] = 0.02;
  CHECK(error_of([&] { train_experiment(cfg(other), resume); }).find("another config") != std::string::npos);
}

TEST_CASE("trainer: resume after an epoch that did not validate (no best validation loss yet)") {
  Tmp t("resume_noval");
  json j = tiny_config(t.str("r"));
  j["train"]["val_every"] = 2;
  TrainOptions stop;
  stop.quiet = true;
  stop.stop_after_epochs = 1;
  train_experiment(cfg(j), stop);
  // No validation yet: the best validation loss is infinite, which meta.json holds as null.
  std::ifstream f(t.str("r/last/meta.json"));
  const json meta = json::parse(f);
  REQUIRE(meta.at("extra").contains("best_val_loss"));
  CHECK(meta.at("extra").at("best_val_loss").is_null());
  TrainOptions resume;
  resume.quiet = true;
  resume.resume = true;
  auto s = train_experiment(cfg(j), resume);   // read back as "none yet", not a json type_error
  CHECK(s.epochs_done == 2);
  CHECK(s.best_epoch == 2);
}

TEST_CASE("checkpoint: a failed save leaves the previous checkpoint whole and cleans up") {
  Tmp t("atomic");
  auto model = make_model_from_config(expert_model(1));
  NamedParameters np = model->named_parameters();
  SGD opt(np, SGDOptions{});
  const std::string dir = t.str("last");
  CheckpointMeta m;
  m.epoch = 1;
  save_training_checkpoint(dir, *model, &opt, m);
  auto before = load(dir + "/model.safetensors");
  // Change the weights and fail in the middle of the next save (after the model file).
  for (auto& [n, p] : model->named_parameters()) p.fill_(0.5);
  m.epoch = 2;
  set_checkpoint_failure_after_files(1);
  CHECK_THROWS_AS(save_training_checkpoint(dir, *model, &opt, m), Error);
  CHECK(fs::exists(dir + ".staging"));   // the interrupted write
  CHECK(read_checkpoint_meta(dir).epoch == 1);
  require_same_tensors(before, load(dir + "/model.safetensors"));
  auto fresh = make_model_from_config(expert_model(2));
  CHECK(load_training_checkpoint(dir, *fresh, nullptr).epoch == 1);
  // Leftovers are removed, and a successful save leaves only the three files.
  std::ofstream(dir + "/junk.tmp") << "x";
  CHECK(remove_stale_temp_files(dir) == 2);
  CHECK_FALSE(fs::exists(dir + ".staging"));
  save_training_checkpoint(dir, *model, &opt, m);
  CHECK(read_checkpoint_meta(dir).epoch == 2);
  CHECK_FALSE(fs::exists(dir + ".staging"));
  CHECK_FALSE(fs::exists(dir + ".old"));
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++files;
  }
  CHECK(files == 3);
  // A crash between the two renames: only <dir>.old exists, and the loader uses it.
  fs::rename(dir, dir + ".old");
  CHECK(read_checkpoint_meta(dir).epoch == 2);
  // A mixed folder (weights of another epoch than meta.json) is refused.
  fs::rename(dir + ".old", dir);
  CheckpointMeta m3 = m;
  m3.epoch = 3;
  write_file_atomic(dir + "/meta.json", m3.to_json().dump());
  CHECK(error_of([&] { load_training_checkpoint(dir, *fresh, nullptr); }).find("mixed checkpoint") != std::string::npos);
}

TEST_CASE("experiment config: errors name the key and the file, --set overrides") {
  json j = tiny_config("/tmp/x");
  j["train"]["epocs"] = 3;
  std::string e = error_of([&] { parse_experiment_config(j, "my.json", ""); });
  CHECK(e.find("train.epocs") != std::string::npos);
  CHECK(e.find("my.json") != std::string::npos);
  j = tiny_config("/tmp/x");
  j["train"]["batch"] = "two";
  e = error_of([&] { parse_experiment_config(j, "my.json", ""); });
  CHECK(e.find("train.batch") != std::string::npos);
  j = tiny_config("/tmp/x");
  j["train"]["optimizer"]["type"] = "rmsprop";
  CHECK(error_of([&] { parse_experiment_config(j, "my.json", ""); }).find("train.optimizer.type") != std::string::npos);
  j = tiny_config("/tmp/x");
  j["data"]["heigth"] = 3;
  CHECK(error_of([&] { parse_experiment_config(j, "my.json", ""); }).find("data.heigth") != std::string::npos);
  j = tiny_config("/tmp/x");
  apply_override(j, "train.epochs=7");
  apply_override(j, "data.subset=urban");
  apply_override(j, "train.optimizer.betas=[0.8,0.95]");
  ExperimentConfig c = parse_experiment_config(j, "my.json", "");
  CHECK(c.train.epochs == 7);
  CHECK(c.data.subset == "urban");
  CHECK(c.train.optimizer.beta1 == doctest::Approx(0.8));
  CHECK(error_of([&] { apply_override(j, "noequals"); }).find("noequals") != std::string::npos);
}

// An MoE over two tiny experts (random weights are enough for the gate-stage tests).
json tiny_moe(const std::string& gate, bool conv) {
  return {{"type", "moe"},          {"num_classes", 38},       {"experts", {expert_model(1), expert_model(2)}},
          {"gate", gate},           {"with_conv", conv},       {"tap", "frrnlayer4"},
          {"input_size", {32, 32}}, {"fc_features", 8},        {"seed", 4}};
}

TEST_CASE("trainer: gate training changes only the gate, experts' weights and BN statistics stay") {
  for (bool cache : {false, true}) {
    CAPTURE(cache);
    Tmp t("gate");
    json j = tiny_config(t.str("moe"), tiny_moe("classwise", true));
    j["data"]["subset"] = "highway,urban";
    j["train"]["epochs"] = 1;
    j["train"]["cache_expert_outputs"] = cache;
    j["train"]["optimizer"]["lr"] = 0.05;
    ExperimentConfig c = cfg(j);
    auto model = build_experiment_model(c);
    auto before = model->state_dict();
    std::map<std::string, Tensor> copy;
    for (auto& [k, v] : before) copy[k] = v.clone();
    TrainOptions q;
    q.quiet = true;
    train_model(c, *model, q);
    int changed_gate = 0;
    for (auto& [k, v] : model->state_dict()) {
      INFO("tensor ", k);
      if (k.rfind("expert", 0) == 0) CHECK(bit_equal(v, copy.at(k)));
      else changed_gate += bit_equal(v, copy.at(k)) ? 0 : 1;
    }
    CHECK(changed_gate > 0);
  }
}

TEST_CASE("trainer: early stopping fires after `patience` validations without improvement") {
  Tmp t("early");
  json j = tiny_config(t.str("moe"), tiny_moe("simple", false));
  // lr 1e-30: the gate's weights cannot move (below one ulp), the experts are frozen, so the
  // validation mIoU is the same every epoch and never improves after the first.
  j["train"]["optimizer"]["lr"] = 1e-30;
  j["train"]["epochs"] = 10;
  j["train"]["patience"] = 2;
  TrainOptions q;
  q.quiet = true;
  auto s = train_experiment(cfg(j), q);
  CHECK(s.early_stopped);
  CHECK(s.epochs_done == 3);   // epoch 1 sets the best, epochs 2 and 3 do not improve
  CHECK(s.best_epoch == 1);
}

TEST_CASE("trainer: best/ holds the epoch of the maximal validation mIoU, eval end to end") {
  Tmp t("best");
  json j = tiny_config(t.str("run"));
  j["train"]["epochs"] = 3;
  j["train"]["optimizer"]["lr"] = 0.02;
  ExperimentConfig c = cfg(j);
  TrainOptions q;
  q.quiet = true;
  auto s = train_experiment(c, q);
  // Read the validations back from the log.
  std::ifstream log(t.str("run/train_log.jsonl"));
  double best = -1;
  int64_t best_epoch = -1, vals = 0;
  for (std::string line; std::getline(log, line);) {
    json e = json::parse(line);
    if (e["kind"] != "val") continue;
    ++vals;
    if (e["miou"].get<double>() > best) best = e["miou"].get<double>(), best_epoch = e["epoch"].get<int64_t>();
  }
  CHECK(vals == 3);
  CheckpointMeta m = read_checkpoint_meta(t.str("run/best"));
  CHECK(m.best_epoch == best_epoch);
  CHECK(m.best_metric == doctest::Approx(best).epsilon(1e-12));
  CHECK(s.best_miou == doctest::Approx(best).epsilon(1e-12));
  CHECK(fs::exists(t.str("run/loss.svg")));
  CHECK(fs::exists(t.str("run/miou.svg")));
  // The best weights reproduce the logged validation mIoU.
  auto model = build_experiment_model(c);
  load_checkpoint(*model, t.str("run/best/model.safetensors"));
  auto val = open_experiment_data(c.data, c.data.val_subset, "val", 0);
  CHECK(validate_model(*model, *val, c).miou == doctest::Approx(best).epsilon(1e-9));
  // Evaluation on every test subset; "all" is highway + urban.
  EvalOptions eo;
  eo.quiet = true;
  json r = evaluate_on_subsets(*model, c, eo, "tiny");
  // Each subset's numbers equal a count made by hand; "all" is the highway and urban counts
  // merged (not a mean of their mIoUs).
  std::map<std::string, HandEval> hand;
  for (const char* sub : {"highway", "urban", "ambiguous"}) hand[sub] = evaluate_by_hand(*model, c, sub);
  hand["all"] = hand["highway"];
  hand["all"].add(hand["urban"]);
  for (const char* sub : {"highway", "urban", "ambiguous", "all"}) {
    INFO(sub);
    REQUIRE(r["subsets"].contains(sub));
    check_subset_json(r["subsets"][sub], hand[sub]);
  }
  CHECK(r["subsets"]["all"]["images"] == r["subsets"]["highway"]["images"].get<int64_t>() +
                                             r["subsets"]["urban"]["images"].get<int64_t>());
}

TEST_CASE("evaluation: an MoE reports gate statistics and disagreement fractions that sum to 1") {
  Tmp t("evalmoe");
  ExperimentConfig c = cfg(tiny_config(t.str("x"), tiny_moe("simple", false)));
  auto model = build_experiment_model(c);
  EvalOptions eo;
  eo.quiet = true;
  eo.subsets = {"highway"};
  eo.examples_dir = t.str("ex");
  eo.examples_per_subset = 1;
  json r = evaluate_on_subsets(*model, c, eo, "moe")["subsets"]["highway"];
  REQUIRE(r.contains("gate"));
  // Every figure equals the same quantity counted by hand from the model's outputs.
  const HandEval h = evaluate_by_hand(*model, c, "highway");
  check_subset_json(r, h);
  auto w = r["gate"]["mean_weight"];
  REQUIRE(w.size() == 2);
  REQUIRE(h.gate_sum.size() == 2);
  for (size_t e = 0; e < 2; ++e) CHECK(w[e].get<double>() == doctest::Approx(h.gate_sum[e] / h.gate_rows).epsilon(1e-9));
  CHECK(w[0].get<double>() + w[1].get<double>() == doctest::Approx(1.0).epsilon(1e-5));
  auto ref = r["disagreement"]["reference"];
  CHECK(r["disagreement"]["valid_pixels"].get<int64_t>() == h.pixels);
  const double px = static_cast<double>(h.pixels);
  CHECK(ref["perfect"].get<double>() == doctest::Approx(h.perfect / px).epsilon(1e-12));
  CHECK(ref["follows_1"].get<double>() == doctest::Approx(h.follows_1 / px).epsilon(1e-12));
  CHECK(ref["follows_2"].get<double>() == doctest::Approx(h.follows_2 / px).epsilon(1e-12));
  CHECK(ref["critical"].get<double>() == doctest::Approx(h.critical / px).epsilon(1e-12));
  auto gt = r["disagreement"]["ground_truth"];
  double total = gt["both_right"].get<double>();
  for (const char* k : {"only_1_right", "only_2_right", "neither_right"})
    total += gt[k]["moe_right"].get<double>() + gt[k]["moe_wrong"].get<double>();
  CHECK(total == doctest::Approx(1.0));
  CHECK(fs::exists(t.str("ex/highway_0_moe.png")));
}

TEST_CASE("configs/: every experiment config parses") {
  const fs::path dir = fs::path(MOESEG_FIXTURE_DIR) / ".." / ".." / "configs";
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    INFO(e.path().string());
    ExperimentConfig c = load_experiment_config(e.path().string());
    CHECK(c.name == e.path().stem().string());
    ++n;
  }
  CHECK(n >= 18);
}

TEST_CASE("configs/studies: every preset of the model-level MoE study expands into experiment configs that parse") {
  const fs::path path = fs::path(MOESEG_FIXTURE_DIR) / ".." / ".." / "configs" / "studies" / "model_level_moe.json";
  std::ifstream f(path);
  REQUIRE(f.good());
  const json study = json::parse(f);
  int presets = 0;
  for (auto& [preset, p] : study["presets"].items()) {
    INFO(preset);
    ++presets;
    for (int seed : {0, 1}) {
      const json rows = model_level_moe_experiments(study, preset, "/data", "/out", seed);
      REQUIRE(rows.size() == 9);   // baseline, 2 experts, 2 ensembles, 4 MoEs: the main table's rows
      CHECK(rows[0]["title"] == "Baseline");
      CHECK(rows[8]["title"] == "MoE class-wise + conv");
      for (const json& r : rows) {
        INFO(r["name"].get<std::string>());
        const ExperimentConfig c = parse_experiment_config(r["config"], "study", "/out");
        CHECK(c.data.root == "/data");
        CHECK(c.out == (seed == 0 ? "/out/runs/" : "/out/runs/seed1/") + r["name"].get<std::string>());
        CHECK(c.train.seed == 304 + seed);
        CHECK(c.data.height == p["height"].get<int>());
        CHECK(c.train.cache_expert_outputs == (r["config"]["model"].value("type", "") == "moe"));
      }
    }
  }
  CHECK(presets == 3);
}
