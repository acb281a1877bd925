// Reverse-mode automatic differentiation over a dynamic graph.
// Each differentiable op that sees an input with requires_grad builds a Node holding what its
// backward needs and edges to the nodes of its inputs. Tensor::backward() walks the graph once
// in reverse topological order, accumulates gradients of leaves into .grad and frees every
// node's saved tensors (the graph is freed after backward unless retain_graph is set).
// Ops write a Node subclass next to their forward (flashlight's shape), e.g. kernels/relu.cpp.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

// Disables graph recording in this thread for its lifetime (evaluation, optimiser steps).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};

// Re-enables recording inside a no-grad region (e.g. an attack computing input gradients).
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
 private:
  bool prev_;
};

bool grad_mode_enabled();

namespace autograd {

struct Node;

struct Edge {
  std::shared_ptr<Node> fn;   // null: that input needs no gradient
};

struct Node {
  virtual ~Node() = default;
  // Gradient of the loss w.r.t. each input, given the gradient w.r.t. the single output.
  // Entries may be undefined tensors where an input needs no gradient.
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  virtual std::string name() const = 0;
  // Frees saved tensors; called after this node ran unless the graph is retained.
  virtual void release() {}

  std::vector<Edge> next;
  bool released = false;
  uint64_t sequence = 0;   // creation order; later nodes run first among ready ones
};

// Accumulates into a leaf's .grad (the sink of every path).
struct AccumulateGrad final : Node {
  std::weak_ptr<TensorImpl> leaf;
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& t) : leaf(t) {}
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  std::string name() const override { return "AccumulateGrad"; }
};

// True when grad mode is on and any input requires grad: the op must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Wires node->next to the inputs and makes `output` carry the node. Undefined inputs are allowed.
void connect(const std::shared_ptr<Node>& node, std::initializer_list<const Tensor*> inputs, Tensor& output);
void connect(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs, Tensor& output);

// Runs backward from `root` with gradient `grad`.
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// Gradients of `output` w.r.t. `inputs` without touching any .grad (used by attacks and tests).
std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output = Tensor(),
                         bool retain_graph = false);

// A saved tensor plus the version it had when saved, so that an in-place write between forward
// and backward is reported instead of silently producing a wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  // Ops that save their own output must save out.detach(): saving `out` itself would make a
  // reference cycle (out -> grad_fn -> out) that leaks when backward never runs.
  explicit SavedTensor(const Tensor& t) : t_(t), version_(t.defined() ? t.version() : 0) {}
  Tensor get(const char* op) const;
  void reset() { t_ = Tensor(); }
  bool defined() const { return t_.defined(); }
 private:
  Tensor t_;
  uint64_t version_ = 0;
};

}  // namespace autograd
}  // namespace moeseg
