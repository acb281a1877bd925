// Per-pixel uncertainty measures of MoEs, ensembles and single models (reference §1.11 of
// spec/reference-systems.md), from the softmax outputs p_m [N, C, H, W] of M members and, for the
// gate-weighted mixture, the gate g [N, G, E]. CPU tensors: float64 loops over contiguous data
// (the oracle of the numpy fixtures). CUDA tensors: the kernels of kernels/uncertainty_measures.h
// (float32 probabilities, double arithmetic), results left on the device.
//
//   mixture        p̄_c = Σ_m w_m p_m,c   (w_m = 1/M, or the gate: p̄_c = Σ_e g_{c,e} p_e,c, G = 1 or
//                  C; with a class-wise gate the result is renormalised over c to sum to 1)
//   predicted      ĉ = argmax_c p̄_c (first maximum)
//   PE             H[p̄] = −Σ_c p̄_c log p̄_c                       (nats; normalised: PE / log C)
//   MI             H[p̄] − (1/M) Σ_m H[p_m]  (unweighted mean of the members' entropies, also for
//                  the weighted mixture, as the reference codes it)  (nats; normalised: MI / log C)
//   EV ("EVU")     s = std_m(p_m,ĉ) (unbiased, divisor M−1 = torch.std's default; M = 1 gives 0),
//                  EV = s / max over all pixels of the N images passed (0 when that max is 0); this
//                  already lies in [0, 1] (the normalised value is EV itself)
//   gate entropy   −Σ_e g_e log g_e / log E  (already in [0, 1]), per pixel from the gate [N, G, E]:
//                  G = 1 (simple gate): the image's gate, broadcast to its pixels;
//                  G = C (class-wise):  GateReduction::PredictedClass  g_{ĉ,·} at each pixel;
//                                       GateReduction::MeanGate        entropy of (1/C) Σ_c g_{c,·};
//                                       GateReduction::MeanEntropy     (1/C) Σ_c H(g_{c,·}) / log E.
//   confidence of a measure for calibration metrics = 1 − normalised value (§1.11).
// 0 · log 0 is taken as 0 everywhere.
//
// Member sets from a model's ModelOutput (§1.11 "member sets"): Plain = the members' logits
// (experts of an MoE, ensemble members) with equal weights; Weighted = the same members mixed by
// the gate; Stacked = {the model's own output, members...} with equal weights. A model without
// members uses its own output as the only member (MI = EV = 0).
// Tested by tests/training/test_uncertainty.cpp against tools/fixtures/make_uncertainty_fixtures.py.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/segmentation_model.h"

namespace moeseg {

enum class MemberSet { Plain, Weighted, Stacked };
enum class GateReduction { PredictedClass, MeanGate, MeanEntropy };
MemberSet parse_member_set(const std::string& s, const std::string& context);   // plain|weighted|stacked
const char* member_set_name(MemberSet s);
GateReduction parse_gate_reduction(const std::string& s, const std::string& context);  // predicted|mean_gate|mean_entropy
const char* gate_reduction_name(GateReduction r);

// softmax over dim 1 of logits [N, C, H, W], in float64 on the CPU.
Tensor softmax_probs_f64(const Tensor& logits);
// The probabilities the measures take: softmax_probs_f64 of CPU logits, the device's float32
// softmax of CUDA logits.
Tensor member_probabilities(const Tensor& logits);

// The members' probabilities (float64 CPU) and the mixture weights (undefined: equal) of a set.
struct Members {
  std::vector<Tensor> probs;   // M x [N, C, H, W]
  Tensor gate;                 // [N, G, E] for MemberSet::Weighted, else undefined
};
// Throws moeseg::Error for Weighted on a model without a gate or without E = gate.size(2) members.
Members members_from_output(const ModelOutput& out, MemberSet set);
// The same from probabilities computed once for several sets of one output: `member_probs` =
// member_probabilities of each out.member_logits, `own_probs` = that of out.logits (undefined
// when the set does not need it: it is needed by Stacked and by a model without members).
Members members_from_probs(const ModelOutput& out, MemberSet set, const std::vector<Tensor>& member_probs,
                           const Tensor& own_probs);

// ---- the per-pixel measures (float64 [N, H, W] unless said) ----------------------------------
// p̄ [N, C, H, W]; gate undefined → equal weights.
Tensor mixture_probs(const std::vector<Tensor>& probs, const Tensor& gate = Tensor());
Tensor predicted_class(const Tensor& mean_probs);   // int64 [N, H, W]
Tensor entropy_map(const Tensor& probs);             // H[p] in nats
Tensor predictive_entropy(const Tensor& mean_probs); // = entropy_map(p̄)
Tensor mutual_information(const std::vector<Tensor>& probs, const Tensor& mean_probs);
Tensor expert_std_at_class(const std::vector<Tensor>& probs, const Tensor& predicted);   // s, raw
Tensor expert_variance(const std::vector<Tensor>& probs, const Tensor& predicted);       // s / max s
// `gate` [N, G, E]; `predicted` int64 [N, H, W]. Throws if gate is undefined (naming `context`).
Tensor gate_entropy(const Tensor& gate, const Tensor& predicted, GateReduction r, const std::string& context = "gate_entropy");

// Everything for one member set; gate_entropy is undefined when the model has no gate.
struct UncertaintyMaps {
  Tensor mean_probs, predicted;                    // [N, C, H, W] float64, [N, H, W] int64
  Tensor predictive_entropy, mutual_information;   // nats
  Tensor expert_variance;                          // normalised (reference)
  Tensor gate_entropy;                             // normalised by log E
  int64_t classes = 0, experts = 0;
};
UncertaintyMaps compute_uncertainty(const Members& m, const Tensor& gate_for_entropy,
                                    GateReduction r = GateReduction::PredictedClass);
UncertaintyMaps compute_uncertainty(const ModelOutput& out, MemberSet set,
                                    GateReduction r = GateReduction::PredictedClass);

// The measure normalised to [0, 1] (the "uncertainty" whose 1 − value is the confidence):
// name ∈ predictive_entropy | mutual_information | expert_variance | gate_entropy.
Tensor normalised_uncertainty(const UncertaintyMaps& u, const std::string& measure);

}  // namespace moeseg
