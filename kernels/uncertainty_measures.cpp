// The uncertainty and calibration ops (kernels/uncertainty_measures.h): one launch of
// kernels/cuda/uncertainty_measures.cu through gpu_kernels() for CUDA tensors, the same arithmetic
// as float64 loops over contiguous CPU data otherwise (the loops are the kernels' per-pixel bodies,
// so the two agree bit for bit under CUDA-on-CPU on float32-representable inputs).
#include "kernels/uncertainty_measures.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_kernels.h"

namespace moeseg {

namespace {

Tensor cpu_f64(const Tensor& t) { return t.detach().to(Device{}).to(DType::Float64).contiguous(); }
double xlogx(double p) { return p > 0 ? p * std::log(p) : 0.0; }
int i32(int64_t v, const char* op, const char* what) {
  MOESEG_CHECK(v >= 0 && v < (int64_t{1} << 31), op, ": ", what, " = ", v, " does not fit the kernels' int");
  return static_cast<int>(v);
}

void check_probs4(const Tensor& p, const char* op) {
  MOESEG_CHECK(p.defined() && p.dim() == 4, op, ": expected probabilities [N, C, H, W], got ",
               p.defined() ? p.str() : std::string("an undefined tensor"));
}

// ---- CPU loops (float64) ------------------------------------------------------------------------

UncertaintyPixelMaps pixel_maps_cpu(const std::vector<Tensor>& probs_in, const Tensor& gate_in, bool want_mean) {
  std::vector<Tensor> probs;
  for (const Tensor& p : probs_in) probs.push_back(cpu_f64(p));
  const Shape& s = probs[0].shape();
  const int64_t M = static_cast<int64_t>(probs.size()), N = s[0], C = s[1], HW = s[2] * s[3];
  Tensor g = gate_in.defined() ? cpu_f64(gate_in) : Tensor();
  const int64_t G = g.defined() ? g.size(1) : 1;
  const double* gw = g.defined() ? g.data<double>() : nullptr;
  UncertaintyPixelMaps r;
  if (want_mean) r.mean_probs = Tensor::empty(s, DType::Float64);
  r.predicted = Tensor::empty({N, s[2], s[3]}, DType::Int64);
  r.predictive_entropy = Tensor::empty({N, s[2], s[3]}, DType::Float64);
  r.mutual_information = Tensor::empty({N, s[2], s[3]}, DType::Float64);
  r.expert_std = Tensor::empty({N, s[2], s[3]}, DType::Float64);
  std::vector<const double*> a;
  for (const Tensor& p : probs) a.push_back(p.data<double>());
  double* pbar = want_mean ? r.mean_probs.data<double>() : nullptr;
  std::vector<double> h(static_cast<size_t>(M));
  const double Md = static_cast<double>(M);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      const int64_t base = n * C * HW + i, pix = n * HW + i;
      const double* gn = gw ? gw + n * G * M : nullptr;
      double total = 0;
      if (gn && G > 1)
        for (int64_t c = 0; c < C; ++c) {
          double v = 0;
          for (int64_t m = 0; m < M; ++m) v += gn[c * M + m] * a[m][base + c * HW];
          total += v;
        }
      std::fill(h.begin(), h.end(), 0.0);
      double pe = 0, best = 0;
      int64_t best_c = 0;
      for (int64_t c = 0; c < C; ++c) {
        double v = 0;
        for (int64_t m = 0; m < M; ++m) {
          const double p = a[m][base + c * HW];
          if (gn) v += gn[(G == 1 ? 0 : c) * M + m] * p;
          else v += p / Md;
          h[m] -= xlogx(p);
        }
        if (gn && G > 1 && total > 0) v /= total;
        if (pbar) pbar[base + c * HW] = v;
        pe -= xlogx(v);
        if (c == 0 || v > best || (v != v && best == best)) best = v, best_c = c;
      }
      r.predicted.data<int64_t>()[pix] = best_c;
      r.predictive_entropy.data<double>()[pix] = pe;
      double mi = pe;
      for (int64_t m = 0; m < M; ++m) mi -= h[m] / Md;
      r.mutual_information.data<double>()[pix] = mi;
      double sd = 0;
      if (M >= 2) {
        const int64_t at = base + best_c * HW;
        const double p0 = a[0][at];
        double mean = 0;
        for (int64_t m = 0; m < M; ++m) mean += a[m][at] - p0;
        mean /= Md;
        double ss = 0;
        for (int64_t m = 0; m < M; ++m) ss += (a[m][at] - p0 - mean) * (a[m][at] - p0 - mean);
        sd = std::sqrt(ss / static_cast<double>(M - 1));
      }
      r.expert_std.data<double>()[pix] = sd;
    }
  return r;
}

int calibration_bin(double q, int nb) { return std::clamp(static_cast<int>(std::ceil(q * nb)) - 1, 0, nb - 1); }

[[noreturn]] void bad_label(int64_t label, int64_t C, int64_t ignore_index) {
  MOESEG_FAIL("calibration: label ", label, " outside [0, ", C, ") and not the ignore index ", ignore_index);
}

CalibrationCounts make_counts(int bins) {
  CalibrationCounts k;
  const size_t nb = static_cast<size_t>(bins), nt = static_cast<size_t>(kGpuCalibrationThresholds);
  k.count.assign(nb, 0), k.count_reference.assign(nb, 0);
  k.conf_sum.assign(nb, 0.0), k.correct_sum.assign(nb, 0.0), k.conf_sum_reference.assign(nb, 0.0),
      k.correct_sum_reference.assign(nb, 0.0);
  k.n_certain.assign(nt, 0), k.n_accurate_certain.assign(nt, 0), k.n_inaccurate_uncertain.assign(nt, 0);
  return k;
}

CalibrationCounts calibration_cpu(const Tensor& mean_probs, const Tensor& labels, const Tensor& uncertainty,
                                  int64_t ignore_index, int bins) {
  Tensor p = cpu_f64(mean_probs), u = cpu_f64(uncertainty);
  Tensor y = labels.to(Device{}).contiguous();
  const int64_t N = p.size(0), C = p.size(1), HW = p.size(2) * p.size(3);
  const double* pp = p.data<double>();
  const double* uu = u.data<double>();
  const int64_t* yy = y.data<int64_t>();
  CalibrationCounts k = make_counts(bins);
  for (int64_t pix = 0; pix < N * HW; ++pix) {
    const int64_t label = yy[pix];
    if (label == ignore_index) continue;
    if (label < 0 || label >= C) bad_label(label, C, ignore_index);
    const int64_t n = pix / HW, i = pix - n * HW;
    const double* px = pp + n * C * HW + i;
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (px[c * HW] > px[best * HW]) best = c;
    const bool correct = best == label;
    const double qmax = px[best * HW], unc = uu[pix], q = 1.0 - unc, cr = correct ? 1.0 : 0.0;
    ++k.n;
    k.n_correct += correct;
    double b = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double d = px[c * HW] - (c == label ? 1.0 : 0.0);
      b += d * d;
    }
    k.brier_multiclass_sum += b;
    k.nll_sum += -std::log(std::max(px[label * HW], 1e-15));
    k.brier_reference_sum += (q - cr) * (q - cr);
    const double qc = std::clamp(q, 1e-15, 1.0 - 1e-15);
    k.nll_reference_sum += correct ? -std::log(qc) : -std::log(1.0 - qc);
    const int bs = calibration_bin(qmax, bins), br = calibration_bin(q, bins);
    k.count[bs] += 1, k.conf_sum[bs] += qmax, k.correct_sum[bs] += cr;
    k.count_reference[br] += 1, k.conf_sum_reference[br] += q, k.correct_sum_reference[br] += cr;
    for (int t = 0; t < kGpuCalibrationThresholds; ++t) {
      const bool certain = unc < 0.01 + 0.02 * t;
      k.n_certain[t] += certain;
      k.n_accurate_certain[t] += certain && correct;
      k.n_inaccurate_uncertain[t] += !certain && !correct;
    }
    k.scores.push_back(unc);
    k.incorrect.push_back(correct ? 0 : 1);
  }
  return k;
}

}  // namespace

Tensor class_softmax_probs(const Tensor& logits) {
  const char* op = "class_softmax_probs";
  check_probs4(logits, op);
  if (on_cuda(logits) && logits.dtype() == DType::Float32 && logits.numel() > 0) {
    Tensor x = logits.detach().contiguous();
    Tensor out = Tensor::empty(x.sizes(), DType::Float32, x.device());
    gpu_kernels().class_softmax(x.data<float>(), out.data<float>(), i32(x.size(0), op, "N"), i32(x.size(1), op, "C"),
                                x.size(2) * x.size(3));
    return out;
  }
  if (on_cuda(logits)) note_cpu_fallback(op, "not float32");
  Tensor x = cpu_f64(logits);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor out = Tensor::empty(x.shape(), DType::Float64);
  const double* a = x.data<double>();
  double* o = out.data<double>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      const double* in = a + n * C * HW + i;
      double* po = o + n * C * HW + i;
      double mx = in[0];
      for (int64_t c = 1; c < C; ++c) mx = std::max(mx, in[c * HW]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += (po[c * HW] = std::exp(in[c * HW] - mx));
      for (int64_t c = 0; c < C; ++c) po[c * HW] /= s;
    }
  return on_cuda(logits) ? out.to(logits.device()) : out;
}

UncertaintyPixelMaps uncertainty_pixel_maps(const std::vector<Tensor>& member_probs, const Tensor& gate,
                                            bool want_mean_probs) {
  const char* op = "uncertainty_pixel_maps";
  MOESEG_CHECK(!member_probs.empty(), op, ": no members");
  check_probs4(member_probs[0], op);
  const Tensor& first = member_probs[0];
  bool f32 = first.dtype() == DType::Float32;
  for (const Tensor& p : member_probs) {
    MOESEG_CHECK(p.shape() == first.shape(), op, ": members differ in shape: ", p.str(), " vs ", first.str());
    MOESEG_CHECK(p.device() == first.device(), op, ": members on different devices: ", p.str(), " vs ", first.str());
    f32 = f32 && p.dtype() == DType::Float32;
  }
  const int64_t M = static_cast<int64_t>(member_probs.size()), N = first.size(0), C = first.size(1);
  if (gate.defined())
    MOESEG_CHECK(gate.dim() == 3 && gate.size(0) == N && gate.size(2) == M && (gate.size(1) == 1 || gate.size(1) == C),
                 op, ": gate ", gate.str(), " does not fit ", M, " members of ", first.str(),
                 " (expected [N, 1 or C, M])");
  const Device d = first.device();
  if (on_cuda(first) && f32 && M <= kGpuUncertaintyMaxMembers && first.numel() > 0 &&
      (!gate.defined() || gate.device() == d)) {
    std::vector<Tensor> xs;
    std::vector<const float*> ptrs;
    for (const Tensor& p : member_probs) {
      xs.push_back(p.detach().contiguous());
      ptrs.push_back(xs.back().data<float>());
    }
    // A gate of another float dtype is narrowed on the device (the model's gate is float32).
    Tensor g = gate.defined() ? gate.detach().to(DType::Float32).contiguous() : Tensor();
    const Shape map{N, first.size(2), first.size(3)};
    UncertaintyPixelMaps r;
    if (want_mean_probs) r.mean_probs = Tensor::empty(first.sizes(), DType::Float64, d);
    r.predicted = Tensor::empty(map, DType::Int64, d);
    r.predictive_entropy = Tensor::empty(map, DType::Float64, d);
    r.mutual_information = Tensor::empty(map, DType::Float64, d);
    r.expert_std = Tensor::empty(map, DType::Float64, d);
    gpu_kernels().uncertainty_pixel_maps(
        ptrs.data(), static_cast<int>(M), g.defined() ? g.data<float>() : nullptr,
        g.defined() ? static_cast<int>(g.size(1)) : 1, i32(N, op, "N"), i32(C, op, "C"), first.size(2) * first.size(3),
        want_mean_probs ? r.mean_probs.data<double>() : nullptr, r.predicted.data<int64_t>(),
        r.predictive_entropy.data<double>(), r.mutual_information.data<double>(), r.expert_std.data<double>());
    return r;
  }
  if (on_cuda(first)) note_cpu_fallback(op, "not float32, more than 16 members or a gate on another device");
  UncertaintyPixelMaps r = pixel_maps_cpu(member_probs, gate, want_mean_probs);
  if (on_cuda(first))
    for (Tensor* t : {&r.mean_probs, &r.predicted, &r.predictive_entropy, &r.mutual_information, &r.expert_std})
      if (t->defined()) *t = t->to(d);
  return r;
}

Tensor gate_entropy_pixel_map(const Tensor& gate, const Tensor& predicted, int reduction) {
  const char* op = "gate_entropy_pixel_map";
  MOESEG_CHECK(gate.defined() && gate.dim() == 3 && gate.size(2) >= 2, op, ": gate is ",
               gate.defined() ? gate.str() : std::string("undefined"), ", expected [N, G, E] with E >= 2");
  MOESEG_CHECK(predicted.defined() && predicted.dtype() == DType::Int64 && predicted.dim() == 3 &&
                   predicted.size(0) == gate.size(0),
               op, ": predicted classes ", predicted.defined() ? predicted.str() : std::string("undefined"),
               " do not fit gate ", gate.str());
  MOESEG_CHECK(reduction >= 0 && reduction <= 2, op, ": reduction ", reduction, " (0 predicted, 1 mean_gate, 2 mean_entropy)");
  const int64_t N = gate.size(0), G = gate.size(1), E = gate.size(2), HW = predicted.size(1) * predicted.size(2);
  if (on_cuda(gate) && predicted.device() == gate.device() && HW > 0) {
    const Device d = gate.device();
    Tensor g = gate.detach().to(DType::Float32).contiguous(), pc = predicted.contiguous();
    Tensor out = Tensor::empty(predicted.sizes(), DType::Float64, d);
    const GpuKernels& k = gpu_kernels();
    Tensor ws = gpu_workspace(k.gate_entropy_workspace_floats(i32(N, op, "N"), i32(G, op, "G")), d);
    k.gate_entropy_map(g.data<float>(), pc.data<int64_t>(), static_cast<int>(N), static_cast<int>(G),
                       i32(E, op, "E"), HW, reduction, out.data<double>(), ws.data<float>());
    return out;
  }
  if (on_cuda(gate)) note_cpu_fallback(op, "predicted classes on another device");
  Tensor g = cpu_f64(gate), pc = predicted.to(Device{}).contiguous();
  const double logE = std::log(static_cast<double>(E));
  auto h = [&](const double* row) {
    double v = 0;
    for (int64_t e = 0; e < E; ++e) v -= xlogx(row[e]);
    return v / logE;
  };
  Tensor out = Tensor::empty(predicted.sizes(), DType::Float64);
  double* o = out.data<double>();
  for (int64_t n = 0; n < N; ++n) {
    const double* gn = g.data<double>() + n * G * E;
    double image_value = 0;
    if (G == 1) {
      image_value = h(gn);
    } else if (reduction == 1) {
      for (int64_t e = 0; e < E; ++e) {
        double mean = 0;
        for (int64_t c = 0; c < G; ++c) mean += gn[c * E + e] / static_cast<double>(G);
        image_value -= xlogx(mean);
      }
      image_value /= logE;
    } else if (reduction == 2) {
      for (int64_t c = 0; c < G; ++c) image_value += h(gn + c * E) / static_cast<double>(G);
    }
    for (int64_t i = 0; i < HW; ++i) {
      if (G > 1 && reduction == 0) {
        const int64_t c = pc.data<int64_t>()[n * HW + i];
        MOESEG_CHECK(c >= 0 && c < G, op, ": predicted class ", c, " outside the gate's ", G, " classes");
        o[n * HW + i] = h(gn + c * E);
      } else {
        o[n * HW + i] = image_value;
      }
    }
  }
  return on_cuda(gate) ? out.to(gate.device()) : out;
}

Tensor divide_by_max(const Tensor& x) {
  const char* op = "divide_by_max";
  MOESEG_CHECK(x.defined(), op, ": undefined input");
  if (on_cuda(x) && x.numel() > 0) {
    Tensor xc = x.detach().to(DType::Float64).contiguous();
    Tensor out = Tensor::empty(xc.sizes(), DType::Float64, x.device());
    const GpuKernels& k = gpu_kernels();
    Tensor ws = gpu_workspace(k.divide_by_max_workspace_floats(xc.numel()), x.device());
    k.divide_by_max(xc.data<double>(), xc.numel(), out.data<double>(), ws.data<float>());
    return out;
  }
  Tensor o = cpu_f64(x).clone();
  double* p = o.data<double>();
  double mx = 0;
  for (int64_t i = 0; i < o.numel(); ++i) mx = std::max(mx, p[i]);
  if (mx > 0)
    for (int64_t i = 0; i < o.numel(); ++i) p[i] /= mx;
  return on_cuda(x) ? o.to(x.device()) : o;
}

Tensor divide_by(const Tensor& x, double divisor) {
  MOESEG_CHECK(x.defined(), "divide_by: undefined input");
  if (on_cuda(x) && x.numel() > 0) {
    Tensor xc = x.detach().to(DType::Float64).contiguous();
    Tensor out = Tensor::empty(xc.sizes(), DType::Float64, x.device());
    gpu_kernels().divide_by(xc.data<double>(), xc.numel(), divisor, out.data<double>());
    return out;
  }
  Tensor o = cpu_f64(x).clone();
  double* p = o.data<double>();
  for (int64_t i = 0; i < o.numel(); ++i) p[i] /= divisor;
  return on_cuda(x) ? o.to(x.device()) : o;
}

CalibrationCounts calibration_counts(const Tensor& mean_probs, const Tensor& labels, const Tensor& uncertainty,
                                     int64_t ignore_index, int bins) {
  const char* op = "calibration";
  MOESEG_CHECK(mean_probs.defined() && mean_probs.dim() == 4, op, ": probabilities ", mean_probs.str(),
               ", expected [N, C, H, W]");
  MOESEG_CHECK(bins >= 1, op, ": bins must be >= 1, got ", bins);
  const int64_t N = mean_probs.size(0), C = mean_probs.size(1), H = mean_probs.size(2), W = mean_probs.size(3);
  MOESEG_CHECK(labels.dtype() == DType::Int64 && labels.shape() == Shape({N, H, W}), op, ": labels ", labels.str(),
               ", expected int64 [", N, ", ", H, ", ", W, "]");
  MOESEG_CHECK(uncertainty.shape() == Shape({N, H, W}), op, ": uncertainty ", uncertainty.str(), ", expected [", N,
               ", ", H, ", ", W, "]");
  const Device d = mean_probs.device();
  const bool device_ok = labels.device() == d && uncertainty.device() == d;
  if (on_cuda(mean_probs) && device_ok && bins <= kGpuCalibrationMaxBins && mean_probs.numel() > 0) {
    const int64_t HW = H * W;
    // float32 widens exactly; the device copies are no-ops for the float64 maps of the uncertainty ops.
    Tensor p = mean_probs.detach().to(DType::Float64).contiguous(), u = uncertainty.detach().to(DType::Float64).contiguous();
    Tensor y = labels.contiguous();
    const GpuKernels& k = gpu_kernels();
    const int slots = k.calibration_result_slots(bins);
    Tensor status = Tensor::empty({N, H, W}, DType::UInt8, d), result = Tensor::empty({slots}, DType::Float64, d);
    Tensor ws = gpu_workspace(k.calibration_workspace_floats(i32(N, op, "N"), HW, bins), d);
    k.calibration_histogram(p.data<double>(), y.data<int64_t>(), u.data<double>(), ignore_index, static_cast<int>(N),
                            i32(C, op, "C"), HW, bins, status.data<uint8_t>(), result.data<double>(), ws.data<float>());
    // Back to the host: the sums, and per pixel the status and u (the AUROC keeps every valid pixel).
    const std::vector<double> r = result.to(Device{}).to_vector<double>();
    const std::vector<uint8_t> st = status.to(Device{}).to_vector<uint8_t>();
    for (size_t i = 0; i < st.size(); ++i)
      if (st[i] == 3) bad_label(labels.reshape({N * HW}).slice(0, static_cast<int64_t>(i), static_cast<int64_t>(i) + 1)
                                    .to(Device{}).to_vector<int64_t>()[0],
                                C, ignore_index);
    const std::vector<double> uh = u.to(Device{}).to_vector<double>();
    CalibrationCounts c = make_counts(bins);
    auto as_count = [](double v) { return static_cast<int64_t>(std::llround(v)); };
    c.n = as_count(r[0]), c.n_correct = as_count(r[1]);
    c.brier_multiclass_sum = r[2], c.nll_sum = r[3], c.brier_reference_sum = r[4], c.nll_reference_sum = r[5];
    const size_t nb = static_cast<size_t>(bins), nt = static_cast<size_t>(kGpuCalibrationThresholds);
    for (size_t b = 0; b < nb; ++b) {
      c.count[b] = as_count(r[6 + b]), c.conf_sum[b] = r[6 + nb + b], c.correct_sum[b] = r[6 + 2 * nb + b];
      c.count_reference[b] = as_count(r[6 + 3 * nb + b]), c.conf_sum_reference[b] = r[6 + 4 * nb + b];
      c.correct_sum_reference[b] = r[6 + 5 * nb + b];
    }
    for (size_t t = 0; t < nt; ++t) {
      c.n_certain[t] = as_count(r[6 + 6 * nb + t]);
      c.n_accurate_certain[t] = as_count(r[6 + 6 * nb + nt + t]);
      c.n_inaccurate_uncertain[t] = as_count(r[6 + 6 * nb + 2 * nt + t]);
    }
    for (size_t i = 0; i < st.size(); ++i)
      if (st[i] == 1 || st[i] == 2) c.scores.push_back(uh[i]), c.incorrect.push_back(st[i] == 2 ? 1 : 0);
    return c;
  }
  if (on_cuda(mean_probs)) note_cpu_fallback(op, "inputs on different devices or more than 32 bins");
  return calibration_cpu(mean_probs, labels, uncertainty, ignore_index, bins);
}

}  // namespace moeseg
