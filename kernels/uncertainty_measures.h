// The per-pixel uncertainty measures and the per-batch calibration sums as ops over tensors: one
// launch of kernels/cuda/uncertainty_measures.cu on a CUDA device, a float64 loop with the same
// arithmetic on the CPU. The definitions (and the CPU float64 oracle the rest of the library
// uses) are training/uncertainty.h and training/calibration.h, which call these ops for CUDA
// tensors. Results stay on the inputs' device; host code reads them only after .to(cpu).
// Precision on CUDA: member probabilities and gates are read as float32 (the model's dtype;
// other dtypes take the CPU loop, announced by note_cpu_fallback), every sum in double; the
// calibration op reads float64 probabilities and uncertainties (float32 is widened exactly).
// Tests: tests/cuda_kernels/test_uncertainty_measures.cpp (CUDA-on-CPU against training/).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

// softmax over dim 1 of logits [N, C, H, W]: float32 on a CUDA device (exp and sum in double,
// rounded once), float64 on the CPU (= training's softmax_probs_f64).
Tensor class_softmax_probs(const Tensor& logits);

struct UncertaintyPixelMaps {
  Tensor mean_probs;           // float64 [N, C, H, W] (undefined when not asked for)
  Tensor predicted;            // int64 [N, H, W], first maximum of mean_probs
  Tensor predictive_entropy;   // float64 [N, H, W], H[p̄] in nats
  Tensor mutual_information;   // float64 [N, H, W], H[p̄] − mean_m H[p_m]
  Tensor expert_std;           // float64 [N, H, W], std_m p_m at the predicted class (raw, M − 1)
};
// member_probs: M >= 1 tensors [N, C, H, W] on one device; gate [N, G, M] (G = 1 or C) or
// undefined (equal weights). The mixture as training/uncertainty.h's mixture_probs.
UncertaintyPixelMaps uncertainty_pixel_maps(const std::vector<Tensor>& member_probs, const Tensor& gate = Tensor(),
                                            bool want_mean_probs = true);

// Normalised gate entropy per pixel, float64 [N, H, W] (training/uncertainty.h gate_entropy):
// gate [N, G, E] (E >= 2), predicted int64 [N, H, W]; reduction 0 predicted class, 1 mean gate,
// 2 mean entropy. On CUDA a predicted class outside [0, G) gives NaN (the CPU loop throws).
Tensor gate_entropy_pixel_map(const Tensor& gate, const Tensor& predicted, int reduction);

// x / max(x) for x >= 0 (x itself when the max is 0), and x / divisor: float64, same device.
Tensor divide_by_max(const Tensor& x);
Tensor divide_by(const Tensor& x, double divisor);

// One batch's calibration sums over valid pixels (training/calibration.h): mean_probs
// [N, C, H, W], labels int64 [N, H, W], uncertainty [N, H, W]. Throws for a label outside [0, C)
// that is not the ignore index.
struct CalibrationCounts {
  int64_t n = 0, n_correct = 0;
  double brier_multiclass_sum = 0, nll_sum = 0, brier_reference_sum = 0, nll_reference_sum = 0;
  // per bin, standard (q = max p̄) and reference (q = 1 − u) forms
  std::vector<int64_t> count, count_reference;
  std::vector<double> conf_sum, correct_sum, conf_sum_reference, correct_sum_reference;
  // per threshold t_k = 0.01 + 0.02 k, k < 50
  std::vector<int64_t> n_certain, n_accurate_certain, n_inaccurate_uncertain;
  // every valid pixel's uncertainty and misclassification, in pixel order (for the exact AUROC)
  std::vector<double> scores;
  std::vector<uint8_t> incorrect;
};
CalibrationCounts calibration_counts(const Tensor& mean_probs, const Tensor& labels, const Tensor& uncertainty,
                                     int64_t ignore_index = 255, int bins = 15);

}  // namespace moeseg
