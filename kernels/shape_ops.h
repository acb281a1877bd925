// Joining and splitting along a dim: concat (torch.cat) and split into given sizes (torch.split
// with a list). split returns views (slices); both are differentiable.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace moeseg {

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);

}  // namespace moeseg
