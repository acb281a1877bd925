// The backward engine: dependency counting, a ready queue ordered by creation (latest first),
// gradient accumulation per node, and freeing of saved tensors as nodes finish.
#include "core/autograd.h"

#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/core_ops.h"

namespace moeseg {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<uint64_t> g_sequence{0};
}  // namespace

NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { g_grad_enabled = prev_; }
bool grad_mode_enabled() { return g_grad_enabled; }

namespace autograd {

std::vector<Tensor> AccumulateGrad::backward(const Tensor& grad_output) {
  auto t = leaf.lock();
  if (!t) return {};
  if (!t->grad) {
    // Own the memory: grad_output may alias a buffer another node still uses.
    t->grad = grad_output.detach().clone().impl_ptr();
  } else {
    Tensor g(t->grad);
    NoGradGuard ng;
    core_ops().add_(g, grad_output);
  }
  return {};
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

static Edge edge_for(const Tensor* t) {
  if (!t || !t->defined() || !t->requires_grad()) return {};
  if (t->grad_fn()) return {t->grad_fn()};
  return {std::make_shared<AccumulateGrad>(t->impl_ptr())};
}

void connect(const std::shared_ptr<Node>& node, std::initializer_list<const Tensor*> inputs, Tensor& output) {
  node->next.clear();
  for (const Tensor* t : inputs) node->next.push_back(edge_for(t));
  node->sequence = g_sequence++;
  output.impl().grad_fn = node;
  output.impl().requires_grad = true;
}

void connect(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs, Tensor& output) {
  node->next.clear();
  for (const Tensor& t : inputs) node->next.push_back(edge_for(&t));
  node->sequence = g_sequence++;
  output.impl().grad_fn = node;
  output.impl().requires_grad = true;
}

Tensor SavedTensor::get(const char* op) const {
  MOESEG_CHECK(t_.defined(), op, ": saved tensors were already freed; call backward(retain_graph=true) "
               "to run backward twice through the same graph");
  MOESEG_CHECK(t_.version() == version_, op, ": a tensor saved for backward (", t_.str(),
               ") was modified in place after it was saved");
  return t_;
}

namespace {

struct ByLatest {
  bool operator()(const Node* a, const Node* b) const { return a->sequence < b->sequence; }
};

// Runs the graph rooted at root_fn. `capture` (optional) maps AccumulateGrad targets to output slots.
void execute(const std::shared_ptr<Node>& root_fn, const Tensor& grad, bool retain_graph,
             const std::unordered_map<const TensorImpl*, size_t>* capture, std::vector<Tensor>* captured) {
  // Count how many edges point at each node, so a node runs once all its gradients arrived.
  std::unordered_map<Node*, int> deps;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack{root_fn.get()};
  seen.insert(root_fn.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& e : n->next) {
      if (!e.fn) continue;
      deps[e.fn.get()]++;
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }
  std::unordered_map<Node*, Tensor> pending;
  std::priority_queue<Node*, std::vector<Node*>, ByLatest> ready;
  pending[root_fn.get()] = grad;
  ready.push(root_fn.get());
  // Keeps nodes alive while running even if a tensor holding them dies meanwhile.
  std::vector<std::shared_ptr<Node>> keep{root_fn};
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    Tensor g = std::move(pending[n]);
    pending.erase(n);
    std::vector<Tensor> grads;
    auto* acc = dynamic_cast<AccumulateGrad*>(n);
    if (acc && capture) {
      auto leaf = acc->leaf.lock();
      auto it = leaf ? capture->find(leaf.get()) : capture->end();
      if (it != capture->end()) {
        Tensor& slot = (*captured)[it->second];
        if (!slot.defined()) slot = g.detach().clone();
        else { NoGradGuard ng; core_ops().add_(slot, g); }
      }
    } else {
      MOESEG_CHECK(!n->released, "backward through ", n->name(), " a second time: the graph was freed; "
                   "pass retain_graph=true to the first backward");
      if (g.defined()) grads = n->backward(g);
      if (!retain_graph) { n->release(); n->released = true; }
    }
    MOESEG_CHECK(grads.empty() || grads.size() == n->next.size(), n->name(), ": backward returned ",
                 grads.size(), " gradients for ", n->next.size(), " inputs");
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* child = n->next[i].fn.get();
      if (!child) continue;
      keep.push_back(n->next[i].fn);
      if (i < grads.size() && grads[i].defined()) {
        auto it = pending.find(child);
        if (it == pending.end() || !it->second.defined()) pending[child] = grads[i];
        else { NoGradGuard ng; it->second = core_ops().add(it->second, grads[i]); }
      } else {
        pending.try_emplace(child);   // keeps an undefined slot so the child still runs once
      }
      if (--deps[child] == 0) ready.push(child);
    }
  }
}

Tensor default_grad(const Tensor& root) {
  MOESEG_CHECK(root.numel() == 1, "backward: output has shape ", shape_str(root.sizes()),
               "; pass a gradient for a non-scalar output");
  return Tensor::ones(root.sizes(), root.dtype(), root.device());
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  MOESEG_CHECK(root.requires_grad(), "backward: tensor ", root.str(), " does not require grad");
  Tensor g = grad.defined() ? grad : default_grad(root);
  MOESEG_CHECK(g.sizes() == root.sizes(), "backward: gradient ", g.str(), " does not match output ", root.str());
  NoGradGuard ng;   // gradients are not differentiated again (no double backward)
  if (!root.grad_fn()) {   // a leaf: its gradient is the seed
    AccumulateGrad(root.impl_ptr()).backward(g);
    return;
  }
  execute(root.grad_fn(), g, retain_graph, nullptr, nullptr);
}

std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output,
                         bool retain_graph) {
  MOESEG_CHECK(output.requires_grad() && output.grad_fn(), "autograd::grad: output ", output.str(),
               " was not computed from tensors that require grad");
  std::unordered_map<const TensorImpl*, size_t> capture;
  for (size_t i = 0; i < inputs.size(); ++i) {
    MOESEG_CHECK(inputs[i].is_leaf() && inputs[i].requires_grad(), "autograd::grad: input ", i,
                 " must be a leaf that requires grad");
    capture[inputs[i].impl_ptr().get()] = i;
  }
  std::vector<Tensor> out(inputs.size());
  Tensor g = grad_output.defined() ? grad_output : default_grad(output);
  NoGradGuard ng;
  execute(output.grad_fn(), g, retain_graph, &capture, &out);
  for (size_t i = 0; i < out.size(); ++i)
    if (!out[i].defined()) out[i] = Tensor::zeros(inputs[i].sizes(), inputs[i].dtype(), inputs[i].device());
  return out;
}

}  // namespace autograd

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  autograd::run_backward(*this, grad, retain_graph);
}

}  // namespace moeseg
