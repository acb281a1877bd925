// SGD, Adam and AdamW with PyTorch's exact update rules (torch/optim/sgd.py and adam.py,
// _single_tensor_* paths): the state, the step counts and the hyper-parameters live here; the
// arithmetic of one update is kernels/optimizer_steps.h (CPU loop or one CUDA launch), whose
// header states the precision against torch.
#include "training/optimizer.h"

#include <sstream>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/optimizer_steps.h"

namespace moeseg {

namespace {

// Gives the gradient in the parameter's layout (contiguous, same dtype) or throws naming it.
Tensor checked_grad(const std::string& opt, const std::string& name, const Tensor& p, const Tensor& g) {
  MOESEG_CHECK(g.sizes() == p.sizes() && g.dtype() == p.dtype(), opt, ": gradient of '", name, "' is ", g.str(),
               " but the parameter is ", p.str());
  check_same_device(p, g, opt.c_str());
  return g.is_contiguous() ? g : g.contiguous();
}

}  // namespace

// ---- base -------------------------------------------------------------------------------------

Optimizer::Optimizer(NamedParameters params, double lr, std::string type_name)
    : lr_(lr), params_(std::move(params)), type_name_(std::move(type_name)) {
  MOESEG_CHECK(lr >= 0, type_name_, ": learning rate must be >= 0, got ", lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    check_defined(p, type_name_.c_str(), name.c_str());
    MOESEG_CHECK(is_floating(p.dtype()) && p.is_leaf(), type_name_, ": parameter '", name,
                 "' must be a float leaf tensor, got ", p.str());
    MOESEG_CHECK(p.is_contiguous(), type_name_, ": parameter '", name, "' must be contiguous, got ", p.str());
    for (size_t j = 0; j < i; ++j)
      MOESEG_CHECK(params_[j].first != name, type_name_, ": parameter name '", name, "' appears twice");
  }
  state_.resize(params_.size());
  steps_.assign(params_.size(), 0);
}

void Optimizer::set_lr(double lr) {
  MOESEG_CHECK(lr >= 0, type_name_, ": learning rate must be >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::step() {
  NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    g = checked_grad(type_name_, name, p, g);
    update(p, g, state_[i], ++steps_[i]);
    p.bump_version();
  }
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  out["hparam.lr"] = Tensor::scalar(lr_, DType::Float64);
  for (auto& [k, v] : hparams()) out["hparam." + k] = Tensor::scalar(v, DType::Float64);
  for (size_t i = 0; i < params_.size(); ++i) {
    if (steps_[i] == 0) continue;
    const std::string prefix = "state." + params_[i].first + ".";
    out[prefix + "step"] = Tensor::scalar(static_cast<double>(steps_[i]), DType::Int64);
    for (auto& [k, v] : state_[i]) out[prefix + k] = v.clone();
  }
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::vector<std::string> problems;
  const auto hp = hparams();
  const auto buffers = buffer_names();
  auto param_index = [&](const std::string& name) -> int64_t {
    for (size_t i = 0; i < params_.size(); ++i)
      if (params_[i].first == name) return static_cast<int64_t>(i);
    return -1;
  };
  if (!state.count("hparam.lr")) problems.push_back("hparam.lr: missing");
  for (auto& [k, v] : hp)
    if (!state.count("hparam." + k)) problems.push_back("hparam." + k + ": missing");

  // Parse into fresh containers first, so that a bad state leaves the optimiser as it was.
  std::vector<std::map<std::string, Tensor>> new_state(params_.size());
  std::vector<int64_t> new_steps(params_.size(), 0);
  std::map<std::string, double> new_hp;
  for (const auto& [key, t] : state) {
    if (key.rfind("hparam.", 0) == 0) {
      const std::string h = key.substr(7);
      if (h != "lr" && !hp.count(h)) problems.push_back(key + ": unknown hyper-parameter for " + type_name_);
      else if (t.numel() != 1) problems.push_back(key + ": expected one value, got " + t.str());
      else new_hp[h] = t.item();
      continue;
    }
    const size_t dot = key.rfind('.');
    if (key.rfind("state.", 0) != 0 || dot == std::string::npos || dot <= 6) {
      problems.push_back(key + ": unexpected key");
      continue;
    }
    const std::string pname = key.substr(6, dot - 6), buf = key.substr(dot + 1);
    const int64_t idx = param_index(pname);
    if (idx < 0) {
      problems.push_back(key + ": no parameter named '" + pname + "'");
      continue;
    }
    const Tensor& p = params_[idx].second;
    if (buf == "step") {
      if (t.numel() != 1 || t.item() < 1) problems.push_back(key + ": expected a positive count, got " + t.str());
      else new_steps[idx] = static_cast<int64_t>(t.item());
    } else if (std::find(buffers.begin(), buffers.end(), buf) == buffers.end()) {
      problems.push_back(key + ": unknown buffer '" + buf + "' for " + type_name_);
    } else if (t.sizes() != p.sizes()) {
      problems.push_back(key + ": shape " + shape_str(t.sizes()) + " but the parameter has " + shape_str(p.sizes()));
    } else {
      new_state[idx][buf] = t.to(p.dtype()).to(p.device()).contiguous().clone();
    }
  }
  for (size_t i = 0; i < params_.size(); ++i)
    if (new_steps[i] == 0 && !new_state[i].empty())
      problems.push_back("state." + params_[i].first + ".step: missing although buffers are present");
  if (!problems.empty()) {
    std::ostringstream os;
    os << type_name_ << ".load_state_dict: " << problems.size() << " problem(s):";
    for (auto& s : problems) os << "\n  " << s;
    MOESEG_FAIL(os.str());
  }
  lr_ = new_hp.at("lr");
  for (auto& [k, v] : new_hp)
    if (k != "lr") set_hparam(k, v);
  state_ = std::move(new_state);
  steps_ = std::move(new_steps);
}

// ---- SGD --------------------------------------------------------------------------------------

SGD::SGD(NamedParameters params, const SGDOptions& opt) : Optimizer(std::move(params), opt.lr, "SGD"), opt_(opt) {
  MOESEG_CHECK(opt.momentum >= 0 && opt.weight_decay >= 0, "SGD: momentum=", opt.momentum,
               " and weight_decay=", opt.weight_decay, " must be >= 0");
  MOESEG_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
               "SGD: Nesterov momentum requires a momentum > 0 and zero dampening, got momentum=", opt.momentum,
               " dampening=", opt.dampening);
}

std::map<std::string, double> SGD::hparams() const {
  return {{"momentum", opt_.momentum},
          {"dampening", opt_.dampening},
          {"weight_decay", opt_.weight_decay},
          {"nesterov", opt_.nesterov ? 1.0 : 0.0}};
}

void SGD::set_hparam(const std::string& name, double v) {
  if (name == "momentum") opt_.momentum = v;
  else if (name == "dampening") opt_.dampening = v;
  else if (name == "weight_decay") opt_.weight_decay = v;
  else if (name == "nesterov") opt_.nesterov = v != 0.0;
}

void SGD::update(const Tensor& param, const Tensor& grad, std::map<std::string, Tensor>& state, int64_t) {
  opt_.lr = lr_;
  const bool use_momentum = opt_.momentum != 0.0;
  const bool first = use_momentum && !state.count("momentum_buffer");
  if (first) state["momentum_buffer"] = Tensor::empty(param.sizes(), param.dtype(), param.device());
  sgd_step_(param, grad, use_momentum ? state["momentum_buffer"] : Tensor(),
            SgdStep{lr_, opt_.momentum, opt_.dampening, opt_.weight_decay, opt_.nesterov, first});
}

// ---- Adam / AdamW -----------------------------------------------------------------------------

Adam::Adam(NamedParameters params, const AdamOptions& opt) : Adam(std::move(params), opt, false, "Adam") {}

Adam::Adam(NamedParameters params, const AdamOptions& opt, bool decoupled, const char* type_name)
    : Optimizer(std::move(params), opt.lr, type_name), opt_(opt), decoupled_(decoupled) {
  MOESEG_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1, type_name, ": betas (",
               opt.beta1, ", ", opt.beta2, ") must be in [0, 1)");
  MOESEG_CHECK(opt.eps >= 0 && opt.weight_decay >= 0, type_name, ": eps=", opt.eps, " and weight_decay=",
               opt.weight_decay, " must be >= 0");
}

std::map<std::string, double> Adam::hparams() const {
  return {{"beta1", opt_.beta1},
          {"beta2", opt_.beta2},
          {"eps", opt_.eps},
          {"weight_decay", opt_.weight_decay},
          {"amsgrad", opt_.amsgrad ? 1.0 : 0.0}};
}

void Adam::set_hparam(const std::string& name, double v) {
  if (name == "beta1") opt_.beta1 = v;
  else if (name == "beta2") opt_.beta2 = v;
  else if (name == "eps") opt_.eps = v;
  else if (name == "weight_decay") opt_.weight_decay = v;
  else if (name == "amsgrad") opt_.amsgrad = v != 0.0;
}

void Adam::update(const Tensor& param, const Tensor& grad, std::map<std::string, Tensor>& state, int64_t step) {
  opt_.lr = lr_;
  if (!state.count("exp_avg")) {
    state["exp_avg"] = Tensor::zeros(param.sizes(), param.dtype(), param.device());
    state["exp_avg_sq"] = Tensor::zeros(param.sizes(), param.dtype(), param.device());
  }
  if (opt_.amsgrad && !state.count("max_exp_avg_sq"))
    state["max_exp_avg_sq"] = Tensor::zeros(param.sizes(), param.dtype(), param.device());
  adam_step_(param, grad, state["exp_avg"], state["exp_avg_sq"], opt_.amsgrad ? state["max_exp_avg_sq"] : Tensor(),
             AdamStep{step, lr_, opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay, decoupled_});
}

}  // namespace moeseg
