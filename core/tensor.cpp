// Tensor storage, factories, metadata, strided copies and the view ops with their backward nodes.
#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/autograd.h"
#include "core/half.h"
#include "core/strided_loop.h"
#include "core/core_ops.h"
#include "core/device_memory_guard.h"

namespace moeseg {

// ---- shapes -----------------------------------------------------------------------------------

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);
  MOESEG_CHECK(dim >= -n && dim < n, op, ": dim ", dim, " out of range for a ", ndim, "-d tensor");
  return dim < 0 ? dim + n : dim;
}

// ---- storage ----------------------------------------------------------------------------------

Storage::Storage(size_t nb, Device dev) : nbytes(nb), device(dev) {
  data = allocator_for(dev).allocate(nb);
}

Storage::~Storage() { allocator_for(device).release(data, nbytes); }

// ---- factories --------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) MOESEG_CHECK(d >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  if (device.is_cuda() && device_memory_guard_enabled())   // named in a host-dereference report
    label_guarded_device_memory(impl->storage->data, std::string(dtype_name(dtype)) + " " + shape_str(shape));
  impl->sizes = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend_for(device).memset_zero(t.raw_data(), t.numel() * dtype_size(dtype));
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, Device{});
  t.fill_(value);
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  Tensor t = empty({n}, dtype, Device{});
  dispatch_all(dtype, "arange", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(i);
  });
  return device.is_cpu() ? t : t.to(device);
}

// ---- metadata ---------------------------------------------------------------------------------

int64_t Tensor::size(int64_t d) const {
  MOESEG_CHECK(dim() > 0, "size: dim ", d, " of a 0-d tensor ", str());
  return sizes()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  MOESEG_CHECK(dim() > 0, "stride: dim ", d, " of a 0-d tensor ", str());
  return strides()[wrap_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;   // no element to misplace
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (sizes()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= sizes()[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(sizes()) + " on " + device().str();
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data) + impl().offset * dtype_size(dtype());
}

double Tensor::at(std::initializer_list<int64_t> index) const {
  MOESEG_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: ", index.size(), " indices for ", str());
  Tensor c = device().is_cpu() ? *this : to(Device{});
  int64_t off = 0, d = 0;
  for (int64_t i : index) {
    MOESEG_CHECK(i >= 0 && i < sizes()[d], "at: index ", i, " out of range for dim ", d, " of ", str());
    off += i * strides()[d++];
  }
  return dispatch_all(dtype(), "at", [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    return static_cast<double>(static_cast<const T*>(c.impl().storage->data)[c.offset() + off]);
  });
}

double Tensor::item() const {
  MOESEG_CHECK(numel() == 1, "item: tensor ", str(), " has ", numel(), " elements, not 1");
  Tensor c = to(Device{}).contiguous();
  return dispatch_all(dtype(), "item", [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    return static_cast<double>(*c.data<T>());
  });
}

void check_defined(const Tensor& t, const char* op, const char* arg) {
  MOESEG_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
}
void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  MOESEG_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.str(), " and ", b.str());
}
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  MOESEG_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.str(), " and ", b.str());
}
void check_dim(const Tensor& t, int64_t ndim, const char* op, const char* arg) {
  check_defined(t, op, arg);
  MOESEG_CHECK(t.dim() == ndim, op, ": '", arg, "' must be ", ndim, "-d, got ", t.str());
}
void check_not_empty(const Tensor& t, const char* op, const char* arg) {
  check_defined(t, op, arg);
  MOESEG_CHECK(t.numel() > 0, op, ": '", arg, "' is empty: ", t.str());
}
void check_cpu(const Tensor& t, const char* op) {
  MOESEG_CHECK(t.device().is_cpu(), op, ": no kernel for ", t.device().str(), " yet (tensor ", t.str(), ")");
}

void for_each_offset(const Shape& sizes, const Shape& strides, int64_t base, const std::function<void(int64_t)>& fn) {
  StridedLoop<1> loop(sizes, {strides});
  loop.for_each_row({base}, [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
    for (int64_t i = 0; i < n; ++i) fn(off[0] + i * st[0]);
  });
}

// ---- in-place writes --------------------------------------------------------------------------

namespace {

template <typename D, typename S>
void copy_typed(const Tensor& dst, const Tensor& src) {
  D* d = static_cast<D*>(dst.impl().storage->data);
  const S* s = static_cast<const S*>(src.impl().storage->data);
  StridedLoop<2> loop(dst.sizes(), {dst.strides(), src.strides()});
  loop.for_each_row({dst.offset(), src.offset()},
                    [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                      D* dp = d + off[0];
                      const S* sp = s + off[1];
                      if (st[0] == 1 && st[1] == 1) {
                        for (int64_t i = 0; i < n; ++i) dp[i] = static_cast<D>(sp[i]);
                      } else {
                        for (int64_t i = 0; i < n; ++i) dp[i * st[0]] = static_cast<D>(sp[i * st[1]]);
                      }
                    });
}

bool is_half(DType t) { return t == DType::Float16 || t == DType::BFloat16; }

// Copies to/from the 16-bit storage types through float (a rare path: conversions at load/save).
void copy_half(const Tensor& dst, const Tensor& src) {
  auto read = [&](int64_t o) -> float {
    const void* base = src.impl().storage->data;
    switch (src.dtype()) {
      case DType::Float16: return fp16_to_float(static_cast<const uint16_t*>(base)[o]);
      case DType::BFloat16: return bf16_to_float(static_cast<const uint16_t*>(base)[o]);
      default: return dispatch_all(src.dtype(), "copy_", [&](auto tag) -> float {
        using S = typename decltype(tag)::type;
        return static_cast<float>(static_cast<const S*>(base)[o]);
      });
    }
  };
  std::vector<float> vals;
  vals.reserve(src.numel());
  for_each_offset(src.sizes(), src.strides(), src.offset(), [&](int64_t o) { vals.push_back(read(o)); });
  size_t i = 0;
  void* dbase = dst.impl().storage->data;
  for_each_offset(dst.sizes(), dst.strides(), dst.offset(), [&](int64_t o) {
    float v = vals[i++];
    switch (dst.dtype()) {
      case DType::Float16: static_cast<uint16_t*>(dbase)[o] = float_to_fp16(v); break;
      case DType::BFloat16: static_cast<uint16_t*>(dbase)[o] = float_to_bf16(v); break;
      default: dispatch_all(dst.dtype(), "copy_", [&](auto tag) {
        using D = typename decltype(tag)::type;
        static_cast<D*>(dbase)[o] = static_cast<D>(v);
      });
    }
  });
}

}  // namespace

namespace {
DeviceCopyOps g_device_copy_ops;   // zero-initialised before any static constructor runs
}  // namespace

void set_device_copy_ops(const DeviceCopyOps& ops) { g_device_copy_ops = ops; }

void Tensor::copy_(const Tensor& src) {
  check_defined(src, "copy_", "src");
  Tensor s = src.sizes() == sizes() ? src : src.expand(sizes());
  const bool on_host = device().is_cpu() && s.device().is_cpu();
  if (!on_host && is_contiguous() && s.is_contiguous() && dtype() == s.dtype()) {
    // One flat copy between or within devices.
    backend_for(device().is_cpu() ? s.device() : device())
        .copy(raw_data(), device(), s.raw_data(), s.device(), numel() * dtype_size(dtype()));
  } else if (!on_host && device() == s.device() && dtype() == s.dtype() && g_device_copy_ops.copy &&
             g_device_copy_ops.copy(*this, s)) {
    // A strided or broadcast copy within one device, by the device's kernel.
  } else if (!on_host && !device().is_cpu() && is_contiguous()) {
    // Converting copies into a contiguous device tensor: converted on the host, one upload. The
    // destination is not downloaded first (it is overwritten whole; compute-sanitizer's initcheck
    // flagged the download of a fresh tensor's uninitialised bytes).
    Tensor h = Tensor::empty(sizes(), dtype(), Device{});
    h.copy_(host_mirror(s));
    backend_for(device()).copy(raw_data(), device(), h.raw_data(), Device{}, numel() * dtype_size(dtype()));
  } else if (!on_host) {
    // Converting copies, or copies between a device and a strided host tensor: through host mirrors.
    Tensor hd = host_mirror(*this);
    hd.copy_(host_mirror(s));
    if (!device().is_cpu()) upload_mirror(hd, *this);
  } else if (is_half(dtype()) || is_half(s.dtype())) {
    copy_half(*this, s);
  } else {
    dispatch_all(dtype(), "copy_", [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      dispatch_all(s.dtype(), "copy_", [&](auto stag) {
        using S = typename decltype(stag)::type;
        copy_typed<D, S>(*this, s);
      });
    });
  }
  bump_version();
}

void Tensor::fill_(double value) {
  if (!device().is_cpu() && g_device_copy_ops.fill && g_device_copy_ops.fill(*this, value)) {
    bump_version();
    return;
  }
  if (!device().is_cpu()) {
    Tensor h = host_mirror(*this);
    h.fill_(value);
    upload_mirror(h, *this);
    bump_version();
    return;
  }
  dispatch_all(dtype(), "fill_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T v = static_cast<T>(value);
    T* base = static_cast<T*>(impl().storage->data);
    for_each_offset(sizes(), strides(), offset(), [&](int64_t o) { base[o] = v; });
  });
  bump_version();
}

// ---- view backward nodes ----------------------------------------------------------------------

namespace {

struct ReshapeBackward final : autograd::Node {
  Shape input_sizes;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.reshape(input_sizes)}; }
  std::string name() const override { return "ReshapeBackward"; }
};

struct PermuteBackward final : autograd::Node {
  std::vector<int64_t> inverse;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.permute(inverse)}; }
  std::string name() const override { return "PermuteBackward"; }
};

struct SliceBackward final : autograd::Node {
  Shape input_sizes;
  int64_t dim, start, end, step;
  bool squeeze;  // select(): the sliced dim was removed
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gi = Tensor::zeros(input_sizes, g.dtype(), g.device());
    Tensor region = gi.slice(dim, start, end, step);
    region.copy_(squeeze ? g.unsqueeze(dim) : g);
    return {gi};
  }
  std::string name() const override { return "SliceBackward"; }
};

struct ExpandBackward final : autograd::Node {
  Shape input_sizes;
  std::vector<Tensor> backward(const Tensor& g) override { return {core_ops().sum_to(g, input_sizes)}; }
  std::string name() const override { return "ExpandBackward"; }
};

struct IdentityBackward final : autograd::Node {
  std::vector<Tensor> backward(const Tensor& g) override { return {g}; }
  std::string name() const override { return "CloneBackward"; }
};

struct ToDTypeBackward final : autograd::Node {
  DType input_dtype;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.to(input_dtype)}; }
  std::string name() const override { return "ToDTypeBackward"; }
};

struct ToDeviceBackward final : autograd::Node {
  Device input_device;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.to(input_device)}; }
  std::string name() const override { return "ToDeviceBackward"; }
};

// A new TensorImpl aliasing this tensor's storage with other geometry.
Tensor alias(const Tensor& t, const Shape& sizes, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.impl().storage;
  impl->offset = offset;
  impl->sizes = sizes;
  impl->strides = strides;
  impl->dtype = t.dtype();
  return Tensor(std::move(impl));
}

template <typename NodeT>
Tensor record(const Tensor& input, Tensor out, std::shared_ptr<NodeT> node) {
  if (autograd::needs_grad({&input})) autograd::connect(node, {&input}, out);
  return out;
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Tensor& t) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      MOESEG_CHECK(infer < 0, op, ": more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      MOESEG_CHECK(out[i] >= 0, op, ": invalid size in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    MOESEG_CHECK(known > 0 && numel % known == 0, op, ": cannot view ", t.str(), " as ", shape_str(shape));
    out[infer] = numel / known;
  }
  MOESEG_CHECK(shape_numel(out) == numel, op, ": cannot view ", t.str(), " (", numel, " elements) as ",
               shape_str(shape));
  return out;
}

}  // namespace

Tensor host_mirror(const Tensor& t) {
  if (t.device().is_cpu()) return t.detach();
  const Storage& st = *t.impl().storage;
  const int64_t elems = static_cast<int64_t>(st.nbytes / dtype_size(t.dtype()));
  Tensor host = Tensor::empty({elems}, t.dtype(), Device{});
  backend_for(t.device()).copy(host.raw_data(), Device{}, st.data, t.device(), st.nbytes);
  return alias(host, t.sizes(), t.strides(), t.offset());
}

void upload_mirror(const Tensor& host, const Tensor& dev) {
  MOESEG_CHECK(host.device().is_cpu() && !dev.device().is_cpu() && host.dtype() == dev.dtype() &&
                   host.impl().storage->nbytes == dev.impl().storage->nbytes,
               "upload_mirror: ", host.str(), " is not a host mirror of ", dev.str());
  backend_for(dev.device()).copy(dev.impl().storage->data, dev.device(), host.impl().storage->data, Device{},
                                 dev.impl().storage->nbytes);
}


// ---- views ------------------------------------------------------------------------------------

Tensor Tensor::view(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), "view", *this);
  MOESEG_CHECK(is_contiguous(), "view: tensor ", str(), " is not contiguous; use reshape() or contiguous()");
  auto node = std::make_shared<ReshapeBackward>();
  node->input_sizes = sizes();
  return record(*this, alias(*this, s, contiguous_strides(s), offset()), node);
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), "reshape", *this);   // errors name reshape, not view
  if (is_contiguous()) return view(s);
  return contiguous().view(s);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  Shape out(sizes().begin(), sizes().begin() + s);
  int64_t m = 1;
  for (int64_t i = s; i <= e; ++i) m *= sizes()[i];
  out.push_back(m);
  out.insert(out.end(), sizes().begin() + e + 1, sizes().end());
  return reshape(out);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  MOESEG_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: ", dims.size(), " dims for ", str());
  Shape s(dim()), st(dim());
  std::vector<int64_t> inverse(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    MOESEG_CHECK(inverse[d] < 0, "permute: dim ", d, " repeated in the permutation of ", str());
    inverse[d] = i;
    s[i] = sizes()[d];
    st[i] = strides()[d];
  }
  auto node = std::make_shared<PermuteBackward>();
  node->inverse = inverse;
  return record(*this, alias(*this, s, st, offset()), node);
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[wrap_dim(a, dim(), "transpose")], p[wrap_dim(b, dim(), "transpose")]);
  return permute(p);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  MOESEG_CHECK(dim() > 0, "slice: cannot slice a 0-d tensor ", str());
  d = wrap_dim(d, dim(), "slice");
  MOESEG_CHECK(step > 0, "slice: step must be positive, got ", step, " for ", str());
  int64_t n = sizes()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = sizes(), st = strides();
  s[d] = (end - start + step - 1) / step;
  st[d] = strides()[d] * step;
  auto node = std::make_shared<SliceBackward>();
  node->input_sizes = sizes();
  node->dim = d; node->start = start; node->end = end; node->step = step; node->squeeze = false;
  return record(*this, alias(*this, s, st, offset() + start * strides()[d]), node);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  MOESEG_CHECK(dim() > 0, "select: cannot select from a 0-d tensor ", str());
  d = wrap_dim(d, dim(), "select");
  int64_t n = sizes()[d];
  MOESEG_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", d, " of ", str());
  if (index < 0) index += n;
  Shape s = sizes(), st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  auto node = std::make_shared<SliceBackward>();
  node->input_sizes = sizes();
  node->dim = d; node->start = index; node->end = index + 1; node->step = 1; node->squeeze = true;
  return record(*this, alias(*this, s, st, offset() + index * strides()[d]), node);
}

Tensor Tensor::expand(const Shape& shape) const {
  MOESEG_CHECK(static_cast<int64_t>(shape.size()) >= dim(), "expand: cannot expand ", str(), " to ",
               shape_str(shape));
  int64_t lead = static_cast<int64_t>(shape.size()) - dim();
  Shape s(shape.size()), st(shape.size());
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    int64_t j = i - lead;
    int64_t target = shape[i];
    if (j < 0) {
      MOESEG_CHECK(target >= 0, "expand: -1 not allowed for new leading dims in ", shape_str(shape));
      s[i] = target; st[i] = 0;
      continue;
    }
    int64_t cur = sizes()[j];
    if (target == -1) target = cur;
    MOESEG_CHECK(cur == target || cur == 1, "expand: cannot expand ", str(), " to ", shape_str(shape),
                 " (dim ", i, ": ", cur, " vs ", target, ")");
    s[i] = target;
    st[i] = cur == target ? strides()[j] : 0;
  }
  if (s == sizes()) return *this;
  auto node = std::make_shared<ExpandBackward>();
  node->input_sizes = sizes();
  return record(*this, alias(*this, s, st, offset()), node);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0 || sizes()[d] != 1) return *this;
  // Always a view (dropping a size-1 dim never needs a copy, whatever the other strides are).
  Shape s = sizes(), st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  auto node = std::make_shared<ReshapeBackward>();
  node->input_sizes = sizes();
  return record(*this, alias(*this, s, st, offset()), node);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = sizes(), st = strides();
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, d < dim() ? strides()[d] * sizes()[d] : 1);
  auto node = std::make_shared<ReshapeBackward>();
  node->input_sizes = sizes();
  return record(*this, alias(*this, s, st, offset()), node);
}

// ---- copies -----------------------------------------------------------------------------------

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(sizes(), dtype(), device());
  out.copy_(*this);
  out.impl().storage->version = 0;
  return record(*this, out, std::make_shared<IdentityBackward>());
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = Tensor::empty(sizes(), t, device());
  out.copy_(*this);
  if (!is_floating(t) || !is_floating(dtype()) || is_half(t) || is_half(dtype())) return out;
  auto node = std::make_shared<ToDTypeBackward>();
  node->input_dtype = dtype();
  return record(*this, out, node);
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor src = contiguous();
  Tensor out = Tensor::empty(sizes(), dtype(), d);
  backend_for(d.is_cpu() ? device() : d).copy(out.raw_data(), d, src.raw_data(), device(), numel() * dtype_size(dtype()));
  auto node = std::make_shared<ToDeviceBackward>();
  node->input_device = device();
  return record(*this, out, node);
}

void Tensor::move_storage_to(Device d) {
  if (d == device()) return;
  MOESEG_CHECK(is_leaf(), "move_storage_to: ", str(), " is not a leaf (it was made by an op)");
  Tensor moved = detach().to(d);   // contiguous copy on d
  impl().storage = moved.impl().storage;
  impl().offset = 0;
  impl().strides = moved.strides();
  impl().grad.reset();
}

void Tensor::convert_storage_to(DType dt) {
  if (dt == dtype()) return;
  MOESEG_CHECK(is_leaf(), "convert_storage_to: ", str(), " is not a leaf (it was made by an op)");
  MOESEG_CHECK(is_floating(dtype()) && is_floating(dt), "convert_storage_to: ", str(), " -> ", dtype_name(dt),
               ": only float tensors convert between float types");
  Tensor converted = detach().to(dt).contiguous();
  impl().storage = converted.impl().storage;
  impl().offset = 0;
  impl().strides = converted.strides();
  impl().dtype = dt;
  impl().grad.reset();
}

namespace {
CoreOps& installed_core_ops() {
  static CoreOps ops;
  return ops;
}
}  // namespace

void set_core_ops(const CoreOps& ops) { installed_core_ops() = ops; }

const CoreOps& core_ops() {
  const CoreOps& ops = installed_core_ops();
  MOESEG_CHECK(ops.add != nullptr && ops.add_ != nullptr && ops.sum_to != nullptr,
               "core: the ops add / add_ / sum_to are not installed (kernels/elementwise.cpp installs them at start-up)");
  return ops;
}

Tensor Tensor::detach() const { return alias(*this, sizes(), strides(), offset()); }

Tensor& Tensor::set_requires_grad(bool on) {
  MOESEG_CHECK(!on || is_floating(dtype()), "set_requires_grad: only float tensors can require grad, got ", str());
  MOESEG_CHECK(is_leaf() || on, "set_requires_grad(false): tensor is not a leaf; use detach()");
  impl().requires_grad = on;
  return *this;
}

}  // namespace moeseg
