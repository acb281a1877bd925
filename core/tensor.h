// The tensor: a typed, strided view into reference-counted device storage, plus the autograd
// fields (requires_grad, grad, grad_fn). Views (slice, reshape of contiguous data, permute,
// expand, transpose) share storage and never copy; contiguous() copies only when needed.
// Differentiable math on tensors lives in kernels/ (one header per op); this file is the data
// structure, the view ops and the factories.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace moeseg {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);   // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// Owns one allocation; views share it through shared_ptr.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  uint64_t version = 0;   // bumped by in-place writes through any view; saved tensors check it
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

namespace autograd { struct Node; }
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape sizes, strides;
  DType dtype = DType::Float32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;            // accumulated gradient of a leaf (or retained)
  std::shared_ptr<autograd::Node> grad_fn;     // the op that made this tensor, if differentiable
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = {});
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = {});
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = {});
  static Tensor arange(int64_t n, DType dtype = DType::Float32, Device device = {});
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = {});
  static Tensor scalar(double value, DType dtype = DType::Float32, Device device = {});

  // ---- metadata --------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& sizes() const { return impl().sizes; }
  const Shape& shape() const { return impl().sizes; }
  const Shape& strides() const { return impl().strides; }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(impl().sizes.size()); }
  int64_t numel() const { return shape_numel(impl().sizes); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  int64_t offset() const { return impl().offset; }
  bool is_contiguous() const;
  std::string str() const;   // "float32[2, 3] on cpu" — for error messages
  TensorImpl& impl() const {
    MOESEG_CHECK(impl_ != nullptr, "tensor: use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- data access (CPU) -----------------------------------------------------------------
  // Pointer to element [0,...,0] of this view, checked against the dtype.
  template <typename T> T* data() const;
  void* raw_data() const;
  // Element at a multi-index, any dtype read as double (tests and small host code).
  double at(std::initializer_list<int64_t> index) const;
  double item() const;                 // one-element tensor
  template <typename T> std::vector<T> to_vector() const;   // logical order, any layout

  // ---- views (share storage) -------------------------------------------------------------
  Tensor view(const Shape& shape) const;          // contiguous only; one -1 allowed
  Tensor reshape(const Shape& shape) const;       // view when possible, else copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const { return slice(dim, start, start + length); }
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor expand(const Shape& shape) const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- copies ----------------------------------------------------------------------------
  Tensor contiguous() const;
  Tensor clone() const;                         // differentiable copy
  Tensor to(DType dtype) const;                 // differentiable between float types
  Tensor to(Device device) const;
  Tensor detach() const;                        // shares storage, no grad_fn
  // Moves a leaf's values to `d` in place: every handle to this tensor sees the new device (how
  // Module::to moves parameters and buffers held by layers). Its gradient is dropped.
  void move_storage_to(Device d);
  // Converts a floating-point leaf's values to the float type `dtype` in place, like
  // move_storage_to (how Module::to(DType) runs a whole model in float64). Gradient dropped.
  void convert_storage_to(DType dtype);
  void copy_(const Tensor& src);                // in place, broadcasting src; not recorded by autograd
  void fill_(double value);                     // in place
  void zero_() { fill_(0.0); }

  // ---- autograd --------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad() { impl().grad.reset(); }
  // Runs reverse-mode autodiff from this tensor; grad defaults to ones for a one-element tensor.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  void bump_version() const { impl().storage->version++; }
  uint64_t version() const { return impl().storage->version; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Normalises a possibly negative dim into [0, ndim), naming the op on error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

// Checks used by ops; each names the op and the tensors' shapes/dtypes on failure.
void check_defined(const Tensor& t, const char* op, const char* arg);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
void check_dim(const Tensor& t, int64_t ndim, const char* op, const char* arg);
void check_not_empty(const Tensor& t, const char* op, const char* arg);
void check_cpu(const Tensor& t, const char* op);

// Device tensors without a device kernel for some core operation (strided copies, fill, random
// fills, dtype casts): host_mirror gives a CPU tensor with t's sizes, strides and offset over a
// host copy of t's whole storage (no graph); upload_mirror writes such a mirror back into t's
// storage. Slow (whole-storage round trips) but correct for any view; ops replace it by kernels.
Tensor host_mirror(const Tensor& t);
void upload_mirror(const Tensor& host, const Tensor& dev);

// Device-side strided copies and fills, installed by kernels/ (kernels/gpu_kernels.cpp: the CUDA
// tensor_copy kernels). Each returns false for a case it does not handle (another dtype pair,
// overlapping operands, > 8 dims) and copy_/fill_ then take the host-mirror path.
struct DeviceCopyOps {
  bool (*copy)(const Tensor& dst, const Tensor& src) = nullptr;   // same device and dtype, dst.sizes == src.sizes
  bool (*fill)(const Tensor& dst, double value) = nullptr;
};
void set_device_copy_ops(const DeviceCopyOps& ops);

// Calls fn(linear_offset_in_elements) for every element of (sizes, strides), in row-major order.
// The workhorse of strided copies; fast paths exist for contiguous data in the callers.
void for_each_offset(const Shape& sizes, const Shape& strides, int64_t base,
                     const std::function<void(int64_t)>& fn);

// ---- template definitions -----------------------------------------------------------------
template <typename T>
T* Tensor::data() const {
  MOESEG_CHECK(dtype_of<T>::value == dtype(), "tensor data<", dtype_name(dtype_of<T>::value),
               ">: tensor is ", str());
  return static_cast<T*>(impl().storage->data) + impl().offset;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  MOESEG_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
               " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>::value, Device{});
  std::copy(values.begin(), values.end(), t.data<T>());
  return device.is_cpu() ? t : t.to(device);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device{}).contiguous();
  MOESEG_CHECK(dtype_of<T>::value == c.dtype(), "to_vector<", dtype_name(dtype_of<T>::value), ">: tensor is ", str());
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}

}  // namespace moeseg
