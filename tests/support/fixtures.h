// PyTorch fixtures: tests/fixtures/ops/<case>.safetensors files written by
// tools/fixtures/make_op_fixtures.py (torch from PyPI; the files are committed, CI never runs torch).
// A fixture holds inputs "in.<k>" (float64 holding float32-representable values, or int64),
// the op's parameters (metadata "params", JSON), torch's float64 output "out", the upstream
// gradient "grad_out" and torch's gradients "grad.<k>" for the differentiable inputs.
// Other named outputs (e.g. topk indices) are stored as "out.<name>".
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "support/gradcheck.h"

namespace moeseg::testing {

struct Fixture {
  std::string name;
  TensorFile file;
  nlohmann::json params;   // metadata["params"] parsed

  const Tensor& tensor(const std::string& key) const { return file.get(key, name); }
  bool has(const std::string& key) const { return file.has(key); }
};

// Loads tests/fixtures/ops/<name>.safetensors; throws naming the path if it is missing.
Fixture load_fixture(const std::string& name);

// The inputs converted to `dt` (integer inputs unchanged); those that have a "grad.<k>" entry
// get requires_grad. Keys are without the "in." prefix.
std::map<std::string, Tensor> fixture_inputs(const Fixture& f, DType dt);

// Default tolerances for comparing against torch's float64 results.
Tolerance fixture_tolerance(DType dt);

// Compares `out` with "out", then runs backward with "grad_out" and compares each input's
// gradient with "grad.<k>". Registers `op` as having a torch test. Returns true on success.
bool check_fixture(const std::string& op, const Fixture& f, std::map<std::string, Tensor>& inputs, const Tensor& out,
                   Tolerance tol);

// Runs the whole thing for float32 and float64: build(inputs, fixture) -> output.
void run_fixture(const std::string& op, const std::string& case_name,
                 const std::function<Tensor(std::map<std::string, Tensor>&, const Fixture&)>& build);

}  // namespace moeseg::testing
