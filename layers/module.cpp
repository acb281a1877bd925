// Module tree: registration, dotted-name traversal, modes, freezing and state_dict I/O.
// See module.h for the contract; tests/layers/test_module.cpp checks the PyTorch naming.
#include "layers/module.h"

#include <algorithm>
#include <sstream>

#include "core/autograd.h"
#include "core/safetensors.h"
#include "core/value_checks.h"

namespace moeseg {

Tensor Module::forward(const Tensor&) {
  MOESEG_FAIL("Module ", type_name_, ": forward() is not implemented for this module");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  MOESEG_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": ", what, " name '", name,
               "' must be non-empty and contain no '.'");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  MOESEG_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), type_name_, ": cannot register ", what,
               " '", name, "': the name is already used by a parameter, buffer or child module");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "parameter");
  check_defined(t, "register_parameter", name.c_str());
  MOESEG_CHECK(is_floating(t.dtype()), type_name_, ": parameter '", name, "' must be a float tensor, got ", t.str());
  MOESEG_CHECK(t.is_leaf(), type_name_, ": parameter '", name, "' must be a leaf tensor (detach() it first)");
  t.set_requires_grad(requires_grad && !frozen_);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name, "buffer");
  check_defined(t, "register_buffer", name.c_str());
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name, "module");
  MOESEG_CHECK(m != nullptr, type_name_, ": child module '", name, "' is null");
  MOESEG_CHECK(m.get() != this, type_name_, ": a module cannot be its own child ('", name, "')");
  children_.emplace_back(name, std::move(m));
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  std::string known;
  for (const auto& [n, m] : children_) {
    if (n == name) return m;
    known += (known.empty() ? "" : ", ") + n;
  }
  MOESEG_FAIL(type_name_, ": no child module '", name, "' (children: ", known.empty() ? "none" : known, ")");
}

bool Module::accept_replacement(const std::string&, const std::shared_ptr<Module>&) { return false; }

void Module::replace_child(const std::string& name, std::shared_ptr<Module> m) {
  MOESEG_CHECK(m != nullptr, type_name_, ": the replacement for child '", name, "' is null");
  MOESEG_CHECK(m.get() != this, type_name_, ": a module cannot be its own child ('", name, "')");
  for (auto& [n, c] : children_) {
    if (n != name) continue;
    MOESEG_CHECK(accept_replacement(name, m), type_name_, ": child '", name, "' (", c->type_name(),
                 ") cannot be replaced: ", type_name_, " does not run a replaced child in its place");
    c = std::move(m);
    return;
  }
  child(name);   // throws naming the known children
}

void Module::collect_named(bool params, const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out,
                           std::vector<const TensorImpl*>* seen) const {
  for (const auto& [name, t] : params ? params_ : buffers_) {
    if (seen) {
      if (std::find(seen->begin(), seen->end(), t.impl_ptr().get()) != seen->end()) continue;
      seen->push_back(t.impl_ptr().get());
    }
    out.emplace_back(prefix + name, t);
  }
  for (const auto& [name, m] : children_) m->collect_named(params, prefix + name + ".", out, seen);
}

namespace {
std::string with_dot(const std::string& prefix) { return prefix.empty() ? prefix : prefix + "."; }
}  // namespace

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::vector<const TensorImpl*> seen;
  collect_named(true, with_dot(prefix), out, &seen);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::vector<const TensorImpl*> seen;
  collect_named(false, with_dot(prefix), out, &seen);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules(const std::string& prefix) {
  // The root is returned through a non-owning shared_ptr: Module is not required to be owned by
  // a shared_ptr (a model may live on the stack).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  out.emplace_back(prefix, std::shared_ptr<Module>(std::shared_ptr<Module>(), this));
  for (const auto& [name, m] : children_) {
    auto sub = m->named_modules(prefix.empty() ? name : prefix + "." + name);
    sub.front().second = m;
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  const bool effective = on && !(frozen_ && keep_eval_when_frozen_);
  training_ = effective;
  for (auto& [name, m] : children_) m->train(effective);
}

void Module::set_frozen_recursive(bool on) {
  frozen_ = on;
  for (auto& [name, t] : params_) t.set_requires_grad(!on);
  for (auto& [name, m] : children_) m->set_frozen_recursive(on);
}

void Module::freeze() {
  set_frozen_recursive(true);
  train(false);
}

void Module::unfreeze() { set_frozen_recursive(false); }

void Module::to(Device d) {
  for (auto& [name, t] : params_) t.move_storage_to(d);
  for (auto& [name, t] : buffers_) t.move_storage_to(d);
  for (auto& [name, m] : children_) m->to(d);
}

void Module::to(DType dtype) {
  for (auto& [name, t] : params_) t.convert_storage_to(dtype);
  for (auto& [name, t] : buffers_)
    if (is_floating(t.dtype())) t.convert_storage_to(dtype);
  for (auto& [name, m] : children_) m->to(dtype);
}

Device Module::device() const {
  if (!params_.empty()) return params_.front().second.device();
  if (!buffers_.empty()) return buffers_.front().second.device();
  for (auto& [name, m] : children_) {
    std::vector<std::pair<std::string, Tensor>> any;
    m->collect_named(true, "", any, nullptr);
    m->collect_named(false, "", any, nullptr);
    if (!any.empty()) return any.front().second.device();
  }
  return Device{};
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> all;
  collect_named(true, "", all, nullptr);
  collect_named(false, "", all, nullptr);
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : all) out.emplace(name, t.detach());
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  std::vector<std::pair<std::string, Tensor>> own;
  collect_named(true, "", own, nullptr);
  collect_named(false, "", own, nullptr);

  std::vector<std::string> missing, unexpected, misshaped, bad_dtype;
  for (const auto& [name, t] : own) {
    auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    if (src.sizes() != t.sizes())
      misshaped.push_back(name + " (expected " + shape_str(t.sizes()) + ", got " + shape_str(src.sizes()) + ")");
    else if (is_floating(src.dtype()) != is_floating(t.dtype()))
      bad_dtype.push_back(name + " (expected " + dtype_name(t.dtype()) + ", got " + dtype_name(src.dtype()) + ")");
  }
  for (const auto& [name, t] : state)
    if (std::none_of(own.begin(), own.end(), [&](const auto& e) { return e.first == name; }))
      unexpected.push_back(name);

  const bool fail = (strict && (!missing.empty() || !unexpected.empty())) || !misshaped.empty() || !bad_dtype.empty();
  if (fail) {
    std::ostringstream os;
    os << "load_state_dict (" << type_name_ << "): the state does not match the module:";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "\n  " << what << " (" << v.size() << "):";
      for (auto& s : v) os << "\n    " << s;
    };
    if (strict) list("missing", missing);
    if (strict) list("unexpected", unexpected);
    list("mis-shaped", misshaped);
    list("wrong dtype kind", bad_dtype);
    MOESEG_FAIL(os.str());
  }

  // NaN/Inf weights would load, run and evaluate to garbage without a word; every weight load
  // (Module::load, models/registry.h load_checkpoint, training checkpoints) comes through here.
  std::vector<std::string> non_finite;
  for (const auto& [name, t] : own) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    const std::string s = non_finite_summary(it->second);
    if (!s.empty()) non_finite.push_back(name + ": " + s);
  }
  if (!non_finite.empty()) {
    std::ostringstream os;
    os << "load_state_dict (" << type_name_ << "): " << non_finite.size()
       << " tensor(s) hold NaN or Inf values (corrupt or diverged weights), refused:";
    for (auto& s : non_finite) os << "\n    " << s;
    MOESEG_FAIL(os.str());
  }

  NoGradGuard ng;
  for (auto& [name, t] : own) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    t.copy_(it->second);
    t.bump_version();
  }
}

void Module::save(const std::string& path) const {
  std::map<std::string, Tensor> st;
  for (auto& [name, t] : state_dict()) st.emplace(name, t.to(Device{}).contiguous());
  save_safetensors(path, st, {{"format", "pt"}, {"writer", "moeseg"}});
}

void Module::load(const std::string& path, bool strict) {
  TensorFile f = load_safetensors(path);
  try {
    load_state_dict(f.tensors, strict);
  } catch (const Error& e) {
    MOESEG_FAIL(path, ": ", e.what());
  }
}

}  // namespace moeseg
