// Trainer, checkpoints, experiment configs and evaluation on tiny FRRNs and tiny synthetic data:
// resume bit-exactness, atomic checkpoints, config errors naming the key, early stopping, best
// checkpoint = max val mIoU, gate training leaving the experts untouched, train + eval end to end.
// Runs in well under a minute on 2 cores (32x32 images, FRRN-A at width 0.125).
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/safetensors.h"
#include "data/synthetic_scenes.h"
#include "models/moe.h"
#include "models/registry.h"
#include "training/checkpoint.h"
#include "training/experiment_config.h"
#include "training/report.h"
#include "training/trainer.h"
#include "tests/support/temp_dir.h"

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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
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
  for (const char* sub : {"highway", "urban", "ambiguous", "all"}) {
    INFO(sub);
    REQUIRE(r["subsets"].contains(sub));
    CHECK(r["subsets"][sub]["miou"].get<double>() >= 0);
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
  auto w = r["gate"]["mean_weight"];
  CHECK(w.size() == 2);
  CHECK(w[0].get<double>() + w[1].get<double>() == doctest::Approx(1.0).epsilon(1e-5));
  auto ref = r["disagreement"]["reference"];
  CHECK(ref["perfect"].get<double>() + ref["follows_1"].get<double>() + ref["follows_2"].get<double>() +
            ref["critical"].get<double>() ==
        doctest::Approx(1.0));
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
  CHECK(n >= 22);
}
