// uncertainty_measures (kernels/cuda/uncertainty_measures.cu) through CUDA-on-CPU against the CPU
// float64 oracle of training/uncertainty.h and training/calibration.h, on odd sizes (N = 2, C = 5,
// H = 7, W = 9), M = 1, 2, 3 members, equal / simple-gate / class-wise-gate mixtures, argmax ties,
// ignored pixels and uncertainties on the bin and threshold edges.
// Tolerances: the kernels and the oracle get the same float32-representable values and do the
// same float64 operations in the same order (the CPU loops are what the kernels do per pixel), so
// per-pixel maps agree to 1e-12 relative (exact in practice); the calibration sums are summed in
// another order (tiles, then blocks) than the CPU's pixel order: 1e-12 relative; every count and
// class is exact. End to end (training/ with CUDA tensors against the same function with CPU
// tensors): the device softmax rounds the member probabilities to float32 (relative error
// <= 2^-24 ~ 6e-8 each), so p̄ agrees to 1e-7 absolute and the entropies (sums of C = 5 terms
// p log p, |d(p log p)/dp| <= |log p| + 1 ~ 20 at p = 1e-8) to 1e-5 absolute.
// covers: class_softmax_kernel uncertainty_pixel_kernel gate_entropy_rows_kernel gate_entropy_pixel_kernel uncertainty_max_partial_kernel uncertainty_divide_kernel calibration_partial_kernel calibration_final_kernel
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/cuda_emulation.h"
#include "core/device_probe.h"
#include "kernels/uncertainty_measures.h"
#include "tests/cuda_kernels/cuda_test_util.h"
#include "tests/support/skip.h"
#include "training/calibration.h"
#include "training/uncertainty.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

constexpr int kN = 2, kC = 5, kH = 7, kW = 9;
constexpr int64_t kHW = int64_t(kH) * kW, kP = kN * kHW;

// |got - want| <= atol + rtol |want| everywhere (NaN only against NaN); prints the worst element.
void expect_close_f64(const std::string& what, const std::vector<double>& got, const std::vector<double>& want,
                      double atol, double rtol) {
  REQUIRE_MESSAGE(got.size() == want.size(), what, ": size ", got.size(), " vs ", want.size());
  size_t bad = 0, worst = 0;
  double worst_ratio = 0, max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]))) continue;
    const double err = std::isfinite(got[i]) && std::isfinite(want[i]) ? std::fabs(got[i] - want[i]) : INFINITY;
    const double tol = atol + rtol * std::fabs(want[i]);
    max_err = std::max(max_err, err);
    if (err <= tol) continue;
    if (bad == 0 || err / tol > worst_ratio) worst_ratio = err / tol, worst = i;
    ++bad;
  }
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " of ", got.size(), " out of tolerance; worst [", worst, "] got ",
                bad ? got[worst] : 0.0, " want ", bad ? want[worst] : 0.0, "; max abs error ", max_err, " (atol ",
                atol, ", rtol ", rtol, ")");
}

std::vector<double> f64_of(const Tensor& t) { return t.to(Device{}).to(DType::Float64).contiguous().to_vector<double>(); }
std::vector<int64_t> i64_of(const Tensor& t) { return t.to(Device{}).contiguous().to_vector<int64_t>(); }
std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Softmax over classes of random logits, as float32 [N, C, HW]; pixels with (pix % 7 == 3) get
// classes 1 and 3 tied in every member (so p̄ ties there too: the first maximum must win), and
// pixels with (pix % 11 == 5) are the same in every member (MI = s = 0).
std::vector<std::vector<float>> member_maps(int M, uint64_t seed) {
  std::vector<std::vector<float>> out;
  const auto shared = random_vector(size_t(kN) * kC * kHW, seed + 99, -3.f, 3.f);
  for (int m = 0; m < M; ++m) {
    auto z = random_vector(size_t(kN) * kC * kHW, seed + m, -3.f, 3.f);
    std::vector<float> p(z.size());
    for (int n = 0; n < kN; ++n)
      for (int64_t i = 0; i < kHW; ++i) {
        const int64_t pix = n * kHW + i;
        auto at = [&](int c) { return (int64_t(n) * kC + c) * kHW + i; };
        if (pix % 11 == 5)
          for (int c = 0; c < kC; ++c) z[at(c)] = shared[at(c)];
        if (pix % 7 == 3) z[at(1)] = z[at(3)] = 4.f;   // tied and (almost surely) the largest
        double mx = -1e30, s = 0;
        for (int c = 0; c < kC; ++c) mx = std::max(mx, double(z[at(c)]));
        for (int c = 0; c < kC; ++c) s += std::exp(double(z[at(c)]) - mx);
        for (int c = 0; c < kC; ++c) p[at(c)] = static_cast<float>(std::exp(double(z[at(c)]) - mx) / s);
      }
    out.push_back(p);
  }
  return out;
}

// A gate [N, G, M] of float32 weights summing to 1 over m.
std::vector<float> gate_weights(int G, int M, uint64_t seed) {
  auto g = random_vector(size_t(kN) * G * M, seed, 0.05f, 1.f);
  for (int r = 0; r < kN * G; ++r) {
    double s = 0;
    for (int m = 0; m < M; ++m) s += g[r * M + m];
    for (int m = 0; m < M; ++m) g[r * M + m] = static_cast<float>(g[r * M + m] / s);
  }
  return g;
}

Tensor cpu_tensor(const std::vector<float>& v, const Shape& s) { return Tensor::from_vector(widen(v), s); }

}  // namespace

TEST_CASE("uncertainty_pixel_maps kernel: mixture, predicted class, PE, MI and expert std equal training's float64 measures") {
  for (int M : {1, 2, 3})
    for (int gate_kind : {0, 1, 2}) {   // equal weights, simple gate (G = 1), class-wise gate (G = C)
      if (gate_kind > 0 && M == 1) continue;
      CAPTURE(M);
      CAPTURE(gate_kind);
      const int G = gate_kind == 2 ? kC : 1;
      const auto maps = member_maps(M, 100 + M);
      const auto gate = gate_kind ? gate_weights(G, M, 7 + M) : std::vector<float>{};
      std::vector<std::unique_ptr<DeviceBuffer<float>>> dm;
      std::vector<const float*> ptrs;
      std::vector<Tensor> probs;
      for (const auto& m : maps) {
        dm.push_back(std::make_unique<DeviceBuffer<float>>(m));
        ptrs.push_back(dm.back()->ptr());
        probs.push_back(cpu_tensor(m, {kN, kC, kH, kW}));
      }
      std::unique_ptr<DeviceBuffer<float>> dg;
      Tensor tg;
      if (gate_kind) {
        dg = std::make_unique<DeviceBuffer<float>>(gate);
        tg = cpu_tensor(gate, {kN, G, M});
      }
      DeviceBuffer<double> pbar(size_t(kN) * kC * kHW), pe(kP), mi(kP), sd(kP);
      DeviceBuffer<int64_t> pred(kP);
      coc::uncertainty_pixel_maps(ptrs.data(), M, dg ? dg->ptr() : nullptr, G, kN, kC, kHW, pbar.ptr(), pred.ptr(),
                                  pe.ptr(), mi.ptr(), sd.ptr());
      const Tensor want_pbar = mixture_probs(probs, tg);
      const Tensor want_pred = predicted_class(want_pbar);
      expect_close_f64("mean probs", pbar.download(), f64_of(want_pbar), 0, 1e-12);
      const auto got_pred = pred.download();
      CHECK(got_pred == i64_of(want_pred));
      // The planted ties (kept by equal and simple-gate weights; a class-wise gate weighs the two
      // classes differently): class 1, the first of the tied maxima, is predicted there.
      if (gate_kind != 2)
        for (int64_t pix = 3; pix < kP; pix += 7) CHECK_MESSAGE(got_pred[pix] == 1, "tie at pixel ", pix);
      expect_close_f64("predictive entropy", pe.download(), f64_of(predictive_entropy(want_pbar)), 1e-15, 1e-12);
      expect_close_f64("mutual information", mi.download(), f64_of(mutual_information(probs, want_pbar)), 1e-15, 1e-12);
      const auto got_sd = sd.download();
      expect_close_f64("expert std", got_sd, f64_of(expert_std_at_class(probs, want_pred)), 0, 1e-12);
      if (M >= 2) {
        for (int64_t pix = 5; pix < kP; pix += 11) CHECK_MESSAGE(got_sd[pix] == 0.0, "equal members at pixel ", pix);
        double mx = 0;
        for (double v : got_sd) mx = std::max(mx, v);
        CHECK(mx > 0.01);   // the random members do disagree: s is not trivially 0

        // EV: the batch-max normalisation on the device.
        DeviceBuffer<float> ws(coc::divide_by_max_workspace_floats(kP));
        DeviceBuffer<double> ev(kP);
        coc::divide_by_max(sd.ptr(), kP, ev.ptr(), ws.ptr());
        expect_close_f64("expert variance", ev.download(), f64_of(expert_variance(probs, want_pred)), 0, 1e-15);
      }
      // All outputs but the predicted class are optional.
      DeviceBuffer<int64_t> pred_only(kP);
      coc::uncertainty_pixel_maps(ptrs.data(), M, dg ? dg->ptr() : nullptr, G, kN, kC, kHW, nullptr, pred_only.ptr(),
                                  nullptr, nullptr, nullptr);
      CHECK(pred_only.download() == got_pred);
    }
}

TEST_CASE("uncertainty kernels: EV of equal members stays 0, divide_by, class_softmax, and bad arguments throw") {
  std::vector<double> zeros(kP, 0.0);
  DeviceBuffer<double> z(zeros), out(kP);
  DeviceBuffer<float> ws(coc::divide_by_max_workspace_floats(kP));
  coc::divide_by_max(z.ptr(), kP, out.ptr(), ws.ptr());
  CHECK(out.download() == zeros);   // max 0: unchanged, not NaN

  const auto xs = widen(random_vector(kP, 5, 0.f, 2.f));
  DeviceBuffer<double> x(xs);
  coc::divide_by(x.ptr(), kP, std::log(5.0), out.ptr());
  std::vector<double> want(xs);
  for (double& v : want) v /= std::log(5.0);
  CHECK(out.download() == want);   // one IEEE division each

  const auto logits = random_vector(size_t(kN) * kC * kHW, 11, -6.f, 6.f);
  DeviceBuffer<float> dl(logits), dp(logits.size());
  coc::class_softmax(dl.ptr(), dp.ptr(), kN, kC, kHW);
  const auto want_p = f64_of(softmax_probs_f64(Tensor::from_vector(logits, {kN, kC, kH, kW})));
  std::vector<float> want_f(want_p.begin(), want_p.end());
  expect_close("class_softmax (float32 of the float64 softmax)", dp.download(), want_f, 0, 0);

  DeviceBuffer<float> dummy(4);
  const float* one[1] = {dummy.ptr()};
  DeviceBuffer<int64_t> pred(4);
  CHECK_THROWS_AS(coc::uncertainty_pixel_maps(one, 0, nullptr, 1, 1, 1, 4, nullptr, pred.ptr(), nullptr, nullptr, nullptr), Error);
  CHECK_THROWS_AS(coc::uncertainty_pixel_maps(one, 1, dummy.ptr(), 3, 1, 2, 2, nullptr, pred.ptr(), nullptr, nullptr, nullptr),
                  Error);   // G = 3 is neither 1 nor C = 2
  DeviceBuffer<double> d(8);
  CHECK_THROWS_AS(coc::gate_entropy_map(dummy.ptr(), pred.ptr(), 1, 1, 1, 4, 0, d.ptr(), dummy.ptr()), Error);   // E = 1
  CHECK_THROWS_AS(coc::calibration_histogram(d.ptr(), pred.ptr(), d.ptr(), 255, 1, 2, 2, 33, nullptr, d.ptr(), dummy.ptr()),
                  Error);   // 33 bins > kCalibrationMaxBins
}

TEST_CASE("gate_entropy_map kernel: the three reductions for simple and class-wise gates equal training's gate_entropy") {
  const int E = 3;
  const auto maps = member_maps(1, 3);
  const Tensor pred = predicted_class(cpu_tensor(maps[0], {kN, kC, kH, kW}));
  const auto pv = i64_of(pred);
  for (int G : {1, kC})
    for (GateReduction r : {GateReduction::PredictedClass, GateReduction::MeanGate, GateReduction::MeanEntropy}) {
      CAPTURE(G);
      CAPTURE(gate_reduction_name(r));
      auto gate = gate_weights(G, E, 40 + G);
      gate[0] = 1.f, gate[1] = 0.f, gate[2] = 0.f;   // a one-hot row: 0 log 0 = 0
      DeviceBuffer<float> dg(gate), ws(coc::gate_entropy_workspace_floats(kN, G));
      DeviceBuffer<int64_t> dp(pv);
      DeviceBuffer<double> out(kP);
      coc::gate_entropy_map(dg.ptr(), dp.ptr(), kN, G, E, kHW, static_cast<int>(r), out.ptr(), ws.ptr());
      const auto got = out.download();
      expect_close_f64("gate entropy", got, f64_of(gate_entropy(cpu_tensor(gate, {kN, G, E}), pred, r)), 0, 1e-15);
      if (G > 1 && r == GateReduction::PredictedClass) {
        // per pixel: pixels of image 0 predicting class 0 get the one-hot row's 0, others not
        bool saw_zero = false, saw_other = false;
        for (int64_t i = 0; i < kHW; ++i) (pv[i] == 0 ? saw_zero : saw_other) = true;
        for (int64_t i = 0; i < kHW; ++i) CHECK((got[i] == 0.0) == (pv[i] == 0));
        CHECK((saw_zero && saw_other));
      }
    }
  // A class outside the gate's rows: NaN on the device (a kernel cannot throw).
  const auto gate = gate_weights(kC, E, 9);
  std::vector<int64_t> bad(kP, 0);
  bad[4] = kC;
  DeviceBuffer<float> dg(gate), ws(coc::gate_entropy_workspace_floats(kN, kC));
  DeviceBuffer<int64_t> dp(bad);
  DeviceBuffer<double> out(kP);
  coc::gate_entropy_map(dg.ptr(), dp.ptr(), kN, kC, E, kHW, 0, out.ptr(), ws.ptr());
  const auto got = out.download();
  CHECK(std::isnan(got[4]));
  CHECK(std::isfinite(got[3]));
}

namespace {

struct CalibInputs {
  std::vector<double> probs, unc;
  std::vector<int64_t> labels;
};

// p̄ from a class-wise-gate mixture (float64), labels with ignored pixels, u on bin and threshold
// edges (0, 1, 1 − b/15 for a few b, 0.03 and 0.5) and random elsewhere.
CalibInputs calib_inputs(int N, int64_t HW, uint64_t seed, int64_t ignore) {
  CalibInputs in;
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  in.probs.resize(size_t(N) * kC * HW);
  for (int n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      double s = 0;
      for (int c = 0; c < kC; ++c) s += (in.probs[(int64_t(n) * kC + c) * HW + i] = std::pow(U(gen), 3.0));
      for (int c = 0; c < kC; ++c) in.probs[(int64_t(n) * kC + c) * HW + i] /= s;
      if (i % 13 == 2)   // an exact tie of two maxima (first wins) and a zero probability (NLL clipped)
        for (int c = 0; c < kC; ++c) in.probs[(int64_t(n) * kC + c) * HW + i] = c < 2 ? 0.5 : 0.0;
    }
  const double edges[] = {0.0, 1.0, 1.0 - 1.0 / 15, 1.0 - 7.0 / 15, 0.03, 0.5, 0.01 + 0.02 * 20};
  for (int64_t p = 0; p < N * HW; ++p) {
    in.unc.push_back(p % 5 == 0 ? edges[(p / 5) % 7] : U(gen));
    const int64_t y = static_cast<int64_t>(gen() % (kC + 2));
    in.labels.push_back(y >= kC ? ignore : y);
  }
  return in;
}

}  // namespace

TEST_CASE("calibration_histogram kernel: bins, thresholds and sums equal the CPU accumulator's") {
  const int64_t ignore = 255;
  for (int N : {2, 40}) {   // 40 images of 63 pixels: 20 tiles over several blocks
    for (int bins : {15, 7}) {
      CAPTURE(N);
      CAPTURE(bins);
      const CalibInputs in = calib_inputs(N, kHW, 1000 + N + bins, ignore);
      DeviceBuffer<double> dp(in.probs), du(in.unc);
      DeviceBuffer<int64_t> dy(in.labels);
      const int slots = coc::calibration_result_slots(bins);
      REQUIRE(slots == 6 + 6 * bins + 150);
      DeviceBuffer<double> res(static_cast<size_t>(slots));
      DeviceBuffer<float> ws(coc::calibration_workspace_floats(N, kHW, bins));
      DeviceBuffer<unsigned char> st(size_t(N) * kHW);
      coc::calibration_histogram(dp.ptr(), dy.ptr(), du.ptr(), ignore, N, kC, kHW, bins, st.ptr(), res.ptr(), ws.ptr());
      const auto r = res.download();
      const auto status = st.download();

      const Tensor tp = Tensor::from_vector(in.probs, {N, kC, kH, kW});
      const Tensor ty = Tensor::from_vector(in.labels, {N, kH, kW});
      const Tensor tu = Tensor::from_vector(in.unc, {N, kH, kW});
      CalibrationAccumulator acc(ignore, bins);
      acc.add(tp, ty, tu);
      const CalibrationMetrics m = acc.result();
      const CalibrationCounts k = calibration_counts(tp, ty, tu, ignore, bins);   // the op's CPU loop

      // counts exact
      CHECK(r[0] == double(m.valid_pixels));
      CHECK(r[1] == double(k.n_correct));
      CHECK(double(k.n_correct) == std::round(m.accuracy * double(m.valid_pixels)));
      int64_t n_valid = 0;
      for (size_t p = 0; p < in.labels.size(); ++p) {
        const bool valid = in.labels[p] != ignore;
        n_valid += valid;
        CHECK_MESSAGE((status[p] != 0) == valid, "status of pixel ", p);
      }
      CHECK(int64_t(r[0]) == n_valid);
      CHECK(n_valid < N * kHW);   // some pixels were ignored
      for (int b = 0; b < bins; ++b) {
        CAPTURE(b);
        CHECK(r[6 + b] == double(m.bins[b].count));
        CHECK(r[6 + 3 * bins + b] == double(m.bins_reference[b].count));
        if (m.bins[b].count > 0) {
          CHECK(std::fabs(r[6 + bins + b] / r[6 + b] - m.bins[b].confidence) <= 1e-12);
          CHECK(r[6 + 2 * bins + b] / r[6 + b] == doctest::Approx(m.bins[b].accuracy).epsilon(1e-14));
        }
        if (m.bins_reference[b].count > 0) {
          CHECK(std::fabs(r[6 + 4 * bins + b] / r[6 + 3 * bins + b] - m.bins_reference[b].confidence) <= 1e-12);
          CHECK(r[6 + 5 * bins + b] / r[6 + 3 * bins + b] == doctest::Approx(m.bins_reference[b].accuracy).epsilon(1e-14));
        }
      }
      for (int t = 0; t < 50; ++t) {
        CAPTURE(t);
        CHECK(r[6 + 6 * bins + t] == double(k.n_certain[t]));
        CHECK(r[6 + 6 * bins + 50 + t] == double(k.n_accurate_certain[t]));
        CHECK(r[6 + 6 * bins + 100 + t] == double(k.n_inaccurate_uncertain[t]));
        if (k.n_certain[t] > 0)
          CHECK(double(k.n_accurate_certain[t]) / double(k.n_certain[t]) == m.p_accurate_given_certain[t]);
      }
      const double n = r[0];
      expect_close_f64("brier, nll (both forms)", {r[2] / n, r[3] / n, r[4] / n, r[5] / n},
                       {m.brier_multiclass, m.nll, m.brier_reference, m.nll_reference}, 0, 1e-12);
      CHECK(r[3] / n > 1.0);   // the clipped zero probabilities make the NLL large: the clip is exercised
    }
  }
}

namespace {

const Device kCuda{DeviceType::CUDA, 0};

bool have_cuda_device() {
  if (!device_available(DeviceType::CUDA) && !enable_cuda_emulation()) {
    moeseg::testing::skip("no CUDA device and the emulated one could not be enabled");
    return false;
  }
  return true;
}

ModelOutput random_output(int M, int G, uint64_t seed) {
  ModelOutput o;
  o.logits = Tensor::from_vector(random_vector(size_t(kN) * kC * kHW, seed, -4.f, 4.f), {kN, kC, kH, kW});
  for (int m = 0; m < M; ++m)
    o.member_logits.push_back(
        Tensor::from_vector(random_vector(size_t(kN) * kC * kHW, seed + 1 + m, -4.f, 4.f), {kN, kC, kH, kW}));
  if (G > 0) o.gate = Tensor::from_vector(gate_weights(G, M, seed + 50), {kN, G, M});
  return o;
}

ModelOutput to_cuda(const ModelOutput& o) {
  ModelOutput d;
  d.logits = o.logits.to(kCuda);
  for (const Tensor& t : o.member_logits) d.member_logits.push_back(t.to(kCuda));
  if (o.gate.defined()) d.gate = o.gate.to(kCuda);
  return d;
}

void check_metrics_equal(const CalibrationMetrics& a, const CalibrationMetrics& b) {
  CHECK(a.valid_pixels == b.valid_pixels);
  CHECK(a.accuracy == b.accuracy);
  for (size_t i = 0; i < a.bins.size(); ++i) {
    CHECK(a.bins[i].count == b.bins[i].count);
    CHECK(a.bins_reference[i].count == b.bins_reference[i].count);
  }
  expect_close_f64("calibration metrics",
                   {a.ece, a.mce, a.brier_multiclass, a.nll, a.ece_reference, a.mce_reference, a.brier_reference,
                    a.nll_reference},
                   {b.ece, b.mce, b.brier_multiclass, b.nll, b.ece_reference, b.mce_reference, b.brier_reference,
                    b.nll_reference},
                   1e-15, 1e-12);
  CHECK(a.auroc == b.auroc);   // the same (u, correct) pairs, ranked on the host
  CHECK(a.p_accurate_given_certain.size() == 50);
  for (size_t t = 0; t < a.pavpu_standard.size(); ++t) {
    CHECK((a.pavpu_standard[t] == b.pavpu_standard[t] || (std::isnan(a.pavpu_standard[t]) && std::isnan(b.pavpu_standard[t]))));
    CHECK((a.pavpu_reference[t] == b.pavpu_reference[t] || (std::isnan(a.pavpu_reference[t]) && std::isnan(b.pavpu_reference[t]))));
  }
}

}  // namespace

TEST_CASE("training uncertainty and calibration: CUDA tensors give the CPU tensors' results") {
  if (!have_cuda_device()) return;
  for (MemberSet set : {MemberSet::Plain, MemberSet::Weighted, MemberSet::Stacked})
    for (int G : {1, kC})
      for (GateReduction r : {GateReduction::PredictedClass, GateReduction::MeanGate, GateReduction::MeanEntropy}) {
        CAPTURE(member_set_name(set));
        CAPTURE(G);
        CAPTURE(gate_reduction_name(r));
        const ModelOutput oc = random_output(3, G, 77 + G);
        const ModelOutput od = to_cuda(oc);
        const UncertaintyMaps uc = compute_uncertainty(oc, set, r);
        const UncertaintyMaps ud = compute_uncertainty(od, set, r);
        REQUIRE(ud.mean_probs.device().is_cuda());
        REQUIRE(ud.expert_variance.device().is_cuda());
        CHECK(ud.mean_probs.dtype() == DType::Float64);
        CHECK(ud.classes == uc.classes);
        CHECK(ud.experts == uc.experts);
        // float32 member probabilities on the device (see the file comment for the tolerances)
        expect_close_f64("mean probs", f64_of(ud.mean_probs), f64_of(uc.mean_probs), 1e-7, 0);
        CHECK(i64_of(ud.predicted) == i64_of(uc.predicted));
        expect_close_f64("predictive entropy", f64_of(ud.predictive_entropy), f64_of(uc.predictive_entropy), 1e-5, 0);
        expect_close_f64("mutual information", f64_of(ud.mutual_information), f64_of(uc.mutual_information), 1e-5, 0);
        expect_close_f64("expert variance", f64_of(ud.expert_variance), f64_of(uc.expert_variance), 1e-5, 0);
        expect_close_f64("gate entropy", f64_of(ud.gate_entropy), f64_of(uc.gate_entropy), 1e-12, 0);

        // Calibration of the device maps on the device == of the same maps on the CPU.
        std::vector<int64_t> labels = i64_of(uc.predicted);
        for (size_t i = 0; i < labels.size(); ++i) labels[i] = i % 4 == 0 ? (labels[i] + 1) % kC : i % 9 == 0 ? 255 : labels[i];
        const Tensor y = Tensor::from_vector(labels, {kN, kH, kW});
        for (const char* measure : {"predictive_entropy", "mutual_information", "expert_variance", "gate_entropy"}) {
          CAPTURE(measure);
          const Tensor und = normalised_uncertainty(ud, measure);
          REQUIRE(und.device().is_cuda());
          const Tensor unh = und.to(Device{});
          const Tensor pbh = ud.mean_probs.to(Device{});
          UncertaintyMaps uh = ud;   // the device maps moved to the CPU: normalisation on the CPU
          for (Tensor* t : {&uh.mean_probs, &uh.predicted, &uh.predictive_entropy, &uh.mutual_information,
                            &uh.expert_variance, &uh.gate_entropy})
            *t = t->to(Device{});
          CHECK(f64_of(normalised_uncertainty(uh, measure)) == f64_of(unh));
          CalibrationAccumulator ad, ah;
          ad.add(ud.mean_probs, y.to(kCuda), und);
          ad.add(ud.mean_probs, y, und);   // labels on the CPU are moved to the probabilities' device
          ah.add(pbh, y, unh);
          ah.add(pbh, y, unh);
          check_metrics_equal(ad.result(), ah.result());
          PerImageCalibration pd, ph;
          pd.add(ud.mean_probs, y.to(kCuda), und);
          ph.add(pbh, y, unh);
          const PerImageMeans a = pd.result(), b = ph.result();
          CHECK(a.images == b.images);
          expect_close_f64("per-image means", {a.ece, a.mce, a.brier_multiclass, a.nll, a.ece_reference, a.nll_reference},
                           {b.ece, b.mce, b.brier_multiclass, b.nll, b.ece_reference, b.nll_reference}, 1e-15, 1e-12);
        }
      }
}

TEST_CASE("training uncertainty single measures on CUDA tensors equal the CPU ones, and a bad label throws") {
  if (!have_cuda_device()) return;
  const auto maps = member_maps(3, 500);
  std::vector<Tensor> ph, pd;
  for (const auto& m : maps) {
    ph.push_back(cpu_tensor(m, {kN, kC, kH, kW}));
    pd.push_back(Tensor::from_vector(m, {kN, kC, kH, kW}).to(kCuda));   // float32 on the device
  }
  const Tensor gh = cpu_tensor(gate_weights(kC, 3, 5), {kN, kC, 3}), gd = gh.to(DType::Float32).to(kCuda);
  const Tensor mh = mixture_probs(ph, gh), md = mixture_probs(pd, gd);
  REQUIRE(md.device().is_cuda());
  expect_close_f64("mixture_probs", f64_of(md), f64_of(mh), 0, 1e-12);
  const Tensor predh = predicted_class(mh), predd = predicted_class(md);
  CHECK(i64_of(predd) == i64_of(predh));
  expect_close_f64("entropy_map", f64_of(entropy_map(pd[1])), f64_of(entropy_map(ph[1])), 1e-15, 1e-12);
  expect_close_f64("mutual_information", f64_of(mutual_information(pd, md)), f64_of(mutual_information(ph, mh)), 1e-15, 1e-12);
  expect_close_f64("expert_variance", f64_of(expert_variance(pd, predd)), f64_of(expert_variance(ph, predh)), 0, 1e-12);
  expect_close_f64("gate_entropy", f64_of(gate_entropy(gd, predd, GateReduction::MeanEntropy)),
                   f64_of(gate_entropy(gh, predh, GateReduction::MeanEntropy)), 0, 1e-15);
  const Tensor logits = Tensor::from_vector(random_vector(size_t(kN) * kC * kHW, 3, -5.f, 5.f), {kN, kC, kH, kW});
  const Tensor sd = class_softmax_probs(logits.to(kCuda));
  CHECK(sd.dtype() == DType::Float32);
  expect_close_f64("class_softmax_probs", f64_of(sd), f64_of(softmax_probs_f64(logits)), 6e-8, 0);

  std::vector<int64_t> labels(kP, 0);
  labels[17] = 7;
  CalibrationAccumulator acc;
  CHECK_THROWS_WITH_AS(acc.add(md, Tensor::from_vector(labels, {kN, kH, kW}).to(kCuda), divide_by(entropy_map(md), std::log(5.0))),
                       doctest::Contains("label 7 outside [0, 5)"), Error);
}
