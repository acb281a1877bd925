// Reductions: sum / mean / max over dims, argmax, top-k, and sum_to (the adjoint of broadcasting).
#pragma once
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

// dims empty = reduce over every dim.
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Max over one dim; the gradient goes to the first maximal element (as PyTorch's max(dim)).
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& a);   // over all elements; the gradient is split evenly between ties (as torch.max())
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);   // int64; first maximal index
// Largest (or smallest) k along dim: values (differentiable) and int64 indices, sorted.
std::pair<Tensor, Tensor> topk(const Tensor& a, int64_t k, int64_t dim = -1, bool largest = true);
// Sums a broadcast gradient back to `shape` (leading dims dropped, size-1 dims kept).
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace moeseg
