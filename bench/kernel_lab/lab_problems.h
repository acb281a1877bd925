// The kernel lab's problems: the shapes of each flagship kernel (FRRN-A at 240x320 batch 2, the
// DeepLabv3+ ASPP at 1/16 of 512x512; a scaled-down set for the CUDA-on-CPU run), their seeded
// inputs, the CPU backend's answer (the reference every version is validated against), the
// FLOPs / bytes each counts for the napkin math, and the error statistics. Plain C++: no CUDA here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moeseg::lab {

// ---- error statistics --------------------------------------------------------------------------
struct ErrorStats {
  double max_abs = 0;   // max |got - want|
  double max_rel = 0;   // max |got - want| / scale (scale: |want|, or sum |terms| for conv)
  size_t bad = 0;       // elements over atol + rtol * scale (NaN against a number counts)
  size_t count = 0;
  bool ok() const { return bad == 0; }
  void merge(const ErrorStats& o);
};
// scale == nullptr: scale = |want|. Both NaN counts as equal.
ErrorStats compare(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>* scale,
                   double atol, double rtol);

// ---- atrous convolution forward (stride 1, padding = dilation * (k - 1) / 2, no bias) ------------
struct ConvProblem {
  std::string name;
  int n, c_in, h, w, c_out, k, dil;
  int pad() const { return dil * (k - 1) / 2; }
  double flops() const { return 2.0 * n * c_out * h * w * double(c_in) * k * k; }   // output size = input size
  double min_bytes() const { return 4.0 * (double(n) * c_in * h * w + double(c_out) * c_in * k * k + double(n) * c_out * h * w); }
  double rtol() const;   // for errors relative to sum |terms|: grows with sqrt(K), K = c_in * k * k
};
struct ConvData {
  std::vector<float> x, w, y_ref, scale;   // scale = conv(|x|, |w|): sum of |terms| per output
};
std::vector<ConvProblem> conv_problems(bool small);
ConvData make_conv_data(const ConvProblem& p, uint64_t seed);

// ---- gate softmax + combine forward -----------------------------------------------------------
struct GateProblem {
  std::string name;
  int B, G, C, H, W, E;
  int64_t hw() const { return int64_t(H) * W; }
  size_t elements() const { return size_t(B) * C * hw(); }
  double min_bytes() const { return 4.0 * double(elements()) * (E + 1); }   // E experts read, out written
};
struct GateData {
  std::vector<float> z;                         // gate logits [B, G, E]
  std::vector<std::vector<float>> experts;      // E x [B, C, H, W]
  std::vector<float> out_ref, w_ref;
};
std::vector<GateProblem> gate_problems(bool small);
GateData make_gate_data(const GateProblem& p, uint64_t seed);

// ---- fused cross-entropy forward (class weights, ignore_index 255) -----------------------------
struct CeProblem {
  std::string name;
  int N, C, H, W;
  double ignore_fraction;
  int64_t pixels() const { return int64_t(N) * H * W; }
  // logits read once, targets read, lse + loss per pixel written
  double min_bytes() const { return 4.0 * double(pixels()) * C + 8.0 * pixels() + 8.0 * pixels(); }
};
struct CeData {
  std::vector<float> logits, class_weights;
  std::vector<int64_t> target;
  std::vector<float> lse_ref, loss_ref;   // per pixel (loss 0 where ignored)
  float sum_ref = 0, weight_sum_ref = 0, mean_ref = 0;
};
constexpr int64_t kCeIgnoreIndex = 255;
std::vector<CeProblem> ce_problems(bool small);
CeData make_ce_data(const CeProblem& p, uint64_t seed);

// One validation line: "<kernel> <problem> v<k> <name>: max abs .. max rel .. ok|FAILED".
void print_check(const char* kernel, const std::string& problem, int version, const char* version_name,
                 const ErrorStats& e);

}  // namespace moeseg::lab
