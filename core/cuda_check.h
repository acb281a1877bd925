// Error checking for the CUDA runtime, cuBLAS and cuDNN (DESIGN.md, Conventions).
// All three macros come from one template, MOESEG_API_CHECK(expr, ok_value, text_fn, what): it
// evaluates expr once, and on a status other than ok_value throws moeseg::Error naming the API,
// the expression text, the status (numeric code and text_fn's name/description), file and line.
// The template needs no CUDA, so tests/core/test_cuda_backend.cpp checks it on any host with a fake
// status type; CUDA_CHECK / CUBLAS_CHECK / CUDNN_CHECK and MOESEG_CUDA_LAUNCH_CHECK exist only in
// builds with CUDA (MOESEG_WITH_CUDA, or under nvcc).
//
// Debug switch: MOESEG_CUDA_SYNC=1 in the environment, or set_cuda_sync_debug(true), makes
// MOESEG_CUDA_LAUNCH_CHECK() also cudaDeviceSynchronize() after each launch, so an asynchronous
// fault is reported at the launch that caused it rather than at some later API call.
#pragma once
#include <string>

#include "core/error.h"

namespace moeseg {

// The launch-sync debug switch. The environment variable is read on first use; set_* overrides it.
bool cuda_sync_debug();
void set_cuda_sync_debug(bool on);

namespace detail {
// Re-reads MOESEG_CUDA_SYNC (tests; also lets a tool honour a variable set after start-up).
void reset_cuda_sync_debug_from_env();
[[noreturn]] void throw_api_error(const char* api, const char* expr, long long code, const std::string& text,
                                  const char* file, int line);
}  // namespace detail

}  // namespace moeseg

// The status lands in a local of the status's own type, so expr runs exactly once and enum class
// statuses (cuBLAS, cuDNN are plain enums, but a fake one in a test is not) compare without casts.
#define MOESEG_API_CHECK(expr, ok_value, text_fn, what)                                               \
  do {                                                                                                \
    const auto moeseg_api_status_ = (expr);                                                           \
    if (moeseg_api_status_ != (ok_value))                                                             \
      ::moeseg::detail::throw_api_error((what), #expr, static_cast<long long>(moeseg_api_status_),    \
                                        text_fn(moeseg_api_status_), __FILE__, __LINE__);             \
  } while (0)

#if defined(MOESEG_WITH_CUDA) || defined(__CUDACC__)
#include <cuda_runtime_api.h>
// cuBLAS / cuDNN are part of the toolkit here, but guard anyway so a toolkit without cuDNN still
// builds; their macros exist only when the header does.
#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#define MOESEG_HAVE_CUBLAS_HEADER 1
#endif
#if __has_include(<cudnn.h>)
#include <cudnn.h>
#define MOESEG_HAVE_CUDNN_HEADER 1
#endif

namespace moeseg::detail {
// "cudaErrorMemoryAllocation: out of memory" — the name greps well, the string explains.
inline std::string cuda_status_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}
#ifdef MOESEG_HAVE_CUBLAS_HEADER
inline std::string cublas_status_text(cublasStatus_t s) {
  return std::string(cublasGetStatusName(s)) + ": " + cublasGetStatusString(s);
}
#endif
#ifdef MOESEG_HAVE_CUDNN_HEADER
inline std::string cudnn_status_text(cudnnStatus_t s) { return cudnnGetErrorString(s); }
#endif
}  // namespace moeseg::detail

#define CUDA_CHECK(expr) MOESEG_API_CHECK(expr, cudaSuccess, ::moeseg::detail::cuda_status_text, "CUDA")
#ifdef MOESEG_HAVE_CUBLAS_HEADER
#define CUBLAS_CHECK(expr) MOESEG_API_CHECK(expr, CUBLAS_STATUS_SUCCESS, ::moeseg::detail::cublas_status_text, "cuBLAS")
#endif
#ifdef MOESEG_HAVE_CUDNN_HEADER
#define CUDNN_CHECK(expr) MOESEG_API_CHECK(expr, CUDNN_STATUS_SUCCESS, ::moeseg::detail::cudnn_status_text, "cuDNN")
#endif

// After every kernel launch. cudaGetLastError both reports and clears a launch error (bad
// configuration, too much shared memory); the optional synchronise surfaces faults inside the kernel.
#define MOESEG_CUDA_LAUNCH_CHECK()                                    \
  do {                                                                \
    CUDA_CHECK(cudaGetLastError());                                   \
    if (::moeseg::cuda_sync_debug()) CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#endif  // MOESEG_WITH_CUDA || __CUDACC__
