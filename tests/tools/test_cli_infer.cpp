// End-to-end check of `moeseg infer` against PyTorch: the committed model fixtures (weights made
// by tools/fixtures/make_model_fixtures.py with torch) are split into a weights file and an input
// file, the real CLI binary runs them, and its outputs must equal torch's logits (and gate
// weights for the MoE) within 1e-4 relative error. This is the round trip a user does to check
// moeseg against another framework.
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/safetensors.h"

using namespace moeseg;
using moeseg::testing::contains;
using moeseg::testing::expect_error;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(MOESEG_FIXTURE_DIR) + "/models/" + name + ".safetensors"; }



int run(const std::string& args) {
  std::string cmd = std::string(MOESEG_CLI_PATH) + " " + args + " > /dev/null";
  return std::system(cmd.c_str());
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("moeseg_cli_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("moeseg infer reproduces PyTorch's FRRN-A logits from exported weights") {
  TensorFile f = load_safetensors(fixture("frrn_a_w0125"));
  fs::path d = temp_dir("frrn");
  save_safetensors((d / "w.safetensors").string(), testing::tensors_with_prefix(f, "sd."));
  save_safetensors((d / "x.safetensors").string(), {{"input", f.get("x")}});
  std::ofstream((d / "model.json").string()) << R"({"model": "frrn_a", "num_classes": 5, "width": 0.125})";
  REQUIRE(run("infer --config " + (d / "model.json").string() + " --weights " + (d / "w.safetensors").string() +
              " --input " + (d / "x.safetensors").string() + " --out " + (d / "y.safetensors").string()) == 0);
  TensorFile y = load_safetensors((d / "y.safetensors").string());
  CHECK(testing::max_relative_error(y.get("logits"), f.get("logits")) <= 1e-4);
  fs::remove_all(d);
}

TEST_CASE("moeseg infer reproduces PyTorch's MoE logits and gate weights") {
  TensorFile experts = load_safetensors(fixture("moe_experts"));
  TensorFile gate = load_safetensors(fixture("moe_simple"));
  fs::path d = temp_dir("moe");
  auto weights = testing::tensors_with_prefix(experts, "expert", "expert");
  for (auto& [k, v] : testing::tensors_with_prefix(gate, "sd.")) weights[k] = v;
  save_safetensors((d / "w.safetensors").string(), weights);
  save_safetensors((d / "x.safetensors").string(), {{"input", experts.get("x")}});
  std::ofstream((d / "moe.json").string())
      << R"({"type": "moe", "num_classes": 5, "gate": "simple", "with_conv": false, "tap": "frrnlayer4",
            "input_size": [32, 48], "experts": [{"model": "frrn_a", "width": 0.0625}, {"model": "frrn_a", "width": 0.0625}]})";
  REQUIRE(run("infer --config " + (d / "moe.json").string() + " --weights " + (d / "w.safetensors").string() +
              " --input " + (d / "x.safetensors").string() + " --out " + (d / "y.safetensors").string()) == 0);
  TensorFile y = load_safetensors((d / "y.safetensors").string());
  CHECK(testing::max_relative_error(y.get("logits"), gate.get("logits")) <= 1e-4);
  CHECK(testing::max_relative_error(y.get("gate"), gate.get("gate")) <= 1e-4);
  // The experts' logits it writes are the ones combined: torch's MoE logits are the
  // gate-weighted sum of them (simple gate, no final conv).
  REQUIRE(y.has("expert1_logits"));
  REQUIRE(y.has("expert2_logits"));
  const Tensor e1 = y.get("expert1_logits").to(DType::Float64).contiguous(), e2 = y.get("expert2_logits").to(DType::Float64).contiguous();
  const Tensor w = gate.get("gate").to(DType::Float64).contiguous();   // [B, 1, 2]
  REQUIRE(e1.dim() == 4);
  REQUIRE(e1.sizes() == e2.sizes());
  REQUIRE(w.shape() == Shape{e1.size(0), 1, 2});
  const int64_t B = e1.size(0), per = e1.numel() / B;
  std::vector<double> sum(static_cast<size_t>(e1.numel()));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < per; ++k)
      sum[static_cast<size_t>(b * per + k)] = w.data<double>()[2 * b] * e1.data<double>()[b * per + k] +
                                              w.data<double>()[2 * b + 1] * e2.data<double>()[b * per + k];
  CHECK(testing::max_relative_error(Tensor::from_vector(sum, e1.sizes()), gate.get("logits")) <= 1e-4);
  // ... and not an expert's logits alone
  CHECK(testing::max_relative_error(e1, gate.get("logits")) > 1e-2);
  fs::remove_all(d);
}

TEST_CASE("moeseg infer fails with one clear line on a missing weights file") {
  fs::path d = temp_dir("bad");
  std::ofstream((d / "model.json").string()) << R"({"model": "frrn_a", "num_classes": 5, "width": 0.125})";
  std::string cmd = std::string(MOESEG_CLI_PATH) + " infer --config " + (d / "model.json").string() +
                    " --weights " + (d / "missing.safetensors").string() + " --input " + (d / "x.safetensors").string() +
                    " --out " + (d / "y.safetensors").string() + " 2> " + (d / "err.txt").string() + " > /dev/null";
  CHECK(std::system(cmd.c_str()) != 0);
  std::ifstream err((d / "err.txt").string());
  std::string line, rest;
  std::getline(err, line);
  CHECK(line.find("missing.safetensors") != std::string::npos);
  int more = 0;
  while (std::getline(err, rest)) more += !rest.empty();
  CHECK(more == 0);   // one line, no stack of messages
  CHECK(!fs::exists(d / "y.safetensors"));
  fs::remove_all(d);
}
