// Cross-entropy on logits, fused with log-softmax over the class dim (dim 1), PyTorch
// F.cross_entropy semantics: logits [N, C] or [N, C, H, W], int64 targets [N] or [N, H, W],
// ignore_index pixels contribute nothing, optional class weights [C]; reduction "mean" divides by
// the summed weights of the non-ignored targets, "sum" sums, "none" returns the per-element loss.
// A target outside [0, C) that is not ignore_index is an error naming the value.
#pragma once
#include <string>

#include "core/tensor.h"

namespace moeseg {

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& class_weights = Tensor(),
                     int64_t ignore_index = -100, const std::string& reduction = "mean");

}  // namespace moeseg
