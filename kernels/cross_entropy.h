// Cross-entropy on logits, fused with log-softmax over the class dim (dim 1), PyTorch
// F.cross_entropy semantics: logits [N, C] or [N, C, H, W], int64 targets [N] or [N, H, W],
// ignore_index pixels contribute nothing, optional class weights [C]; Reduction::Mean divides by
// the summed weights of the non-ignored targets, Sum sums, None returns the per-element loss.
// A target outside [0, C) that is not ignore_index is an error naming the value.
#pragma once
#include <string>

#include "core/tensor.h"

namespace moeseg {

// PyTorch's reduction= names: "mean", "sum", "none" (parse_reduction / to_string, for the edges
// where the name arrives as text: fixtures, configs).
enum class Reduction { None, Mean, Sum };
// `where` names the source and key, e.g. "fixture x: key 'reduction'": an unknown name throws
// "<where> is 'average' (known: mean, sum, none)".
Reduction parse_reduction(const std::string& name, const std::string& where);
std::string to_string(Reduction r);

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& class_weights = Tensor(),
                     int64_t ignore_index = -100, Reduction reduction = Reduction::Mean);

}  // namespace moeseg
