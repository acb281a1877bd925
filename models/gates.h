// The gates of the model-level MoE (spec/reference-systems.md §1.5; reference:
// KASTEL-MobilityLab/mixtures-of-experts models/frrn_moe.py, models/gate.py). A gate reads the
// experts' tap feature maps concatenated on channels and returns softmax weights over experts.
//   SimpleGate:    conv1 (3x3, pad 1, -> 1 channel, bias) -> ReLU -> [adaptive avg pool] ->
//                  flatten -> fc1 (-> 128) -> ReLU -> fc2 (-> experts) -> softmax over experts.
//                  Without the pool (the paper's gate) fc1 is tied to one tap size (30x40 =
//                  1200 for FRRN at 480x640); a forward at another size fails naming both flatten
//                  sizes. With pool_h/pool_w set, the map is pooled to that grid first, so any
//                  input size works (the resolution-independent variant).
//   ClasswiseGate: one SimpleGate per class, children gates.0 .. gates.<C-1> (ModuleList names).
// Both return weights [B, G, E]: G = 1 (simple) or the number of classes (class-wise), E experts;
// weight [b, g, e] multiplies class g (all classes when G = 1) of expert e's logits.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/conv2d_layer.h"
#include "layers/linear_layer.h"
#include "layers/module.h"

namespace moeseg {

// The gate kinds; configs name them "simple" and "classwise" (parse_gate_type / to_string).
enum class GateType { Simple, Classwise };
// `where` names the source and key, e.g. "model config: key 'gate'": an unknown name throws
// "<where> is 'softmax' (known: simple, classwise)".
GateType parse_gate_type(const std::string& name, const std::string& where);
std::string to_string(GateType t);   // "simple" | "classwise", as configs spell them

struct GateConfig {
  GateType type = GateType::Simple;
  int64_t in_channels = 768;     // channels of the concatenated taps
  int64_t in_h = 30, in_w = 40;  // tap size the fixed-size gate is built for
  int64_t pool_h = 0, pool_w = 0;  // > 0: adaptive average pooling to this grid before the flatten
  int64_t fc_features = 128;
  int64_t num_experts = 2;
  int64_t num_classes = 38;      // class-wise only
  uint64_t seed = 0;
};

class Gate : public Module {
 public:
  using Module::Module;
  // x: concatenated taps [B, in_channels, h, w] -> logits [B, G, E] (before the softmax over
  // experts, which the MoE fuses with the combination: kernels/gate_combine.h).
  virtual Tensor logits(const Tensor& x) = 0;
  // softmax over experts of logits(x): weights [B, G, E].
  Tensor weights(const Tensor& x);
  Tensor forward(const Tensor& x) override { return weights(x); }
  virtual int64_t groups() const = 0;   // G
};

class SimpleGate : public Gate {
 public:
  SimpleGate(const GateConfig& cfg, Generator& gen);
  Tensor logits(const Tensor& x) override;   // [B, 1, E]
  int64_t groups() const override { return 1; }
  // fc2's output [B, E]; its softmax over E is what the reference's GateLayer_simple returns.
  Tensor expert_logits(const Tensor& x);
  int64_t in_features() const { return in_features_; }

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<Linear> fc1, fc2;

 private:
  GateConfig cfg_;
  int64_t in_features_;
};

class ClasswiseGate : public Gate {
 public:
  ClasswiseGate(const GateConfig& cfg, Generator& gen);
  Tensor logits(const Tensor& x) override;   // [B, C, E]: one simple gate per class
  int64_t groups() const override { return static_cast<int64_t>(gates.size()); }
  std::vector<std::shared_ptr<SimpleGate>> gates;
};

// A SimpleGate or a ClasswiseGate, as cfg.type says.
std::shared_ptr<Gate> make_gate(const GateConfig& cfg);

}  // namespace moeseg
