// Library baselines of the kernel lab for the two FRRU pieces (see lab_gpu.h): the unfused
// compositions from cuDNN calls where cuDNN has the op (max pooling, 1x1 convolution, bias add,
// tensor add), timed on the same device buffers as our kernels and validated against the CPU
// backend. There is no library kernel for either fused piece; the comparison is fused (ours)
// against the best library composition.
#include <memory>
#include <type_traits>

#define MOESEG_CUDA_KERNELS_DEVICE 1   // moeseg::cuda::upsample_bilinear2d_forward (nvcc-built)
#include "bench/kernel_lab/lab_gpu.h"
#include "core/cuda_check.h"
#include "kernels/cuda/cuda_kernels.cuh"

namespace moeseg::lab::gpu {
namespace {

template <class T>
std::unique_ptr<T, void (*)(T*)> device_buffer(size_t n) {
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), (n ? n : 1) * sizeof(T)));
  return {p, [](T* q) { cudaFree(q); }};
}

std::vector<float> fetch(const float* p, size_t n) {
  std::vector<float> h(n);
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
  return h;
}

}  // namespace

double frru_pool_baseline_bytes(const FrruProblem& p) { return pool_concat_bytes(p) - 8.0 * p.low(); }
// conv -> low, bias read-modify-write of low, upsample low -> full temporary, add.
double frru_upadd_baseline_bytes(const FrruProblem& p) { return upadd_unfused_bytes(p) + 8.0 * p.low(); }

#ifdef MOESEG_WITH_CUDNN
namespace {

struct Cudnn {
  cudnnHandle_t h = nullptr;
  std::vector<cudnnTensorDescriptor_t> tensors;
  Cudnn() { CUDNN_CHECK(cudnnCreate(&h)); }
  ~Cudnn() {
    for (auto t : tensors) cudnnDestroyTensorDescriptor(t);
    cudnnDestroy(h);
  }
  cudnnTensorDescriptor_t tensor(int n, int c, int hh, int ww) {
    cudnnTensorDescriptor_t t;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&t));
    tensors.push_back(t);
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, hh, ww));
    return t;
  }
};

}  // namespace

Baseline frru_pool_baseline(const FrruProblem& p, const FrruPoolData& d, const float* y, const float* z, int repeats) {
  Baseline b;
  b.name = "cudnn max pool + memcpy2d (y)";
  const int h = p.h(), w = p.w();
  const long long hw = 1ll * h * w;
  Cudnn c;
  cudnnPoolingDescriptor_t pd;
  CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pd));
  std::unique_ptr<std::remove_pointer_t<cudnnPoolingDescriptor_t>, void (*)(cudnnPoolingDescriptor_t)> pool(
      pd, [](cudnnPoolingDescriptor_t q) { cudnnDestroyPoolingDescriptor(q); });
  CUDNN_CHECK(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_MAX, CUDNN_PROPAGATE_NAN, 3, 3, 1, 1, p.f, p.f));
  const cudnnTensorDescriptor_t zd = c.tensor(p.N, p.Cz, p.H, p.W);
  int on, oc, oh, ow;
  CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(pd, zd, &on, &oc, &oh, &ow));
  MOESEG_CHECK(oh == h && ow == w, "frru_pool_baseline: cuDNN pools ", p.H, "x", p.W, " to ", oh, "x", ow,
               ", the lab to ", h, "x", w);
  // The z channels of the concat buffer: image stride (Cy + Cz) * h * w.
  cudnnTensorDescriptor_t sd;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&sd));
  c.tensors.push_back(sd);
  CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(sd, CUDNN_DATA_FLOAT, p.N, p.Cz, h, w, int((p.Cy + p.Cz) * hw), int(hw), w, 1));
  auto out = device_buffer<float>(d.out_ref.size());
  float* zslice = out.get() + p.Cy * hw;
  const float one = 1.f, zero = 0.f;
  // Strided output where cuDNN takes it; else a packed temporary copied into the slice.
  bool strided = cudnnPoolingForward(c.h, pd, &one, zd, z, &zero, sd, zslice) == CUDNN_STATUS_SUCCESS;
  std::unique_ptr<float, void (*)(float*)> tmp(nullptr, [](float*) {});
  cudnnTensorDescriptor_t td = nullptr;
  if (!strided) {
    cudaGetLastError();
    tmp = device_buffer<float>(size_t(p.low()));
    td = c.tensor(p.N, p.Cz, h, w);
    b.name = "cudnn max pool + 2 memcpy2d";
    b.note = "cuDNN refused the strided output: packed pool + copy (+8 B per pooled value not counted)";
  }
  auto run = [&] {
    if (strided) {
      CUDNN_CHECK(cudnnPoolingForward(c.h, pd, &one, zd, z, &zero, sd, zslice));
    } else {
      CUDNN_CHECK(cudnnPoolingForward(c.h, pd, &one, zd, z, &zero, td, tmp.get()));
      CUDA_CHECK(cudaMemcpy2DAsync(zslice, (p.Cy + p.Cz) * hw * sizeof(float), tmp.get(), p.Cz * hw * sizeof(float),
                                   p.Cz * hw * sizeof(float), p.N, cudaMemcpyDeviceToDevice));
    }
    CUDA_CHECK(cudaMemcpy2DAsync(out.get(), (p.Cy + p.Cz) * hw * sizeof(float), y, p.Cy * hw * sizeof(float),
                                 p.Cy * hw * sizeof(float), p.N, cudaMemcpyDeviceToDevice));
  };
  CUDA_CHECK(cudaMemset(out.get(), 0xFF, d.out_ref.size() * sizeof(float)));
  run();
  b.validated = true;
  b.err = compare(fetch(out.get(), d.out_ref.size()), d.out_ref, nullptr, 0, 0);
  b.ms = median_ms(run, repeats);
  if (b.note.empty()) b.note = "no indices written (counted bytes exclude them)";
  return b;
}

Baseline frru_upadd_baseline(const FrruProblem& p, const FrruUpData& d, const float* y, const float* z, const float* w,
                             const float* bias, int repeats) {
  Baseline b;
  const int h = p.h(), wd = p.w();
  Cudnn c;
  const cudnnTensorDescriptor_t yd = c.tensor(p.N, p.Cy, h, wd), ld = c.tensor(p.N, p.Cz, h, wd),
                                bd = c.tensor(1, p.Cz, 1, 1), zd = c.tensor(p.N, p.Cz, p.H, p.W);
  cudnnFilterDescriptor_t fd;
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&fd));
  std::unique_ptr<std::remove_pointer_t<cudnnFilterDescriptor_t>, void (*)(cudnnFilterDescriptor_t)> filter(
      fd, [](cudnnFilterDescriptor_t q) { cudnnDestroyFilterDescriptor(q); });
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(fd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.Cz, p.Cy, 1, 1));
  cudnnConvolutionDescriptor_t cd;
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
  std::unique_ptr<std::remove_pointer_t<cudnnConvolutionDescriptor_t>, void (*)(cudnnConvolutionDescriptor_t)> conv(
      cd, [](cudnnConvolutionDescriptor_t q) { cudnnDestroyConvolutionDescriptor(q); });
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH));   // FP32 FMA: our kernels' arithmetic
  cudnnOpTensorDescriptor_t od;
  CUDNN_CHECK(cudnnCreateOpTensorDescriptor(&od));
  std::unique_ptr<std::remove_pointer_t<cudnnOpTensorDescriptor_t>, void (*)(cudnnOpTensorDescriptor_t)> optensor(
      od, [](cudnnOpTensorDescriptor_t q) { cudnnDestroyOpTensorDescriptor(q); });
  CUDNN_CHECK(cudnnSetOpTensorDescriptor(od, CUDNN_OP_TENSOR_ADD, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN));

  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int found = 0;
  CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(c.h, yd, fd, cd, ld, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
  int best = -1;
  for (int i = 0; i < found && best < 0; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) best = i;
  b.name = "cudnn conv+bias, up (moeseg), add";
  if (best < 0) {
    b.note = "cuDNN offers no 1x1 convolution algorithm";
    return b;
  }
  b.name = "cudnn conv algo " + std::to_string(int(perf[best].algo)) + "+bias, up, add";
  const auto algo = perf[best].algo;
  const size_t ws_bytes = perf[best].memory;
  auto ws = device_buffer<unsigned char>(ws_bytes);
  auto low = device_buffer<float>(size_t(p.low()));
  auto up = device_buffer<float>(size_t(p.full()));
  auto out = device_buffer<float>(size_t(p.full()));
  const float one = 1.f, zero = 0.f;
  auto run = [&] {
    CUDNN_CHECK(cudnnConvolutionForward(c.h, &one, yd, y, fd, w, cd, algo, ws.get(), ws_bytes, &zero, ld, low.get()));
    CUDNN_CHECK(cudnnAddTensor(c.h, &one, bd, bias, &one, ld, low.get()));
    moeseg::cuda::upsample_bilinear2d_forward(low.get(), up.get(), p.N, p.Cz, h, wd, p.H, p.W, /*align_corners=*/true);
    CUDNN_CHECK(cudnnOpTensor(c.h, od, &one, zd, up.get(), &one, zd, z, &zero, zd, out.get()));
  };
  CUDA_CHECK(cudaMemset(out.get(), 0xFF, size_t(p.full()) * sizeof(float)));
  run();
  b.validated = true;
  b.err = compare(fetch(out.get(), d.out_ref.size()), d.out_ref, &d.scale, 1e-6, upadd_rtol(p));
  b.ms = median_ms(run, repeats);
  b.note = "cuDNN has no align_corners bilinear resize: that step is moeseg's upsample_bilinear2d_forward";
  return b;
}
#else
Baseline frru_pool_baseline(const FrruProblem&, const FrruPoolData&, const float*, const float*, int) {
  Baseline b;
  b.name = "cudnn max pool + memcpy2d (y)";
  b.note = "cuDNN not found at configure time";
  return b;
}
Baseline frru_upadd_baseline(const FrruProblem&, const FrruUpData&, const float*, const float*, const float*,
                             const float*, int) {
  Baseline b;
  b.name = "cudnn conv+bias, up (moeseg), add";
  b.note = "cuDNN not found at configure time";
  return b;
}
#endif

}  // namespace moeseg::lab::gpu
