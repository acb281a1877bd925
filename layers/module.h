// Module: the PyTorch-style tree every layer and model is built from. A module owns named
// parameters (trainable tensors), named buffers (state that is saved but not trained, e.g.
// BatchNorm's running statistics) and named child modules. Names compose with dots exactly like
// PyTorch's state_dict ("layer1.0.conv1.weight", "bn.running_mean"), so weights move both ways
// through safetensors files.
// Tested by tests/layers/test_module.cpp.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The computation; the base class throws (a pure container such as a gate bank has none).
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  const std::string& type_name() const { return type_name_; }

  // ---- registration ----------------------------------------------------------------------
  // Names must be non-empty, contain no '.', and be unique across parameters, buffers and
  // children of this module. The returned handle shares storage with the registered tensor; a
  // layer keeps it as a member. load_state_dict() writes into that storage in place, so such
  // handles stay valid.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // ---- traversal (registration order, depth first, like PyTorch) ------------------------
  // Each parameter once, even if shared by two sub-modules (first name wins), as PyTorch does.
  std::vector<std::pair<std::string, Tensor>> named_parameters(const std::string& prefix = "") const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  // This module first (name "" or prefix), then every descendant.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules(const std::string& prefix = "");
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  std::shared_ptr<Module> child(const std::string& name) const;   // throws naming the known children
  // Puts `m` in the place of the child `name` (same name, so the state-dict prefix stays), for
  // inserting layers into a built network (models/moe_insertion.h). Only where the module
  // accepts it (accept_replacement): a module that calls a child through a typed member must
  // update that member, or its forward would keep running the old child. Refused otherwise,
  // naming this module, the child and the children it can replace.
  void replace_child(const std::string& name, std::shared_ptr<Module> m);
  int64_t num_parameters(bool trainable_only = false) const;

  // ---- modes -----------------------------------------------------------------------------
  // train(on) recurses into the whole sub-tree. A frozen module whose keep_eval_when_frozen flag
  // is set (the default) stays in eval mode (and so does its sub-tree) even when an ancestor
  // switches to train: a frozen pretrained expert inside a mixture-of-experts must keep using its
  // BatchNorm running statistics while the gate is trained, and must not update them.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // requires_grad off for every parameter of the sub-tree, the sub-tree marked frozen and put
  // in eval mode. unfreeze() turns requires_grad back on and clears the marks; it does not
  // change the mode (call train() afterwards as needed).
  void freeze();
  void unfreeze();
  bool is_frozen() const { return frozen_; }
  void set_keep_eval_when_frozen(bool on) { keep_eval_when_frozen_ = on; }
  bool keep_eval_when_frozen() const { return keep_eval_when_frozen_; }

  // Drops every parameter's .grad (PyTorch's set_to_none=True).
  void zero_grad();

  // Moves every parameter and buffer of the sub-tree to `d` in place (handles held by layers stay
  // valid); gradients are dropped. The device of the first parameter or buffer tells where a
  // module lives (CPU for one without any).
  void to(Device d);
  Device device() const;
  // Converts every floating-point parameter and buffer of the sub-tree to `dtype` in place
  // (integer buffers such as num_batches_tracked stay); gradients are dropped. Float64 runs a
  // model on the CPU in double precision: the well-conditioned oracle for parity tests.
  void to(DType dtype);

  // ---- state -----------------------------------------------------------------------------
  // Parameters and buffers by dotted name; the tensors are detached aliases of the module's
  // own storage (no copy), as in PyTorch.
  std::map<std::string, Tensor> state_dict() const;
  // Copies values in place (dtype converted between float types). Checks everything before
  // writing anything: one moeseg::Error lists all missing names, unexpected names (strict only)
  // and mis-shaped names with both shapes. Shape mismatches are errors even when not strict.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);
  void save(const std::string& path) const;                   // safetensors
  void load(const std::string& path, bool strict = true);    // safetensors

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  // Called by replace_child before the swap: a module that can run `m` in the place of child
  // `name` points its own member at it and returns true; the default refuses (false).
  virtual bool accept_replacement(const std::string& name, const std::shared_ptr<Module>& m);

 private:
  void check_new_name(const std::string& name, const char* what) const;
  void set_frozen_recursive(bool on);
  void collect_named(bool params, const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out,
                     std::vector<const TensorImpl*>* seen) const;

  std::string type_name_;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  bool frozen_ = false;
  bool keep_eval_when_frozen_ = true;
};

}  // namespace moeseg
