// The device side of the kernel lab, written once for both backends: buffers, upload of a
// problem's inputs, launch of version k, download of the outputs, and the check of every version
// against the CPU reference. Included by lab_coc.cpp (CUDA-on-CPU: namespace moeseg::lab::coc) and
// lab_gpu.cpp (real GPU: moeseg::lab::cuda); the cuda* calls below resolve to whichever runtime
// the including file uses, like the kernels themselves (kernels/cuda/cuda_kernels.cuh).
// Versions: v1 = this lab's naive kernel (lab_kernels.cuh; for the FRRU pieces the unfused
// sequence of naive kernels), v2 = the production launcher of kernels/cuda.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "bench/kernel_lab/lab_kernels.cuh"
#include "bench/kernel_lab/lab_problems.h"
#include "core/error.h"

namespace moeseg::lab::MOESEG_KERNEL_NS {

namespace K = moeseg::MOESEG_KERNEL_NS;   // the production kernels of the same backend

struct Version {
  int id;
  const char* name;
};
inline const std::vector<Version> kConvVersions = {{1, "naive"}, {2, "implicit-gemm (prod)"}};
inline const std::vector<Version> kGateVersions = {{1, "naive"}, {2, "fused (prod)"}};
inline const std::vector<Version> kCeVersions = {{1, "naive two-pass+atomic"}, {2, "online-lse (prod)"}};
inline const std::vector<Version> kFrruPoolVersions = {{1, "unfused pool, concat"}, {2, "fused (prod)"}};
inline const std::vector<Version> kFrruUpVersions = {{1, "unfused conv, up, add"}, {2, "fused (prod)"}};

inline void lab_check(cudaError_t err, const char* what) {
  MOESEG_CHECK(err == cudaSuccess, "kernel_lab: ", what, ": ", cudaGetErrorString(err));
}

template <class T>
class Buffer {
 public:
  explicit Buffer(size_t n) : n_(n) { lab_check(cudaMalloc(reinterpret_cast<void**>(&p_), (n ? n : 1) * sizeof(T)), "cudaMalloc"); }
  explicit Buffer(const std::vector<T>& h) : Buffer(h.size()) {
    lab_check(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  ~Buffer() { cudaFree(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return p_; }
  // All-ones bytes (NaN as float): a version that leaves an output unwritten cannot pass on the
  // previous version's results.
  void poison() { lab_check(cudaMemset(p_, 0xFF, n_ * sizeof(T)), "cudaMemset"); }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    lab_check(cudaDeviceSynchronize(), "kernel");
    lab_check(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

// ---- conv ----------------------------------------------------------------------------------------
class ConvRun {
 public:
  ConvRun(const ConvProblem& p, const ConvData& d)
      : s_{p.n, p.c_in, p.h, p.w, p.c_out, p.k, p.k, 1, 1, p.pad(), p.pad(), p.dil, p.dil, 1},
        x_(d.x), w_(d.w), y_(d.y_ref.size()) {}
  void poison() { y_.poison(); }
  void launch(int version, cudaStream_t st = nullptr) {
    if (version == 1) conv2d_forward_naive(s_, x_.get(), w_.get(), nullptr, false, y_.get(), st);
    else K::conv2d_forward(s_, x_.get(), w_.get(), nullptr, false, y_.get(), st);
  }
  ErrorStats check(const ConvProblem& p, const ConvData& d) const {
    return compare(y_.download(), d.y_ref, &d.scale, 1e-6, p.rtol());
  }
  const K::Conv2dShape& shape() const { return s_; }
  const float* x() const { return x_.get(); }
  const float* w() const { return w_.get(); }
  float* y() const { return y_.get(); }

 private:
  K::Conv2dShape s_;
  Buffer<float> x_, w_, y_;
};

// ---- gate softmax + combine ----------------------------------------------------------------------
class GateRun {
 public:
  GateRun(const GateProblem& p, const GateData& d) : p_(p), z_(d.z), out_(p.elements()), w_(d.z.size()) {
    for (const auto& e : d.experts) {
      x_.push_back(std::make_unique<Buffer<float>>(e));
      xp_.push_back(x_.back()->get());
    }
  }
  void poison() {
    out_.poison();
    w_.poison();
  }
  void launch(int version, cudaStream_t st = nullptr) {
    if (version == 1)
      gate_softmax_combine_forward_naive(z_.get(), xp_.data(), out_.get(), w_.get(), p_.B, p_.G, p_.C, p_.hw(), p_.E, st);
    else
      K::gate_softmax_combine_forward(z_.get(), xp_.data(), out_.get(), w_.get(), p_.B, p_.G, p_.C, p_.hw(), p_.E, st);
  }
  ErrorStats check(const GateData& d) const {
    // E fmas per element against the CPU's mul + add, expf against std::exp: a few ulp.
    ErrorStats e = compare(out_.download(), d.out_ref, nullptr, 1e-6, 1e-5);
    e.merge(compare(w_.download(), d.w_ref, nullptr, 1e-7, 1e-6));
    return e;
  }
  const std::vector<const float*>& experts() const { return xp_; }
  float* out() const { return out_.get(); }

 private:
  GateProblem p_;
  Buffer<float> z_, out_, w_;
  std::vector<std::unique_ptr<Buffer<float>>> x_;
  std::vector<const float*> xp_;
};

// ---- cross-entropy -------------------------------------------------------------------------------
class CeRun {
 public:
  CeRun(const CeProblem& p, const CeData& d)
      : p_(p), x_(d.logits), cw_(d.class_weights), t_(d.target), lse_(size_t(p.pixels())), loss_(size_t(p.pixels())),
        res_(3), ws_(K::cross_entropy_workspace_floats(p.N, p.C, int64_t(p.H) * p.W) + 4) {}
  void poison() {
    lse_.poison();
    loss_.poison();
    res_.poison();
  }
  void launch(int version, cudaStream_t st = nullptr) {
    const int64_t HW = int64_t(p_.H) * p_.W;
    if (version == 1)
      cross_entropy_forward_naive(x_.get(), t_.get(), cw_.get(), kCeIgnoreIndex, p_.N, p_.C, HW, lse_.get(), loss_.get(),
                                  res_.get(), reinterpret_cast<double*>(ws_.get()), st);
    else
      K::cross_entropy_forward(x_.get(), t_.get(), cw_.get(), kCeIgnoreIndex, p_.N, p_.C, HW, lse_.get(), loss_.get(),
                               res_.get(), ws_.get(), st);
  }
  ErrorStats check(const CeData& d) const {
    // Online (production) or two-pass float log-sum-exp against a double one: a few ulp of lse.
    ErrorStats e = compare(lse_.download(), d.lse_ref, nullptr, 1e-5, 1e-5);
    e.merge(compare(loss_.download(), d.loss_ref, nullptr, 1e-5, 1e-5));
    e.merge(compare(res_.download(), {d.sum_ref, d.weight_sum_ref, d.mean_ref}, nullptr, 0, 2e-5));
    return e;
  }
  const float* logits() const { return x_.get(); }
  float* scratch() const { return lse_.get(); }

 private:
  CeProblem p_;
  Buffer<float> x_, cw_;
  Buffer<int64_t> t_;
  Buffer<float> lse_, loss_, res_, ws_;
};

// ---- FRRU pool + concat (y, z -> concat [N, Cy + Cz, h, w] and the argmax indices) ---------------
class FrruPoolRun {
 public:
  FrruPoolRun(const FrruProblem& p, const FrruPoolData& d)
      : p_(p), y_(d.y), z_(d.z), out_(d.out_ref.size()), idx_(d.idx_ref.size()), pooled_(d.idx_ref.size()) {}
  void poison() {
    out_.poison();
    idx_.poison();
  }
  void launch(int version, cudaStream_t st = nullptr) {
    if (version == 1)
      frru_pool_concat_forward_naive(y_.get(), z_.get(), pooled_.get(), out_.get(), idx_.get(), p_.N, p_.Cy, p_.h(),
                                     p_.w(), p_.Cz, p_.H, p_.W, p_.f, st);
    else
      K::frru_pool_concat_forward(y_.get(), z_.get(), out_.get(), idx_.get(), p_.N, p_.Cy, p_.h(), p_.w(), p_.Cz, p_.H,
                                  p_.W, p_.f, st);
  }
  // Max and copy are exact: no tolerance; the indices must match too.
  ErrorStats check(const FrruPoolData& d) const {
    ErrorStats e = compare(out_.download(), d.out_ref, nullptr, 0, 0);
    e.merge(compare_exact(idx_.download(), d.idx_ref));
    return e;
  }
  const float* y() const { return y_.get(); }
  const float* z() const { return z_.get(); }
  float* out() const { return out_.get(); }

 private:
  FrruProblem p_;
  Buffer<float> y_, z_, out_;
  Buffer<int64_t> idx_;
  Buffer<float> pooled_;   // v1's temporary
};

// ---- FRRU conv1x1 + bilinear upsample + residual add (z_out = z_in + up(conv1x1(y_out))) --------
class FrruUpRun {
 public:
  FrruUpRun(const FrruProblem& p, const FrruUpData& d)
      : p_(p), y_(d.y), z_(d.z), w_(d.w), b_(d.b), out_(d.out_ref.size()),
        low_(K::frru_conv1x1_upsample_add_forward_workspace_floats(p.N, p.Cz, p.h(), p.w())), up_(d.out_ref.size()) {}
  void poison() { out_.poison(); }
  void launch(int version, cudaStream_t st = nullptr) {
    if (version == 1)
      frru_conv1x1_upsample_add_forward_naive(y_.get(), w_.get(), b_.get(), z_.get(), out_.get(), low_.get(), up_.get(),
                                              p_.N, p_.Cy, p_.h(), p_.w(), p_.Cz, p_.H, p_.W, st);
    else
      K::frru_conv1x1_upsample_add_forward(y_.get(), w_.get(), b_.get(), z_.get(), out_.get(), low_.get(), p_.N, p_.Cy,
                                           p_.h(), p_.w(), p_.Cz, p_.H, p_.W, st);
  }
  ErrorStats check(const FrruUpData& d) const {
    return compare(out_.download(), d.out_ref, &d.scale, 1e-6, upadd_rtol(p_));
  }
  const float* y() const { return y_.get(); }
  const float* z() const { return z_.get(); }
  const float* w() const { return w_.get(); }
  const float* b() const { return b_.get(); }

 private:
  FrruProblem p_;
  Buffer<float> y_, z_, w_, b_, out_;
  Buffer<float> low_;   // the low-res map: v1's first temporary, v2's workspace
  Buffer<float> up_;    // v1's full-resolution upsampled temporary
};

}  // namespace moeseg::lab::MOESEG_KERNEL_NS
