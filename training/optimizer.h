// Optimisers over named parameters: SGD (momentum, dampening, Nesterov, weight decay), Adam and
// AdamW, each following PyTorch's update rule (torch.optim, single-tensor implementation) in the
// same order of floating-point operations, so that results agree with torch to rounding.
// Updates run on the CPU under NoGradGuard with plain loops (OpenMP above 32k elements; every
// element is independent, so the result does not depend on the thread count).
// state_dict() holds the hyper-parameters, per-parameter step counts and buffers as tensors
// (safetensors-ready); loading it into a fresh optimiser continues bit-exactly.
// Tested by tests/training/test_optimizer.cpp against torch-made values.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

using NamedParameters = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  Optimizer(NamedParameters params, double lr, std::string type_name);
  virtual ~Optimizer() = default;

  // One update of every parameter that has a gradient; parameters without .grad are skipped
  // (their state and step count untouched), as in PyTorch.
  void step();
  void zero_grad();   // drops every .grad (set_to_none)

  double lr() const { return lr_; }
  void set_lr(double lr);
  const NamedParameters& params() const { return params_; }
  const std::string& type_name() const { return type_name_; }

  // Keys: "hparam.<name>" (float64 scalars) and "state.<param>.<buffer>" (buffers in the
  // parameter's dtype, "step" as an int64 scalar). Loading checks every key and shape and throws
  // one moeseg::Error naming what does not fit; it copies, so the given tensors stay untouched.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  // Updates one parameter in place given its gradient; `state` holds its buffers by name
  // (created on the first call) and `step` its count, already incremented for this update.
  virtual void update(const Tensor& param, const Tensor& grad, std::map<std::string, Tensor>& state,
                      int64_t step) = 0;
  // The hyper-parameters besides lr, for state_dict; set_hparam is their loader.
  virtual std::map<std::string, double> hparams() const = 0;
  virtual void set_hparam(const std::string& name, double value) = 0;
  // Buffer names a parameter's state may hold (for validation on load).
  virtual std::vector<std::string> buffer_names() const = 0;

  double lr_;

 private:
  NamedParameters params_;
  std::string type_name_;
  std::vector<std::map<std::string, Tensor>> state_;   // one per parameter
  std::vector<int64_t> steps_;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// PyTorch's SGD: g = grad + wd * p; buf = g (first step) or momentum * buf + (1 - dampening) * g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g.
class SGD : public Optimizer {
 public:
  SGD(NamedParameters params, const SGDOptions& opt);
  const SGDOptions& options() const { return opt_; }

 protected:
  void update(const Tensor& param, const Tensor& grad, std::map<std::string, Tensor>& state, int64_t step) override;
  std::map<std::string, double> hparams() const override;
  void set_hparam(const std::string& name, double value) override;
  std::vector<std::string> buffer_names() const override { return {"momentum_buffer"}; }

 private:
  SGDOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;   // Adam: L2 added to the gradient; AdamW: decoupled decay
  bool amsgrad = false;
};

// PyTorch's Adam (decoupled = false) and AdamW (decoupled = true):
//   AdamW: p *= 1 - lr * wd            Adam: g = grad + wd * p
//   m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g * g   (amsgrad: vmax = max(vmax, v))
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
class Adam : public Optimizer {
 public:
  Adam(NamedParameters params, const AdamOptions& opt);
  const AdamOptions& options() const { return opt_; }

 protected:
  Adam(NamedParameters params, const AdamOptions& opt, bool decoupled, const char* type_name);
  void update(const Tensor& param, const Tensor& grad, std::map<std::string, Tensor>& state, int64_t step) override;
  std::map<std::string, double> hparams() const override;
  void set_hparam(const std::string& name, double value) override;
  std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}; }

 private:
  AdamOptions opt_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  // PyTorch's AdamW default weight decay is 0.01 (Adam's is 0): pass it explicitly.
  AdamW(NamedParameters params, const AdamOptions& opt) : Adam(std::move(params), opt, true, "AdamW") {}
};

}  // namespace moeseg
