// Per-pixel uncertainty measures (formulas in training/uncertainty.h). CPU tensors: plain loops over
// contiguous float64 data, one function per measure (the oracle, checked against numpy fixtures).
// CUDA tensors: the kernels of kernels/cuda/uncertainty_measures.cu through kernels/
// uncertainty_measures.h, results on the device: members_from_output takes the softmax on the
// device (float32 probabilities), compute_uncertainty runs mixture, predicted class, PE, MI and
// the expert std in one launch, then the EV and gate-entropy kernels; normalised_uncertainty
// divides on the device. Three single measures given someone else's mixture or predicted classes
// (mutual_information, expert_std_at_class, and entropy_map of a non-float32 map) run the CPU
// loops on copies and move the result back, saying so once (note_cpu_fallback).
#include "training/uncertainty.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/device_fallback.h"
#include "kernels/reduce.h"
#include "kernels/uncertainty_measures.h"

namespace moeseg {

namespace {

Tensor f64(const Tensor& t) { return t.detach().to(Device{}).to(DType::Float64).contiguous(); }

double xlogx(double p) { return p > 0 ? p * std::log(p) : 0.0; }

void check_probs(const Tensor& p, const char* what) {
  MOESEG_CHECK(p.defined() && p.dim() == 4, what, ": expected probabilities [N, C, H, W], got ",
               p.defined() ? p.str() : std::string("an undefined tensor"));
}

void check_members(const std::vector<Tensor>& probs, const char* what) {
  MOESEG_CHECK(!probs.empty(), what, ": no members");
  check_probs(probs[0], what);
  for (const Tensor& p : probs)
    MOESEG_CHECK(p.shape() == probs[0].shape(), what, ": members differ in shape: ", p.str(), " vs ", probs[0].str());
}

void check_predicted(const Tensor& pred, const Shape& probs_shape, const char* what) {
  MOESEG_CHECK(pred.dtype() == DType::Int64 && pred.dim() == 3 && pred.size(0) == probs_shape[0] &&
                   pred.size(1) == probs_shape[2] && pred.size(2) == probs_shape[3],
               what, ": predicted classes are ", pred.str(), ", expected int64 [N, H, W] for ", shape_str(probs_shape));
}

}  // namespace

MemberSet parse_member_set(const std::string& s, const std::string& context) {
  if (s == "plain") return MemberSet::Plain;
  if (s == "weighted") return MemberSet::Weighted;
  if (s == "stacked") return MemberSet::Stacked;
  MOESEG_CHECK(false, context, ": member set '", s, "' (known: plain, weighted, stacked)");
  return MemberSet::Plain;
}
const char* member_set_name(MemberSet s) {
  return s == MemberSet::Plain ? "plain" : s == MemberSet::Weighted ? "weighted" : "stacked";
}
GateReduction parse_gate_reduction(const std::string& s, const std::string& context) {
  if (s == "predicted") return GateReduction::PredictedClass;
  if (s == "mean_gate") return GateReduction::MeanGate;
  if (s == "mean_entropy") return GateReduction::MeanEntropy;
  MOESEG_CHECK(false, context, ": gate reduction '", s, "' (known: predicted, mean_gate, mean_entropy)");
  return GateReduction::PredictedClass;
}
const char* gate_reduction_name(GateReduction r) {
  return r == GateReduction::PredictedClass ? "predicted" : r == GateReduction::MeanGate ? "mean_gate" : "mean_entropy";
}

Tensor softmax_probs_f64(const Tensor& logits) {
  check_probs(logits, "softmax_probs_f64");
  return class_softmax_probs(f64(logits));   // a CPU float64 tensor takes the op's float64 loop
}

Tensor member_probabilities(const Tensor& logits) {
  // On a CUDA device the members stay there, as float32 probabilities (kernels/uncertainty_measures.h).
  return on_cuda(logits) ? class_softmax_probs(logits) : softmax_probs_f64(logits);
}

Members members_from_probs(const ModelOutput& out, MemberSet set, const std::vector<Tensor>& member_probs,
                           const Tensor& own_probs) {
  Members m;
  m.probs = member_probs;
  const bool needs_own = set == MemberSet::Stacked || m.probs.empty();
  MOESEG_CHECK(!needs_own || own_probs.defined(), "uncertainty: member set '", member_set_name(set),
               "' needs the probabilities of the model's own output");
  if (set == MemberSet::Weighted) {
    MOESEG_CHECK(out.gate.defined(), "uncertainty: member set 'weighted' needs a model with a gate; this model has none");
    MOESEG_CHECK(out.gate.dim() == 3 && out.gate.size(2) == static_cast<int64_t>(m.probs.size()),
                 "uncertainty: member set 'weighted': gate ", out.gate.str(), " does not match ", m.probs.size(),
                 " members");
    m.gate = on_cuda(out.gate) ? out.gate.detach() : f64(out.gate);
  } else if (set == MemberSet::Stacked) {
    m.probs.insert(m.probs.begin(), own_probs);
  }
  if (m.probs.empty()) m.probs.push_back(own_probs);
  return m;
}

Members members_from_output(const ModelOutput& out, MemberSet set) {
  std::vector<Tensor> members;
  for (const Tensor& l : out.member_logits) members.push_back(member_probabilities(l));
  const bool needs_own = set == MemberSet::Stacked || members.empty();
  return members_from_probs(out, set, members, needs_own ? member_probabilities(out.logits) : Tensor());
}

Tensor mixture_probs(const std::vector<Tensor>& probs_in, const Tensor& gate_in) {
  check_members(probs_in, "mixture_probs");
  if (on_cuda(probs_in[0])) {
    const Shape& s = probs_in[0].shape();
    MOESEG_CHECK(!gate_in.defined() || (gate_in.dim() == 3 && gate_in.size(0) == s[0] &&
                                        gate_in.size(2) == static_cast<int64_t>(probs_in.size()) &&
                                        (gate_in.size(1) == 1 || gate_in.size(1) == s[1])),
                 "mixture_probs: gate ", gate_in.str(), " does not fit ", probs_in.size(), " members of ", shape_str(s),
                 " (expected [N, 1 or C, M])");
    return uncertainty_pixel_maps(probs_in, gate_in).mean_probs;
  }
  std::vector<Tensor> probs;
  for (const Tensor& p : probs_in) probs.push_back(f64(p));
  const Shape& s = probs[0].shape();
  const int64_t M = static_cast<int64_t>(probs.size()), N = s[0], C = s[1], HW = s[2] * s[3];
  Tensor out = Tensor::zeros(s, DType::Float64);
  double* o = out.data<double>();
  if (!gate_in.defined()) {
    for (const Tensor& p : probs) {
      const double* a = p.data<double>();
      for (int64_t i = 0; i < out.numel(); ++i) o[i] += a[i] / static_cast<double>(M);
    }
    return out;
  }
  Tensor g = f64(gate_in);
  MOESEG_CHECK(g.dim() == 3 && g.size(0) == N && g.size(2) == M && (g.size(1) == 1 || g.size(1) == C),
               "mixture_probs: gate ", g.str(), " does not fit ", M, " members of ", shape_str(s),
               " (expected [N, 1 or C, M])");
  const int64_t G = g.size(1);
  const double* gw = g.data<double>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      double total = 0;
      for (int64_t c = 0; c < C; ++c) {
        double v = 0;
        for (int64_t m = 0; m < M; ++m)
          v += gw[(n * G + (G == 1 ? 0 : c)) * M + m] * probs[m].data<double>()[(n * C + c) * HW + i];
        o[(n * C + c) * HW + i] = v;
        total += v;
      }
      if (G > 1 && total > 0)
        for (int64_t c = 0; c < C; ++c) o[(n * C + c) * HW + i] /= total;
    }
  return out;
}

Tensor predicted_class(const Tensor& mean_probs) {
  check_probs(mean_probs, "predicted_class");
  if (on_cuda(mean_probs)) return argmax(mean_probs.detach(), 1);
  return argmax(f64(mean_probs), 1);   // the first maximal class, as everywhere else
}

Tensor entropy_map(const Tensor& probs) {
  check_probs(probs, "entropy_map");
  if (on_cuda(probs)) return uncertainty_pixel_maps({probs}, Tensor(), false).predictive_entropy;
  Tensor p = f64(probs);
  const int64_t N = p.size(0), C = p.size(1), HW = p.size(2) * p.size(3);
  Tensor out = Tensor::empty({N, p.size(2), p.size(3)}, DType::Float64);
  const double* a = p.data<double>();
  double* o = out.data<double>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      double h = 0;
      for (int64_t c = 0; c < C; ++c) h -= xlogx(a[(n * C + c) * HW + i]);
      o[n * HW + i] = h;
    }
  return out;
}

Tensor predictive_entropy(const Tensor& mean_probs) { return entropy_map(mean_probs); }

Tensor mutual_information(const std::vector<Tensor>& probs, const Tensor& mean_probs) {
  check_members(probs, "mutual_information");
  MOESEG_CHECK(mean_probs.shape() == probs[0].shape(), "mutual_information: mixture ", mean_probs.str(),
               " vs members ", probs[0].str());
  if (on_cuda(mean_probs) || on_cuda(probs[0])) {
    note_cpu_fallback("mutual_information", "of a given mixture (compute_uncertainty runs it on the device)");
    std::vector<Tensor> host;
    for (const Tensor& p : probs) host.push_back(f64(p));
    return mutual_information(host, f64(mean_probs)).to(on_cuda(mean_probs) ? mean_probs.device() : probs[0].device());
  }
  Tensor out = entropy_map(mean_probs);
  double* o = out.data<double>();
  for (const Tensor& p : probs) {
    Tensor h = entropy_map(p);
    const double* a = h.data<double>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] -= a[i] / static_cast<double>(probs.size());
  }
  return out;
}

Tensor expert_std_at_class(const std::vector<Tensor>& probs_in, const Tensor& predicted) {
  check_members(probs_in, "expert_std_at_class");
  check_predicted(predicted, probs_in[0].shape(), "expert_std_at_class");
  if (on_cuda(probs_in[0])) {
    note_cpu_fallback("expert_std_at_class", "at given classes (compute_uncertainty runs it on the device)");
    std::vector<Tensor> host;
    for (const Tensor& p : probs_in) host.push_back(f64(p));
    return expert_std_at_class(host, predicted.to(Device{})).to(probs_in[0].device());
  }
  std::vector<Tensor> probs;
  for (const Tensor& p : probs_in) probs.push_back(f64(p));
  const Shape& s = probs[0].shape();
  const int64_t M = static_cast<int64_t>(probs.size()), N = s[0], C = s[1], HW = s[2] * s[3];
  Tensor pred = predicted.to(Device{}).contiguous();
  const int64_t* pc = pred.data<int64_t>();
  Tensor out = Tensor::zeros({N, s[2], s[3]}, DType::Float64);
  double* o = out.data<double>();
  if (M < 2) return out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      const int64_t c = pc[n * HW + i];
      MOESEG_CHECK(c >= 0 && c < C, "expert_std_at_class: predicted class ", c, " outside [0, ", C, ")");
      // shifted by member 0 so that equal members give exactly 0 (the batch-max normalisation
      // would otherwise blow rounding noise up to 1)
      const int64_t at = (n * C + c) * HW + i;
      const double p0 = probs[0].data<double>()[at];
      double mean = 0;
      for (int64_t m = 0; m < M; ++m) mean += probs[m].data<double>()[at] - p0;
      mean /= static_cast<double>(M);
      double ss = 0;
      for (int64_t m = 0; m < M; ++m) {
        const double d = probs[m].data<double>()[at] - p0 - mean;
        ss += d * d;
      }
      o[n * HW + i] = std::sqrt(ss / static_cast<double>(M - 1));
    }
  return out;
}

Tensor expert_variance(const std::vector<Tensor>& probs, const Tensor& predicted) {
  Tensor s = expert_std_at_class(probs, predicted);
  if (on_cuda(s)) return divide_by_max(s);
  double* o = s.data<double>();
  double mx = 0;
  for (int64_t i = 0; i < s.numel(); ++i) mx = std::max(mx, o[i]);
  if (mx > 0)
    for (int64_t i = 0; i < s.numel(); ++i) o[i] /= mx;
  return s;
}

Tensor gate_entropy(const Tensor& gate_in, const Tensor& predicted, GateReduction r, const std::string& context) {
  MOESEG_CHECK(gate_in.defined(), context, ": gate entropy needs a model with a gate; this model has none");
  MOESEG_CHECK(gate_in.dim() == 3 && gate_in.size(2) >= 2, context, ": gate is ", gate_in.str(),
               ", expected [N, G, E] with E >= 2");
  MOESEG_CHECK(predicted.dtype() == DType::Int64 && predicted.dim() == 3 && predicted.size(0) == gate_in.size(0),
               context, ": predicted classes ", predicted.str(), " do not fit gate ", gate_in.str());
  if (on_cuda(gate_in))
    return gate_entropy_pixel_map(gate_in, predicted.to(gate_in.device()), static_cast<int>(r));   // enum order = the op's
  Tensor g = f64(gate_in);
  const int64_t N = g.size(0), G = g.size(1), E = g.size(2), HW = predicted.size(1) * predicted.size(2);
  const double logE = std::log(static_cast<double>(E));
  const double* gw = g.data<double>();
  auto h = [&](const double* row) {
    double v = 0;
    for (int64_t e = 0; e < E; ++e) v -= xlogx(row[e]);
    return v / logE;
  };
  Tensor pred = predicted.to(Device{}).contiguous();
  const int64_t* pc = pred.data<int64_t>();
  Tensor out = Tensor::empty({N, predicted.size(1), predicted.size(2)}, DType::Float64);
  double* o = out.data<double>();
  std::vector<double> mean_gate(static_cast<size_t>(E));
  for (int64_t n = 0; n < N; ++n) {
    const double* gn = gw + n * G * E;
    double image_value = 0;   // the value every pixel of image n gets (all but PredictedClass with G > 1)
    if (G == 1) {
      image_value = h(gn);
    } else if (r == GateReduction::MeanGate) {
      std::fill(mean_gate.begin(), mean_gate.end(), 0.0);
      for (int64_t c = 0; c < G; ++c)
        for (int64_t e = 0; e < E; ++e) mean_gate[e] += gn[c * E + e] / static_cast<double>(G);
      image_value = h(mean_gate.data());
    } else if (r == GateReduction::MeanEntropy) {
      for (int64_t c = 0; c < G; ++c) image_value += h(gn + c * E) / static_cast<double>(G);
    }
    for (int64_t i = 0; i < HW; ++i) {
      if (G > 1 && r == GateReduction::PredictedClass) {
        const int64_t c = pc[n * HW + i];
        MOESEG_CHECK(c >= 0 && c < G, context, ": predicted class ", c, " outside the gate's ", G, " classes");
        o[n * HW + i] = h(gn + c * E);
      } else {
        o[n * HW + i] = image_value;
      }
    }
  }
  return out;
}

UncertaintyMaps compute_uncertainty(const Members& m, const Tensor& gate_for_entropy, GateReduction r) {
  UncertaintyMaps u;
  if (!m.probs.empty() && on_cuda(m.probs[0])) {   // one launch for the member measures
    check_members(m.probs, "compute_uncertainty");
    UncertaintyPixelMaps pm = uncertainty_pixel_maps(m.probs, m.gate, true);
    u.mean_probs = pm.mean_probs;
    u.predicted = pm.predicted;
    u.predictive_entropy = pm.predictive_entropy;
    u.mutual_information = pm.mutual_information;
    u.expert_variance = divide_by_max(pm.expert_std);
    u.classes = u.mean_probs.size(1);
    if (gate_for_entropy.defined()) {
      u.gate_entropy = gate_entropy(gate_for_entropy, u.predicted, r);
      u.experts = gate_for_entropy.size(2);
    }
    return u;
  }
  u.mean_probs = mixture_probs(m.probs, m.gate);
  u.predicted = predicted_class(u.mean_probs);
  u.predictive_entropy = predictive_entropy(u.mean_probs);
  u.mutual_information = mutual_information(m.probs, u.mean_probs);
  u.expert_variance = expert_variance(m.probs, u.predicted);
  u.classes = u.mean_probs.size(1);
  if (gate_for_entropy.defined()) {
    u.gate_entropy = gate_entropy(gate_for_entropy, u.predicted, r);
    u.experts = gate_for_entropy.size(2);
  }
  return u;
}

UncertaintyMaps compute_uncertainty(const ModelOutput& out, MemberSet set, GateReduction r) {
  return compute_uncertainty(members_from_output(out, set), out.gate, r);
}

Tensor normalised_uncertainty(const UncertaintyMaps& u, const std::string& measure) {
  auto scaled = [](const Tensor& t, double by) {
    if (on_cuda(t)) return divide_by(t, by);
    Tensor o = t.to(DType::Float64).contiguous();
    o = Tensor::from_vector(o.to_vector<double>(), o.shape());
    double* p = o.data<double>();
    for (int64_t i = 0; i < o.numel(); ++i) p[i] /= by;
    return o;
  };
  const double logC = std::log(static_cast<double>(std::max<int64_t>(u.classes, 2)));
  if (measure == "predictive_entropy") return scaled(u.predictive_entropy, logC);
  if (measure == "mutual_information") return scaled(u.mutual_information, logC);
  if (measure == "expert_variance") return scaled(u.expert_variance, 1.0);
  if (measure == "gate_entropy") {
    MOESEG_CHECK(u.gate_entropy.defined(), "uncertainty: gate entropy needs a model with a gate; this model has none");
    return scaled(u.gate_entropy, 1.0);
  }
  MOESEG_CHECK(false, "uncertainty: measure '", measure,
               "' (known: predictive_entropy, mutual_information, expert_variance, gate_entropy)");
  return Tensor();
}

}  // namespace moeseg
