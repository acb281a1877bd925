// Library baselines of the kernel lab (see lab_gpu.h): cuDNN convolution and log-softmax, cuBLAS
// batched GEMM for the expert combination, timed on the same device buffers as our kernels.
#include <cmath>
#include <memory>

#include "bench/kernel_lab/lab_gpu.h"
#include "core/cuda_check.h"

namespace moeseg::lab::gpu {
namespace {

// A device buffer owned by a unique_ptr (freed on any exit, including a thrown check).
template <class T>
std::unique_ptr<T, void (*)(T*)> device_alloc(size_t n) {
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), (n ? n : 1) * sizeof(T)));
  return {p, [](T* q) { cudaFree(q); }};
}

std::vector<float> download(const float* p, size_t n) {
  std::vector<float> h(n);
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
  return h;
}

}  // namespace

#ifdef MOESEG_WITH_CUDNN
std::vector<Baseline> conv_baselines(const ConvProblem& p, const ConvData& d, const float* x, const float* w,
                                     int repeats) {
  std::vector<Baseline> out;
  cudnnHandle_t h;
  CUDNN_CHECK(cudnnCreate(&h));
  std::unique_ptr<cudnnContext, void (*)(cudnnHandle_t)> handle(h, [](cudnnHandle_t q) { cudnnDestroy(q); });
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&xd));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&yd));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.c_in, p.h, p.w));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.c_out, p.c_in, p.k, p.k));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, p.pad(), p.pad(), 1, 1, p.dil, p.dil, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT));
  int n, c, ho, wo;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &ho, &wo));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, ho, wo));
  auto y = device_alloc<float>(size_t(n) * c * ho * wo);

  const struct {
    cudnnMathType_t math;
    const char* label;
    bool validate;
  } modes[] = {{CUDNN_FMA_MATH, "fp32-fma", true}, {CUDNN_DEFAULT_MATH, "default (tf32 allowed)", false}};
  for (const auto& m : modes) {
    Baseline b;
    CUDNN_CHECK(cudnnSetConvolutionMathType(cd, m.math));
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int found = 0;
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
    int best = -1;
    // Sorted fastest first; under CUDNN_FMA_MATH cuDNN offers no tensor-core (TF32) algorithm.
    for (int i = 0; i < found && best < 0; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS) best = i;
    b.name = std::string("cudnn ") + m.label;
    if (best < 0) {
      b.note = "no algorithm";
      out.push_back(b);
      continue;
    }
    b.name += " algo " + std::to_string(int(perf[best].algo));
    auto ws = device_alloc<unsigned char>(perf[best].memory);
    const float one = 1.f, zero = 0.f;
    const auto algo = perf[best].algo;
    const size_t ws_bytes = perf[best].memory;
    auto run = [&] {
      CUDNN_CHECK(cudnnConvolutionForward(h, &one, xd, x, wd, w, cd, algo, ws.get(), ws_bytes, &zero, yd, y.get()));
    };
    b.ms = median_ms(run, repeats);
    if (m.validate) {
      b.validated = true;
      b.err = compare(download(y.get(), d.y_ref.size()), d.y_ref, &d.scale, 1e-6, p.rtol());
    } else {
      b.note = "not validated (TF32 rounds the inputs to 10-bit mantissas)";
    }
    out.push_back(b);
  }
  cudnnDestroyTensorDescriptor(xd);
  cudnnDestroyTensorDescriptor(yd);
  cudnnDestroyFilterDescriptor(wd);
  cudnnDestroyConvolutionDescriptor(cd);
  return out;
}

Baseline ce_baseline(const CeProblem& p, const float* logits, int repeats) {
  Baseline b;
  b.name = "cudnn log-softmax";
  b.note = "log-softmax only: writes N*C*HW floats, no NLL / reduction; not validated";
  cudnnHandle_t h;
  CUDNN_CHECK(cudnnCreate(&h));
  std::unique_ptr<cudnnContext, void (*)(cudnnHandle_t)> handle(h, [](cudnnHandle_t q) { cudnnDestroy(q); });
  cudnnTensorDescriptor_t xd;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&xd));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.N, p.C, p.H, p.W));
  auto y = device_alloc<float>(size_t(p.pixels()) * p.C);
  const float one = 1.f, zero = 0.f;
  b.ms = median_ms(
      [&] {
        CUDNN_CHECK(cudnnSoftmaxForward(h, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_CHANNEL, &one, xd, logits, &zero, xd,
                                        y.get()));
      },
      repeats);
  cudnnDestroyTensorDescriptor(xd);
  return b;
}
#else
std::vector<Baseline> conv_baselines(const ConvProblem&, const ConvData&, const float*, const float*, int) {
  Baseline b;
  b.name = "cudnn";
  b.note = "cuDNN not found at configure time";
  return {b};
}
Baseline ce_baseline(const CeProblem&, const float*, int) {
  Baseline b;
  b.name = "cudnn log-softmax";
  b.note = "cuDNN not found at configure time";
  return b;
}
#endif

Baseline gate_baseline(const GateProblem& p, const GateData& d, const std::vector<const float*>& experts, int repeats) {
  Baseline b;
  b.name = "cublas sgemm strided-batched";
  const size_t N = p.elements();
  auto x = device_alloc<float>(N * p.E);   // experts side by side: column e of every GEMM at offset e * N
  for (int e = 0; e < p.E; ++e)
    CUDA_CHECK(cudaMemcpy(x.get() + size_t(e) * N, experts[size_t(e)], N * sizeof(float), cudaMemcpyDeviceToDevice));
  auto w = device_alloc<float>(d.w_ref.size());
  CUDA_CHECK(cudaMemcpy(w.get(), d.w_ref.data(), d.w_ref.size() * sizeof(float), cudaMemcpyHostToDevice));
  auto out = device_alloc<float>(N);
  cublasHandle_t h;
  CUBLAS_CHECK(cublasCreate(&h));
  std::unique_ptr<cublasContext, void (*)(cublasHandle_t)> handle(h, [](cublasHandle_t q) { cublasDestroy(q); });
  CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));   // plain FP32, like our kernel
  // One GEMM per gate row: G == 1 -> a batch entry per image (m = C*HW), G == C -> per (image,
  // class) plane (m = HW). out[rows] = X[rows, E] (column-major, ld = N) * w[E].
  const long long m = p.G == 1 ? (long long)p.C * p.hw() : p.hw();
  const int batch = p.B * p.G;
  const float one = 1.f, zero = 0.f;
  b.ms = median_ms(
      [&] {
        CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, int(m), 1, p.E, &one, x.get(), int(N), m,
                                               w.get(), p.E, p.E, &zero, out.get(), int(m), m, batch));
      },
      repeats);
  b.validated = true;
  b.err = compare(download(out.get(), N), d.out_ref, nullptr, 1e-6, 1e-5);
  return b;
}

}  // namespace moeseg::lab::gpu
