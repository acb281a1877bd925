// tensor_copy (kernels/cuda/tensor_copy.cu) through CUDA-on-CPU against the CPU tensor core:
// strided_copy of permuted, stepped-slice and expanded (stride 0) float views into contiguous
// buffers (== Tensor::contiguous()), into a strided destination (a transposed view, == copy_),
// int64 / int16 / uint8 elements as raw bits, 0-d and empty tensors; fill (float, int64, 1- and
// 2-byte) contiguous and into a strided view (== fill_). Exact comparisons.
// covers: fill_kernel fill_strided_kernel copy_flat_kernel strided_copy_kernel
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/tensor.h"
#include "tests/cuda_kernels/cuda_test_util.h"

namespace {

using namespace moeseg;
using namespace moeseg::cuda_test;

coc::StridedLayout layout_of(const Tensor& t) {
  coc::StridedLayout l;
  l.ndim = int(t.dim());
  for (int d = 0; d < l.ndim; ++d) {
    l.sizes[d] = t.size(d);
    l.strides[d] = t.stride(d);
  }
  return l;
}

coc::StridedLayout contiguous_layout(const Shape& s) {
  coc::StridedLayout l;
  l.ndim = int(s.size());
  int64_t st = 1;
  for (int d = l.ndim - 1; d >= 0; --d) {
    l.sizes[d] = s[size_t(d)];
    l.strides[d] = st;
    st *= s[size_t(d)];
  }
  return l;
}

// Copies a float view of `base` (uploaded whole) into a contiguous device buffer and compares
// with view.contiguous().
void check_view_copy(const Tensor& base, const Tensor& view, const std::string& what) {
  CAPTURE(what);
  DeviceBuffer<float> src(base.to_vector<float>()), dst(size_t(std::max<int64_t>(view.numel(), 1)));
  coc::strided_copy(dst.ptr(), contiguous_layout(view.sizes()), src.ptr() + view.offset(), layout_of(view), 4);
  auto got = dst.download();
  got.resize(size_t(view.numel()));
  expect_close(what, got, view.contiguous().to_vector<float>(), 0, 0);
}

TEST_CASE("strided_copy of views matches Tensor::contiguous") {
  Tensor a = Tensor::from_vector(random_vector(3 * 5 * 7 * 2, 1100), {3, 5, 7, 2});
  check_view_copy(a, a, "contiguous (flat path)");
  check_view_copy(a, a.permute({3, 1, 0, 2}), "permute");
  check_view_copy(a, a.transpose(1, 2), "transpose");
  check_view_copy(a, a.slice(2, 1, 7, 2).slice(1, 0, 5, 3), "stepped slices");
  check_view_copy(a, a.select(1, 3), "select");
  Tensor r = Tensor::from_vector(random_vector(5, 1101), {1, 5, 1});
  check_view_copy(r, r.expand({4, 5, 3}), "expand (stride 0)");
  Tensor big = Tensor::from_vector(random_vector(2 * 3 * 2 * 3 * 2 * 3 * 2 * 2, 1102), {2, 3, 2, 3, 2, 3, 2, 2});
  check_view_copy(big, big.permute({7, 6, 5, 4, 3, 2, 1, 0}), "8-d reversed");
  check_view_copy(a, a.slice(0, 1, 1), "empty");
}

TEST_CASE("strided_copy into a strided destination matches copy_") {
  Tensor src = Tensor::from_vector(random_vector(4 * 6, 1200), {4, 6});
  Tensor dst = Tensor::from_vector(random_vector(6 * 4, 1201), {6, 4});
  DeviceBuffer<float> dsrc(src.to_vector<float>()), ddst(dst.to_vector<float>());
  Tensor view = dst.transpose(0, 1);   // [4, 6] view with strides (1, 4)
  coc::strided_copy(ddst.ptr(), layout_of(view), dsrc.ptr(), layout_of(src), 4);
  view.copy_(src);
  expect_close("copy_ into transposed view", ddst.download(), dst.to_vector<float>(), 0, 0);
}

TEST_CASE("strided_copy moves 8-, 2- and 1-byte elements as raw bits") {
  Tensor a = Tensor::arange(3 * 4 * 5, DType::Int64).reshape({3, 4, 5});
  Tensor v = a.permute({2, 0, 1});
  DeviceBuffer<int64_t> src(a.to_vector<int64_t>()), dst(size_t(v.numel()));
  coc::strided_copy(dst.ptr(), contiguous_layout(v.sizes()), src.ptr(), layout_of(v), 8);
  CHECK(dst.download() == v.contiguous().to_vector<int64_t>());

  // 2 x 3 bytes / shorts transposed, checked by hand.
  const std::vector<uint8_t> b = {1, 2, 3, 4, 5, 6};
  DeviceBuffer<uint8_t> sb(b), db(6);
  coc::StridedLayout t{};
  t.ndim = 2;
  t.sizes[0] = 3;
  t.sizes[1] = 2;
  t.strides[0] = 1;
  t.strides[1] = 3;
  coc::strided_copy(db.ptr(), contiguous_layout({3, 2}), sb.ptr(), t, 1);
  CHECK(db.download() == std::vector<uint8_t>{1, 4, 2, 5, 3, 6});
  const std::vector<int16_t> s = {-1, 2, -3, 4, -5, 6};
  DeviceBuffer<int16_t> ss(s), ds(6);
  coc::strided_copy(ds.ptr(), contiguous_layout({3, 2}), ss.ptr(), t, 2);
  CHECK(ds.download() == std::vector<int16_t>{-1, 4, 2, -5, -3, 6});

  // 0-d: one element.
  DeviceBuffer<float> one(std::vector<float>{7.5f}), out(std::vector<float>{0.f});
  coc::strided_copy(out.ptr(), coc::StridedLayout{}, one.ptr(), coc::StridedLayout{}, 4);
  CHECK(out.download()[0] == 7.5f);
}

TEST_CASE("fill and fill_strided match Tensor::fill_") {
  DeviceBuffer<float> f(1001);
  coc::fill_f32(f.ptr(), 1001, -2.25f);
  CHECK(f.download() == std::vector<float>(1001, -2.25f));
  DeviceBuffer<int64_t> i(37);
  coc::fill_i64(i.ptr(), 37, -(int64_t(1) << 40));
  CHECK(i.download() == std::vector<int64_t>(37, -(int64_t(1) << 40)));
  DeviceBuffer<uint8_t> u(5);
  coc::fill(u.ptr(), 5, 1, 0xab);
  CHECK(u.download() == std::vector<uint8_t>(5, 0xab));
  DeviceBuffer<uint16_t> h(3);
  coc::fill(h.ptr(), 3, 2, 0x3c00);
  CHECK(h.download() == std::vector<uint16_t>(3, 0x3c00));

  Tensor t = Tensor::from_vector(random_vector(5 * 6, 1300), {5, 6});
  DeviceBuffer<float> dt(t.to_vector<float>());
  Tensor view = t.slice(1, 1, 6, 2).transpose(0, 1);   // [3, 5], strides (2, 6)
  float v = 3.5f;
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  coc::fill_strided(dt.ptr() + view.offset(), layout_of(view), 4, bits);
  view.fill_(3.5);
  expect_close("fill_ of a strided view", dt.download(), t.to_vector<float>(), 0, 0);
}

TEST_CASE("tensor_copy launchers reject bad layouts") {
  DeviceBuffer<float> b(16);
  coc::StridedLayout a = contiguous_layout({2, 3}), c = contiguous_layout({3, 2});
  CHECK_THROWS_AS(coc::strided_copy(b.ptr(), a, b.ptr(), c, 4), Error);   // sizes differ
  CHECK_THROWS_AS(coc::strided_copy(b.ptr(), a, b.ptr(), a, 3), Error);   // element size
  coc::StridedLayout z = a;
  z.strides[0] = 0;
  CHECK_THROWS_AS(coc::fill_strided(b.ptr(), z, 4, 0), Error);            // dst stride 0
}

}  // namespace
