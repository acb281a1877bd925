// concat (torch.cat) and split (torch.split with a list of sizes) along any dim.
// concat copies each input into its slab of a new tensor with one strided copy (Tensor::copy_,
// which merges contiguous dims into flat loops); its backward hands each input a contiguous copy
// of its slab of the gradient. split returns Tensor::slice views: no copy, and slice already
// records its own backward. Tested by tests/ops/test_shape_ops.cpp.
#include "kernels/shape_ops.h"

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_ops.h"

namespace moeseg {

namespace {

struct ConcatBackward final : autograd::Node {
  int64_t dim = 0;
  std::vector<int64_t> sizes;   // extent of each input along dim
  std::vector<bool> need;
  std::vector<Tensor> backward(const Tensor& g) override {
    std::vector<Tensor> grads(sizes.size());
    int64_t off = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (need[i]) grads[i] = g.slice(dim, off, off + sizes[i]).contiguous();
      off += sizes[i];
    }
    return grads;
  }
  std::string name() const override { return "ConcatBackward"; }
};

}  // namespace

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  MOESEG_CHECK(!tensors.empty(), "concat: no tensors to concatenate");
  for (size_t i = 0; i < tensors.size(); ++i)
    MOESEG_CHECK(tensors[i].defined(), "concat: input ", i, " is undefined");
  const Tensor& first = tensors[0];
  MOESEG_CHECK(first.dim() >= 1, "concat: input 0 ", first.str(), " is 0-d; concat needs at least 1-d inputs");
  const int64_t d = wrap_dim(dim, first.dim(), "concat");
  Shape out_shape = first.sizes();
  out_shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_same_device(first, t, "concat");
    MOESEG_CHECK(t.dtype() == first.dtype(), "concat: input ", i, " is ", t.str(), " but input 0 is ", first.str(),
                 " (dtypes must match)");
    bool ok = t.dim() == first.dim();
    for (int64_t k = 0; ok && k < t.dim(); ++k) ok = k == d || t.size(k) == first.size(k);
    MOESEG_CHECK(ok, "concat: input ", i, " has shape ", shape_str(t.sizes()), " but input 0 has shape ",
                 shape_str(first.sizes()), "; they must match in every dim except dim ", d);
    out_shape[d] += t.size(d);
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  int64_t off = 0;
  for (const Tensor& t : tensors) {
    const int64_t n = t.size(d);
    if (n > 0) out.slice(d, off, off + n).copy_(t.detach());   // out needs no grad: the slice records nothing
    off += n;
  }
  out.impl().storage->version = 0;
  if (autograd::needs_grad(tensors)) {
    auto node = std::make_shared<ConcatBackward>();
    node->dim = d;
    for (const Tensor& t : tensors) {
      node->sizes.push_back(t.size(d));
      node->need.push_back(t.requires_grad());
    }
    autograd::connect(node, tensors, out);
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined(x, "split", "input");
  MOESEG_CHECK(x.dim() >= 1, "split: input ", x.str(), " is 0-d");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    MOESEG_CHECK(sizes[i] >= 0, "split: size ", i, " is negative (", sizes[i], ")");
    total += sizes[i];
  }
  MOESEG_CHECK(total == x.size(d), "split: sizes sum to ", total, " but dim ", d, " of ", x.str(), " has ",
               x.size(d));
  std::vector<Tensor> parts;
  parts.reserve(sizes.size());
  int64_t off = 0;
  for (int64_t s : sizes) {
    parts.push_back(x.slice(d, off, off + s));
    off += s;
  }
  return parts;
}

}  // namespace moeseg
