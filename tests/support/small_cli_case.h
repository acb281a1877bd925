// The small model case the tensor-form CLI tests share (`moeseg attack`, `moeseg uncertainty`):
// one FRRN-A of width 1/16 with 5 classes, or an MoE of two of them with a simple gate, with the
// committed fixture weights (tests/fixtures/models/moe_experts, moe_simple), written into a
// folder as model.json, w.safetensors, x.safetensors ("input": image 0 of the fixture) and
// y.safetensors ("labels"); and two runners of the CLI binary: stderr into a file, or stdout and
// stderr together returned as text.
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "core/safetensors.h"
#include "tests/support/gradcheck.h"   // tensors_with_prefix
#include "tests/support/read_text.h"
#include "tests/support/temp_dir.h"

namespace moeseg::testing {

inline std::string fixture_path(const std::string& rel) { return std::string(MOESEG_FIXTURE_DIR) + "/" + rel; }

// Runs `moeseg ARGS`, stdout dropped, stderr into err_file; returns the shell's status.
inline int run_cli_quiet(const std::string& args, const std::string& err_file) {
  const std::string cmd = std::string(MOESEG_CLI_PATH) + " " + args + " > /dev/null 2> " + err_file;
  return std::system(cmd.c_str());
}

// Runs `moeseg ARGS`, stdout and stderr together; returns what it printed, its status in `rc`.
inline std::string run_cli_capture(const std::string& args, int& rc) {
  static int counter = 0;
  const std::filesystem::path out = std::filesystem::temp_directory_path() /
      ("moeseg_cli_out_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  rc = std::system((std::string(MOESEG_CLI_PATH) + " " + args + " > " + out.string() + " 2>&1").c_str());
  std::string text = read_text(out);
  std::filesystem::remove(out);
  return text;
}

inline void write_small_cli_case(const TempDir& d, bool moe) {
  TensorFile ex = load_safetensors(fixture_path("models/moe_experts.safetensors"));
  std::map<std::string, Tensor> w;
  if (moe) {
    w = tensors_with_prefix(ex, "expert", "expert");
    for (auto& [k, v] : tensors_with_prefix(load_safetensors(fixture_path("models/moe_simple.safetensors")), "sd."))
      w[k] = v;
    std::ofstream(d.str("model.json")) << R"({"type": "moe", "num_classes": 5, "gate": "simple", "input_size": [32, 48],
      "experts": [{"model": "frrn_a", "width": 0.0625}, {"model": "frrn_a", "width": 0.0625}]})";
  } else {
    w = tensors_with_prefix(ex, "expert1.");
    std::ofstream(d.str("model.json")) << R"({"model": "frrn_a", "num_classes": 5, "width": 0.0625})";
  }
  save_safetensors(d.str("w.safetensors"), w);
  save_safetensors(d.str("x.safetensors"), {{"input", ex.get("x").slice(0, 0, 1).contiguous()}});
  save_safetensors(d.str("y.safetensors"), {{"labels", ex.get("target").slice(0, 0, 1).contiguous()}});
}

}  // namespace moeseg::testing
