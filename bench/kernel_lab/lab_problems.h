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

// ---- FRRU pieces (kernels/frru.h; lab_problems_frru.cpp) ---------------------------------------
// y: pooling stream [N, Cy, h, w]; z: residual stream [N, Cz, H, W]; (h, w) = maxpool(k3, stride
// f, pad 1) of (H, W). Bytes as the roofline note of kernels/cuda/frru.cu counts them (every
// tensor read or written once, fp32, int64 pooling indices); the unfused v1 adds its temporaries'
// round trips (written once, read once).
struct FrruProblem {
  std::string name;
  int N, Cy, Cz, H, W, f;
  int h() const { return (H - 1) / f + 1; }   // (H + 2 - 3) / f + 1
  int w() const { return (W - 1) / f + 1; }
  double low() const { return double(N) * Cz * h() * w(); }    // elements of pooled z / the low-res map
  double full() const { return double(N) * Cz * H * W; }       // elements of z
  double ys() const { return double(N) * Cy * h() * w(); }     // elements of y
};
// pool_concat: y and z read, concat [N, Cy + Cz, h, w] and the indices written.
inline double pool_concat_bytes(const FrruProblem& p) { return 4.0 * (p.ys() + p.full() + p.ys() + p.low()) + 8.0 * p.low(); }
// v1 also writes the pooled temporary and reads it back in the concat copy.
inline double pool_concat_unfused_bytes(const FrruProblem& p) { return pool_concat_bytes(p) + 8.0 * p.low(); }
// conv1x1_upsample_add, compulsory: y_out, z_in read, z_out written, weight and bias read.
inline double upadd_bytes(const FrruProblem& p) {
  return 4.0 * (p.ys() + 2.0 * p.full() + double(p.Cz) * p.Cy + p.Cz);
}
// What the fused launcher moves: + the low-res map's write and read (L2-resident at these sizes).
inline double upadd_fused_bytes(const FrruProblem& p) { return upadd_bytes(p) + 8.0 * p.low(); }
// v1: + the full-resolution upsampled temporary's write and read.
inline double upadd_unfused_bytes(const FrruProblem& p) { return upadd_fused_bytes(p) + 8.0 * p.full(); }
// 2 * Cy * Cz per low-res pixel + bias, 10 per z element (interpolation 6 mul + 3 add, residual add).
inline double upadd_flops(const FrruProblem& p) {
  return double(p.N) * p.h() * p.w() * (2.0 * p.Cy * p.Cz + p.Cz) + 10.0 * p.full();
}
double upadd_rtol(const FrruProblem& p);   // for errors relative to the sum of |terms|

struct FrruPoolData {
  std::vector<float> y, z, out_ref;
  std::vector<int64_t> idx_ref;   // [N, Cz, h, w]: flat ih * W + iw of the first maximum
};
struct FrruUpData {
  std::vector<float> y, z, w, b, out_ref;
  std::vector<float> scale;   // the op on |y|, |z|, |w|, |b|: sum of |terms| per output
};
// The pool_concat shapes (each FRRU stage's input y) and the conv1x1_upsample_add shapes (its y_out).
std::vector<FrruProblem> frru_pool_problems(bool small);
std::vector<FrruProblem> frru_upadd_problems(bool small);
FrruPoolData make_frru_pool_data(const FrruProblem& p, uint64_t seed);
FrruUpData make_frru_upadd_data(const FrruProblem& p, uint64_t seed);
// got vs want element by element (every mismatch counts as bad; max abs = largest index distance).
ErrorStats compare_exact(const std::vector<int64_t>& got, const std::vector<int64_t>& want);

// One validation line: "<kernel> <problem> v<k> <name>: max abs .. max rel .. ok|FAILED".
void print_check(const char* kernel, const std::string& problem, int version, const char* version_name,
                 const ErrorStats& e);

}  // namespace moeseg::lab
