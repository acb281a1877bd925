// The vendor-library entries of the GPU kernel table (kernels/gpu_kernels.h): cuBLAS SGEMM for
// linear layers, and cuDNN convolution as the switchable alternative to our implicit-GEMM kernels
// (MOESEG_CONV=cudnn) and the baseline the kernel lab compares against. One handle of each per
// process, on the default stream (core/cuda_backend.h). cuDNN runs with CUDNN_FMA_MATH so that
// its float32 results are comparable to ours (no TF32 rounding of the inputs).
// Compiled to nothing without CUDA; the cuDNN part only when CMake found libcudnn
// (MOESEG_WITH_CUDNN). Nothing here can run on a machine without a GPU: the emulated device uses
// the CUDA-on-CPU table, which leaves these entries null.
#ifdef MOESEG_WITH_CUDA
#include "core/cuda_check.h"
#include "kernels/gpu_kernels.h"

namespace moeseg {

namespace {

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle = nullptr;
    CUBLAS_CHECK(cublasCreate(&handle));
    // Plain float32 FMA math: no TF32 tensor-core rounding behind the caller's back.
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH));
    return handle;
  }();
  return h;
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands and M/N.
void gemm_rowmajor(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc) {
  CUBLAS_CHECK(cublasSgemm(cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                           K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

#ifdef MOESEG_WITH_CUDNN
cudnnHandle_t cudnn() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t handle = nullptr;
    CUDNN_CHECK(cudnnCreate(&handle));
    return handle;
  }();
  return h;
}

// The descriptors of one convolution, destroyed with it.
struct ConvDescriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  explicit ConvDescriptors(const GpuConv2dShape& s) {
    const int h_out = (s.h_in + 2 * s.pad_h - s.dil_h * (s.kh - 1) - 1) / s.stride_h + 1;
    const int w_out = (s.w_in + 2 * s.pad_w - s.dil_w * (s.kw - 1) - 1) / s.stride_w + 1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_in, s.h_in, s.w_in));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_out, h_out, w_out));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.c_out, 1, 1));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.c_out, s.c_in / s.groups, s.kh,
                                           s.kw));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, s.pad_h, s.pad_w, s.stride_h, s.stride_w, s.dil_h, s.dil_w,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, s.groups));
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
  }
  ~ConvDescriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(bias);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvDescriptors(const ConvDescriptors&) = delete;
  ConvDescriptors& operator=(const ConvDescriptors&) = delete;
};

// cuDNN's heuristics rank the algorithms; the first one that is supported is taken.
template <typename Perf, typename GetFn>
auto best_algo(GetFn get, const char* what) {
  Perf perf[16];
  int count = 0;
  CUDNN_CHECK(get(perf, 16, &count));
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return perf[i].algo;
  MOESEG_FAIL("cuDNN: no supported ", what, " algorithm for this convolution");
}

cudnnConvolutionFwdAlgo_t fwd_algo(const ConvDescriptors& d) {
  return best_algo<cudnnConvolutionFwdAlgoPerf_t>(
      [&](cudnnConvolutionFwdAlgoPerf_t* p, int n, int* c) {
        return cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), d.x, d.w, d.conv, d.y, n, c, p);
      },
      "forward");
}
cudnnConvolutionBwdDataAlgo_t bwd_data_algo(const ConvDescriptors& d) {
  return best_algo<cudnnConvolutionBwdDataAlgoPerf_t>(
      [&](cudnnConvolutionBwdDataAlgoPerf_t* p, int n, int* c) {
        return cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), d.w, d.y, d.conv, d.x, n, c, p);
      },
      "backward-data");
}
cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo(const ConvDescriptors& d) {
  return best_algo<cudnnConvolutionBwdFilterAlgoPerf_t>(
      [&](cudnnConvolutionBwdFilterAlgoPerf_t* p, int n, int* c) {
        return cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn(), d.x, d.y, d.conv, d.w, n, c, p);
      },
      "backward-filter");
}

size_t conv_workspace_bytes(const GpuConv2dShape& s) {
  const ConvDescriptors d(s);
  size_t a = 0, b = 0, c = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn(), d.x, d.w, d.conv, d.y, fwd_algo(d), &a));
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn(), d.w, d.y, d.conv, d.x, bwd_data_algo(d), &b));
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn(), d.x, d.y, d.conv, d.w, bwd_filter_algo(d), &c));
  return std::max(a, std::max(b, c));
}

void conv_forward(const GpuConv2dShape& s, const float* x, const float* w, const float* bias, float* y, void* ws,
                  size_t ws_bytes) {
  const ConvDescriptors d(s);
  const float one = 1.f, zero = 0.f;
  CUDNN_CHECK(cudnnConvolutionForward(cudnn(), &one, d.x, x, d.w, w, d.conv, fwd_algo(d), ws, ws_bytes, &zero, d.y, y));
  if (bias) CUDNN_CHECK(cudnnAddTensor(cudnn(), &one, d.bias, bias, &one, d.y, y));
}

void conv_backward_data(const GpuConv2dShape& s, const float* dy, const float* w, float* dx, void* ws,
                        size_t ws_bytes) {
  const ConvDescriptors d(s);
  const float one = 1.f, zero = 0.f;
  CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn(), &one, d.w, w, d.y, dy, d.conv, bwd_data_algo(d), ws, ws_bytes,
                                           &zero, d.x, dx));
}

void conv_backward_weight(const GpuConv2dShape& s, const float* x, const float* dy, float* dw, float* dbias,
                          void* ws, size_t ws_bytes) {
  const ConvDescriptors d(s);
  const float one = 1.f, zero = 0.f;
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn(), &one, d.x, x, d.y, dy, d.conv, bwd_filter_algo(d), ws,
                                             ws_bytes, &zero, d.w, dw));
  if (dbias) CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn(), &one, d.y, dy, &zero, d.bias, dbias));
}
#endif  // MOESEG_WITH_CUDNN

}  // namespace

void add_vendor_kernels(GpuKernels& t) {
  t.gemm = gemm_rowmajor;
#ifdef MOESEG_WITH_CUDNN
  t.cudnn_conv2d_workspace_bytes = conv_workspace_bytes;
  t.cudnn_conv2d_forward = conv_forward;
  t.cudnn_conv2d_backward_data = conv_backward_data;
  t.cudnn_conv2d_backward_weight = conv_backward_weight;
#endif
}

}  // namespace moeseg
#endif  // MOESEG_WITH_CUDA
