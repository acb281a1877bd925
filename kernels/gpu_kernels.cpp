// Picks the kernel table of the CUDA device in use (see kernels/gpu_kernels.h).
#include "kernels/gpu_kernels.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/allocator.h"
#include "core/cuda_emulation.h"
#include "core/error.h"
#include "core/half.h"
#include "core/named_enum.h"
#include "core/tensor.h"

namespace moeseg {

namespace {

// The tensor core's device-side copy and fill (core/tensor.h DeviceCopyOps) on the CUDA kernels
// of kernels/cuda/tensor_copy.cu.
bool layout_of(const Tensor& t, GpuStridedLayout& l) {
  if (t.dim() > 8) return false;
  l.ndim = static_cast<int>(t.dim());
  for (int i = 0; i < l.ndim; ++i) l.sizes[i] = t.sizes()[i], l.strides[i] = t.strides()[i];
  return true;
}

bool cuda_copy(const Tensor& dst, const Tensor& src) {
  if (!dst.device().is_cuda() || dst.impl().storage == src.impl().storage) return false;   // overlap: mirrors
  GpuStridedLayout dl, sl;
  if (!layout_of(dst, dl) || !layout_of(src, sl)) return false;
  gpu_kernels().strided_copy(dst.raw_data(), dl, src.raw_data(), sl, static_cast<int>(dtype_size(dst.dtype())));
  return true;
}

bool cuda_fill(const Tensor& dst, double value) {
  if (!dst.device().is_cuda()) return false;
  GpuStridedLayout l;
  if (!layout_of(dst, l)) return false;
  uint64_t bits = 0;
  auto put = [&](auto v) { std::memcpy(&bits, &v, sizeof(v)); };
  switch (dst.dtype()) {
    case DType::Float32: put(static_cast<float>(value)); break;
    case DType::Float64: put(value); break;
    case DType::Int32: put(static_cast<int32_t>(value)); break;
    case DType::Int64: put(static_cast<int64_t>(value)); break;
    case DType::UInt8: put(static_cast<uint8_t>(value)); break;
    case DType::Float16: put(float_to_fp16(static_cast<float>(value))); break;
    case DType::BFloat16: put(float_to_bf16(static_cast<float>(value))); break;
  }
  gpu_kernels().fill_strided(dst.raw_data(), l, static_cast<int>(dtype_size(dst.dtype())), bits);
  return true;
}

[[maybe_unused]] const bool g_copy_ops_installed = [] {
  set_device_copy_ops({cuda_copy, cuda_fill});
  return true;
}();

}  // namespace

const GpuKernels& gpu_kernels() {
  MOESEG_CHECK(device_available(DeviceType::CUDA), "gpu_kernels: no CUDA device (no GPU, and CUDA is not emulated)");
  if (cuda_emulated()) return coc_kernel_table();
#ifdef MOESEG_WITH_CUDA
  return cuda_kernel_table();
#else
  MOESEG_FAIL("gpu_kernels: a CUDA backend is registered but this build has no CUDA kernels");
#endif
}

namespace {
const NamedValue<ConvBackend> kConvBackendNames[] = {{ConvBackend::Ours, "ours"}, {ConvBackend::Cudnn, "cudnn"}};

// -1 until the first conv2d_impl() reads MOESEG_CONV (unset or empty: ours). Atomic: convs may
// run on several threads; two first calls at once parse the same variable and store the same
// value. A bad value throws and is read again at the next call.
std::atomic<int>& conv_impl_storage() {
  static std::atomic<int> impl{-1};
  return impl;
}
}  // namespace

ConvBackend parse_conv_backend(const std::string& name, const std::string& where) {
  return parse_named(kConvBackendNames, name, where);
}
std::string to_string(ConvBackend b) { return name_of(kConvBackendNames, b); }

ConvBackend conv2d_impl() {
  std::atomic<int>& impl = conv_impl_storage();
  int v = impl.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* env = std::getenv("MOESEG_CONV");
    v = static_cast<int>(env && *env ? parse_conv_backend(env, "environment variable MOESEG_CONV") : ConvBackend::Ours);
    impl.store(v, std::memory_order_relaxed);
  }
  return static_cast<ConvBackend>(v);
}

void set_conv2d_impl(ConvBackend b) {
  (void)to_string(b);   // a value outside the enum (a cast) is refused here
  conv_impl_storage().store(static_cast<int>(b), std::memory_order_relaxed);
}

}  // namespace moeseg
