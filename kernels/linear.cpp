// matmul (2-D, batched 3-D, and 3-D x 2-D by broadcasting the matrix) and linear (x W^T + b)
// on OpenBLAS sgemm/dgemm, forward and backward, float32/float64.
// Layout: an operand whose last two dims are row-major (unit column stride) or column-major
// (unit row stride) with any leading dimension is passed to BLAS directly with the matching
// trans flag, so transposed views (W^T in linear, a^T/b^T in the backward) are never copied;
// anything else (e.g. a stepped slice) is made contiguous first. Batch strides may be 0, so an
// expanded operand is read in place. Threads come from OpenBLAS inside each GEMM.
// Tested by tests/ops/test_linear.cpp (gradcheck + PyTorch fixtures).
#include "kernels/linear.h"

#include <cblas.h>

#include <algorithm>
#include <climits>

#include "core/autograd.h"
#include "core/flop_counter.h"
#include "kernels/conv2d.h"
#include "kernels/device_fallback.h"
#include "kernels/gpu_kernels.h"
#include "kernels/reduce.h"

namespace moeseg {

namespace {

// One GEMM operand: base pointer, trans flag, leading dimension and batch stride (elements).
template <typename T>
struct Operand {
  const T* ptr = nullptr;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int64_t ld = 1;
  int64_t batch_stride = 0;
  Tensor keep;   // owns a contiguous copy when one was needed
};

// t is [rows, cols] or [B, rows, cols] (a detached view).
template <typename T>
Operand<T> make_operand(const Tensor& t) {
  const int64_t nd = t.dim();
  const int64_t rows = t.size(nd - 2), cols = t.size(nd - 1);
  const int64_t rs = t.stride(nd - 2), cs = t.stride(nd - 1);
  Operand<T> op;
  // Row-major with ld >= cols: NoTrans. Size-1 dims may carry any stride, so they are not tested.
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= std::max<int64_t>(cols, 1))) {
    op.trans = CblasNoTrans;
    op.ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
    op.keep = t;
  } else if ((rows == 1 || rs == 1) && (cols == 1 || cs >= std::max<int64_t>(rows, 1))) {
    // Column-major: memory is a row-major [cols, rows] matrix, read transposed.
    op.trans = CblasTrans;
    op.ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
    op.keep = t;
  } else {
    op.keep = t.contiguous();
    op.trans = CblasNoTrans;
    op.ld = std::max<int64_t>(cols, 1);
  }
  op.ptr = op.keep.template data<T>();
  op.batch_stride = nd == 3 ? op.keep.stride(0) : 0;
  return op;
}

inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, const float* A, int lda, const float* B,
                 int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, const double* A, int lda, const double* B,
                 int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

// C[b] = A[b] @ B[b] + beta * C[b]; A, B are [B?, M, K] / [B?, K, N] views, C contiguous [B?, M, N].
void gemm_into(const Tensor& a, const Tensor& b, Tensor c, double beta, const char* opname) {
  const int64_t nd = c.dim();
  const int64_t batch = nd == 3 ? c.size(0) : 1;
  const int64_t M = c.size(nd - 2), N = c.size(nd - 1), K = a.size(nd - 1);
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {   // empty sum: BLAS leading-dimension rules get awkward, do it by hand
    if (beta == 0) c.fill_(0.0);
    return;
  }
  MOESEG_CHECK(M < INT_MAX && N < INT_MAX && K < INT_MAX, opname, ": matrix too large for BLAS int: ",
               a.str(), " @ ", b.str());
  dispatch_float(c.dtype(), opname, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Operand<T> A = make_operand<T>(a), B = make_operand<T>(b);
    T* C = c.data<T>();
    for (int64_t i = 0; i < batch; ++i)
      gemm(A.trans, B.trans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), A.ptr + i * A.batch_stride,
           static_cast<int>(A.ld), B.ptr + i * B.batch_stride, static_cast<int>(B.ld), static_cast<T>(beta),
           C + i * M * N, static_cast<int>(N));
  });
  c.bump_version();
}

Tensor matmul_nograd(const Tensor& a, const Tensor& b) {
  Shape s = a.sizes();
  s.back() = b.size(-1);
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  gemm_into(a, b, out, 0.0, "matmul");
  return out;
}

struct MatmulBackward final : autograd::Node {
  autograd::SavedTensor a, b;
  bool need_a = true, need_b = true;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor av = a.get("matmul"), bv = b.get("matmul");
    const int64_t r = av.dim() - 2, c = av.dim() - 1;
    // Transposes are views; make_operand turns them into BLAS trans flags, no copy.
    Tensor ga = need_a ? matmul_nograd(g, bv.transpose(r, c)) : Tensor();
    Tensor gb = need_b ? matmul_nograd(av.transpose(r, c), g) : Tensor();
    return {ga, gb};
  }
  void release() override { a.reset(); b.reset(); }
  std::string name() const override { return "MatmulBackward"; }
};

struct LinearBackward final : autograd::Node {
  autograd::SavedTensor x2, w;   // x as [M, in] (a view of x when possible), weight [out, in]
  Shape x_sizes;
  bool need_x = true, need_w = true, need_b = false;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor xv = x2.get("linear"), wv = w.get("linear");
    Tensor g2 = g.reshape({xv.size(0), wv.size(0)});
    Tensor gx = need_x ? matmul_nograd(g2, wv).reshape(x_sizes) : Tensor();
    Tensor gw = need_w ? matmul_nograd(g2.transpose(0, 1), xv) : Tensor();
    Tensor gb = need_b ? sum(g2, {0}) : Tensor();   // sum accumulates in double
    return {gx, gw, gb};
  }
  void release() override { x2.reset(); w.reset(); }
  std::string name() const override { return "LinearBackward"; }
};

void check_operands(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn) {
  check_defined(a, op, an);
  check_defined(b, op, bn);
  check_same_device(a, b, op);
  check_same_dtype(a, b, op);
  MOESEG_CHECK(is_floating(a.dtype()), op, ": float32 or float64 expected, got ", a.str());
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_operands(a_in, b_in, "matmul", "a", "b");
  if (on_cuda(a_in)) {
    note_cpu_fallback("matmul");
    return matmul(cpu_copy(a_in), cpu_copy(b_in)).to(a_in.device());
  }
  MOESEG_CHECK((a_in.dim() == 2 || a_in.dim() == 3) && (b_in.dim() == 2 || b_in.dim() == 3), "matmul: ",
               a_in.str(), " @ ", b_in.str(), ": 2-D or 3-D (batched) operands expected");
  Tensor a = a_in, b = b_in;
  // 3-D @ 2-D (or 2-D @ 3-D): broadcast the matrix over the batch with a stride-0 expand; the
  // expand records its own backward, which sums the batch gradients back.
  if (a.dim() == 3 && b.dim() == 2) b = b.expand({a.size(0), b.size(0), b.size(1)});
  if (a.dim() == 2 && b.dim() == 3) a = a.expand({b.size(0), a.size(0), a.size(1)});
  const int64_t nd = a.dim();
  MOESEG_CHECK(a.size(nd - 1) == b.size(nd - 2), "matmul: inner sizes differ: ", a_in.str(), " @ ", b_in.str());
  MOESEG_CHECK(nd == 2 || a.size(0) == b.size(0), "matmul: batch sizes differ: ", a_in.str(), " @ ", b_in.str());
  count_flops(2.0 * static_cast<double>(nd == 3 ? a.size(0) : 1) * static_cast<double>(a.size(nd - 2)) *
              static_cast<double>(a.size(nd - 1)) * static_cast<double>(b.size(nd - 1)));
  Tensor out = matmul_nograd(a.detach(), b.detach());
  if (autograd::needs_grad({&a, &b})) {
    auto n = std::make_shared<MatmulBackward>();
    n->a = autograd::SavedTensor(a.detach());
    n->b = autograd::SavedTensor(b.detach());
    n->need_a = a.requires_grad();
    n->need_b = b.requires_grad();
    autograd::connect(n, {&a, &b}, out);
  }
  return out;
}

namespace {

// ---- linear on a GPU through cuBLAS (gpu_kernels().gemm, row-major) ---------------------------
// y[M,out] = x[M,in] W[out,in]^T + 1[M] b[out];  dx = dy W;  dW = dy^T x;  db = dy^T 1[M].
// The bias goes in as a rank-1 GEMM (ones times bias) so no broadcast op is needed on the device.
void gemm_on(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float beta) {
  const int M = static_cast<int>(c.size(0)), N = static_cast<int>(c.size(1));
  const int K = static_cast<int>(ta ? a.size(0) : a.size(1));
  gpu_kernels().gemm(ta, tb, M, N, K, 1.f, a.data<float>(), static_cast<int>(a.size(1)), b.data<float>(),
                     static_cast<int>(b.size(1)), beta, c.data<float>(), N);
}

struct LinearCublasBackward final : autograd::Node {
  autograd::SavedTensor x, w;
  bool need_x = false, need_w = false, need_b = false;
  std::vector<Tensor> backward(const Tensor& grad) override {
    Tensor xv = x.get("linear"), wv = w.get("linear"), dy = grad.contiguous();
    const Device d = dy.device();
    Tensor dx, dw, db;
    if (need_x) gemm_on(dy, false, wv, false, dx = Tensor::empty(xv.sizes(), DType::Float32, d), 0.f);
    if (need_w) gemm_on(dy, true, xv, false, dw = Tensor::empty(wv.sizes(), DType::Float32, d), 0.f);
    if (need_b) {
      Tensor ones = Tensor::ones({dy.size(0), 1}, DType::Float32, d);
      gemm_on(dy, true, ones, false, db = Tensor::empty({dy.size(1), 1}, DType::Float32, d), 0.f);
      db = db.reshape({dy.size(1)});
    }
    return {dx, dw, db};
  }
  void release() override { x.reset(); w.reset(); }
  std::string name() const override { return "LinearBackward"; }
};

Tensor linear_cublas(const Tensor& x2, const Tensor& weight, const Tensor& bias) {
  Tensor xc = x2.detach().contiguous(), wc = weight.detach().contiguous();
  const Device d = x2.device();
  Tensor out = Tensor::empty({xc.size(0), wc.size(0)}, DType::Float32, d);
  float beta = 0.f;
  if (bias.defined()) {
    Tensor ones = Tensor::ones({xc.size(0), 1}, DType::Float32, d);
    gemm_on(ones, false, bias.detach().contiguous().reshape({1, wc.size(0)}), false, out, 0.f);
    beta = 1.f;
  }
  gemm_on(xc, false, wc, true, out, beta);
  if (autograd::needs_grad({&x2, &weight, &bias})) {
    auto n = std::make_shared<LinearCublasBackward>();
    n->x = autograd::SavedTensor(xc);
    n->w = autograd::SavedTensor(wc);
    n->need_x = x2.requires_grad();
    n->need_w = weight.requires_grad();
    n->need_b = bias.defined() && bias.requires_grad();
    autograd::connect(n, {&x2, &weight, &bias}, out);
  }
  return out;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_operands(x, weight, "linear", "x", "weight");
  MOESEG_CHECK(x.dim() >= 1, "linear: x must have at least one dim, got ", x.str());
  MOESEG_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got ", weight.str());
  const int64_t in = weight.size(1), out_f = weight.size(0);
  MOESEG_CHECK(x.size(-1) == in, "linear: x ", x.str(), " has ", x.size(-1), " features but weight ", weight.str(),
               " expects ", in);
  if (bias.defined()) {
    check_same_dtype(x, bias, "linear");
    check_same_device(x, bias, "linear");
    MOESEG_CHECK(bias.dim() == 1 && bias.size(0) == out_f, "linear: bias ", bias.str(), " must be [", out_f,
                 "] for weight ", weight.str());
  }
  const int64_t rows = shape_numel(Shape(x.sizes().begin(), x.sizes().end() - 1));
  const bool cuda_fallback = on_cuda(x) && (x.dtype() != DType::Float32 || rows == 0);
  if (!cuda_fallback) count_flops(2.0 * static_cast<double>(rows) * static_cast<double>(in) * static_cast<double>(out_f));
  if (on_cuda(x)) {
    if (cuda_fallback) {
      note_cpu_fallback("linear", "float64 or empty inputs");
      return linear(cpu_copy(x), cpu_copy(weight), cpu_copy(bias)).to(x.device());
    }
    Shape os = x.sizes();
    os.back() = out_f;
    if (gpu_kernels().gemm) return linear_cublas(x.reshape({rows, in}), weight, bias).reshape(os);
    // Without cuBLAS (the emulated device) a linear layer is a 1x1 convolution of [rows, in, 1, 1]:
    // the implicit-GEMM kernels serve it, forward and backward, with the bias in the epilogue.
    return conv2d(x.reshape({rows, in, 1, 1}), weight.reshape({out_f, in, 1, 1}), bias, Conv2dOptions{})
        .reshape(os);
  }
  // A 2-D x is used as it is (any layout); otherwise flattened, which copies only if it must.
  Tensor x2 = x.dim() == 2 ? x.detach() : x.detach().reshape({rows, in});
  Tensor out2 = Tensor::empty({rows, out_f}, x.dtype(), x.device());
  double beta = 0.0;
  if (bias.defined()) {   // rows start as the bias and the GEMM adds onto them (beta = 1)
    out2.copy_(bias.detach().reshape({1, out_f}));
    beta = 1.0;
  }
  gemm_into(x2, weight.detach().transpose(0, 1), out2, beta, "linear");
  Shape os = x.sizes();
  os.back() = out_f;
  Tensor out = out2.view(os);
  if (autograd::needs_grad({&x, &weight, &bias})) {
    auto n = std::make_shared<LinearBackward>();
    n->x2 = autograd::SavedTensor(x2);
    n->w = autograd::SavedTensor(weight.detach());
    n->x_sizes = x.sizes();
    n->need_x = x.requires_grad();
    n->need_w = weight.requires_grad();
    n->need_b = bias.defined() && bias.requires_grad();
    autograd::connect(n, {&x, &weight, &bias}, out);
  }
  return out;
}

}  // namespace moeseg
