// Loading of the committed PyTorch fixtures and the comparison driver used by the op tests.
#include "support/fixtures.h"

#include <doctest/doctest.h>

namespace moeseg::testing {

Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.name = std::string(MOESEG_FIXTURE_DIR) + "/ops/" + name + ".safetensors";
  f.file = load_safetensors(f.name);
  auto it = f.file.metadata.find("params");
  f.params = it == f.file.metadata.end() ? nlohmann::json::object() : nlohmann::json::parse(it->second);
  return f;
}

std::map<std::string, Tensor> fixture_inputs(const Fixture& f, DType dt) {
  std::map<std::string, Tensor> in;
  for (auto& [key, t] : f.file.tensors) {
    if (key.rfind("in.", 0) != 0) continue;
    std::string k = key.substr(3);
    Tensor v = is_floating(t.dtype()) ? t.to(dt).contiguous() : t;
    if (is_floating(t.dtype())) v = v.detach().clone();   // own storage, safe to mark as leaf
    if (f.has("grad." + k)) v.set_requires_grad(true);
    in[k] = v;
  }
  return in;
}

Tolerance fixture_tolerance(DType dt) { return dt == DType::Float64 ? Tolerance{1e-9, 1e-7} : Tolerance{2e-5, 2e-4}; }

bool check_fixture(const std::string& op, const Fixture& f, std::map<std::string, Tensor>& inputs, const Tensor& out,
                   Tolerance tol) {
  register_op_test(op, "torch");
  const std::string dt = dtype_name(out.dtype());
  bool ok = expect_close(out, f.tensor("out"), tol, f.name + " [" + dt + "]: output");
  std::vector<std::string> keys;
  std::vector<Tensor> wrt;
  for (auto& [k, t] : inputs)
    if (f.has("grad." + k)) { keys.push_back(k); wrt.push_back(t); }
  if (!wrt.empty()) {
    REQUIRE_MESSAGE(out.requires_grad(), f.name << ": output does not require grad");
    std::vector<Tensor> grads = autograd::grad(out, wrt, f.tensor("grad_out").to(out.dtype()));
    for (size_t i = 0; i < keys.size(); ++i)
      ok &= expect_close(grads[i], f.tensor("grad." + keys[i]), tol, f.name + " [" + dt + "]: grad of " + keys[i]);
  }
  record_op_check(op, "torch", ok);
  return ok;
}

void run_fixture(const std::string& op, const std::string& case_name,
                 const std::function<Tensor(std::map<std::string, Tensor>&, const Fixture&)>& build) {
  Fixture f = load_fixture(case_name);
  for (DType dt : {DType::Float32, DType::Float64}) {
    auto inputs = fixture_inputs(f, dt);
    Tensor out = build(inputs, f);
    check_fixture(op, f, inputs, out, fixture_tolerance(dt));
  }
}

}  // namespace moeseg::testing
