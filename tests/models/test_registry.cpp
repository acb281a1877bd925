// Model registry tests: names -> models, JSON configs for single models, MoEs and ensembles
// (experts with checkpoints; the result equals the PyTorch fixture), unknown names and keys.
// Run: build/tests/test_models -tc="registry*"
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "models/ensemble.h"
#include "models/frrn.h"
#include "models/moe.h"
#include "models/registry.h"

using namespace moeseg;
using json = nlohmann::json;

namespace {

std::string fixture_path(const std::string& name) { return std::string(MOESEG_FIXTURE_DIR) + "/models/" + name; }

// Writes the fixture's experts as two checkpoints into a temporary folder; returns it.
std::filesystem::path write_expert_checkpoints() {
  auto dir = std::filesystem::temp_directory_path() / "moeseg_test_registry";
  std::filesystem::create_directories(dir);
  TensorFile f = load_safetensors(fixture_path("moe_experts.safetensors"));
  for (int i = 1; i <= 2; ++i) {
    std::map<std::string, Tensor> sd;
    const std::string p = "expert" + std::to_string(i) + ".";
    for (auto& [k, v] : f.tensors)
      if (k.rfind(p, 0) == 0) sd["module." + k.substr(p.size())] = v;   // DataParallel prefix is stripped
    save_safetensors((dir / ("expert" + std::to_string(i) + ".safetensors")).string(), sd);
  }
  return dir;
}

}  // namespace

TEST_CASE("registry: names build the models") {
  ModelOptions o;
  o.num_classes = 7;
  o.width = 0.0625;
  auto a = make_model("frrn_a", o);
  CHECK(a->type_name() == "FRRN");
  CHECK(a->num_classes() == 7);
  CHECK(make_model("frrn_b", o)->tap_stride("frrnlayer5") == 32);
  o.width = 0.125;
  auto d = make_model("deeplabv3plus_resnet18", o);
  CHECK(d->num_classes() == 7);
  CHECK(d->tap_stride("aspp") == 16);
  CHECK_THROWS_WITH_AS(make_model("frrn_c", o), doctest::Contains("unknown model 'frrn_c'"), Error);
}

TEST_CASE("registry: unknown config keys are errors naming the key") {
  json j = {{"model", "frrn_a"}, {"num_classes", 5}, {"widht", 0.5}};
  CHECK_THROWS_WITH_AS(make_model_from_config(j), doctest::Contains("unknown key 'widht'"), Error);
  json m = {{"type", "moe"}, {"num_classes", 5}, {"experts", {"frrn_a", "frrn_a"}}, {"gates", "simple"}};
  CHECK_THROWS_WITH_AS(make_model_from_config(m), doctest::Contains("unknown key 'gates'"), Error);
  json e = {{"type", "moe"}, {"num_classes", 5}, {"experts", json::array({{{"model", "frrn_a"}, {"chekpoint", "x"}}})}};
  CHECK_THROWS_WITH_AS(make_model_from_config(e), doctest::Contains("unknown key 'chekpoint'"), Error);
  json t = {{"type", "mixture"}, {"num_classes", 5}};
  CHECK_THROWS_WITH_AS(make_model_from_config(t), doctest::Contains("unknown type 'mixture'"), Error);
}

TEST_CASE("registry: gate, tap and mode are parsed once from the config and keep their spelling") {
  const json thin = {{"model", "frrn_a"}, {"width", 0.0625}};
  for (const char* gate : {"simple", "classwise"}) {
    CAPTURE(gate);
    json cfg = {{"type", "moe"}, {"num_classes", 3}, {"experts", {thin, thin}}, {"input_size", {32, 48}},
                {"gate", gate}, {"tap", "frrnlayer3"}};
    auto m = make_model_from_config(cfg);
    auto* moe = dynamic_cast<MoE*>(m.get());
    REQUIRE(moe != nullptr);
    CHECK(to_string(moe->config().gate_type) == gate);
    CHECK(moe->config().gate_type == (std::string(gate) == "simple" ? GateType::Simple : GateType::Classwise));
    CHECK(moe->gating()->groups() == (std::string(gate) == "simple" ? 1 : 3));
    CHECK(moe->member_taps() == std::vector<std::string>{"frrnlayer3"});
  }
  // Absent keys: the defaults, spelled as configs spell them.
  json dflt = {{"type", "moe"}, {"num_classes", 3}, {"experts", {thin}}, {"input_size", {32, 48}}};
  auto dm = make_model_from_config(dflt);
  auto* moe = dynamic_cast<MoE*>(dm.get());
  REQUIRE(moe != nullptr);
  CHECK(to_string(moe->config().gate_type) == "simple");
  CHECK(moe->config().tap == "frrnlayer4");
  for (const char* mode : {"mean", "max"}) {
    CAPTURE(mode);
    json ens = {{"type", "ensemble"}, {"num_classes", 3}, {"experts", {thin, thin}}, {"mode", mode}};
    auto e = make_model_from_config(ens);
    auto* en = dynamic_cast<Ensemble*>(e.get());
    REQUIRE(en != nullptr);
    CHECK(to_string(en->mode()) == mode);
  }
}

TEST_CASE("registry: an MoE config with expert checkpoints reproduces the PyTorch fixture") {
  auto dir = write_expert_checkpoints();
  json expert = {{"model", "frrn_a"}, {"width", 0.0625}};
  json cfg = {{"type", "moe"},
              {"num_classes", 5},
              {"gate", "simple"},
              {"with_conv", false},
              {"tap", "frrnlayer4"},
              {"input_size", {32, 48}},
              {"experts", json::array()}};
  for (int i = 1; i <= 2; ++i) {
    json e = expert;
    e["checkpoint"] = "expert" + std::to_string(i) + ".safetensors";   // relative to the config file
    cfg["experts"].push_back(e);
  }
  // Gate weights of the fixture as the MoE checkpoint (experts included, as a trained MoE has).
  TensorFile f = load_safetensors(fixture_path("moe_simple.safetensors"));
  {
    auto no_ckpt = cfg;
    for (auto& e : no_ckpt["experts"]) e["checkpoint"] = (dir / e["checkpoint"].get<std::string>()).string();
    auto m = make_model_from_config(no_ckpt);
    auto sd = m->state_dict();
    for (auto& [k, v] : f.tensors)
      if (k.rfind("sd.", 0) == 0) sd[k.substr(3)] = v;
    save_safetensors((dir / "moe.safetensors").string(), sd);
  }
  cfg["checkpoint"] = "moe.safetensors";
  {
    std::ofstream(dir / "moe.json") << cfg.dump(2);
  }
  auto model = load_model_config((dir / "moe.json").string());
  auto* moe = dynamic_cast<MoE*>(model.get());
  REQUIRE(moe != nullptr);
  moe->eval();
  NoGradGuard ng;
  TensorFile ex = load_safetensors(fixture_path("moe_experts.safetensors"));
  Tensor out = moe->forward(ex.get("x"));
  auto a = out.to_vector<float>(), b = f.get("logits").to_vector<float>();
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(double(b[i])));
  }
  CHECK(num / den <= 1e-4);

  json ens = {{"type", "ensemble"}, {"num_classes", 5}, {"mode", "max"}, {"experts", cfg["experts"]}};
  std::ofstream(dir / "ens.json") << ens.dump(2);
  auto e = load_model_config((dir / "ens.json").string());
  CHECK(e->type_name() == "Ensemble");
  CHECK(e->forward(ex.get("x")).shape() == Shape{2, 5, 32, 48});
  std::filesystem::remove_all(dir);
}
