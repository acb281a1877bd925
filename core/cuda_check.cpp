// Host side of core/cuda_check.h: the error thrower shared by CUDA_CHECK / CUBLAS_CHECK /
// CUDNN_CHECK and the MOESEG_CUDA_SYNC debug switch. Needs no CUDA, so it is part of every build
// (the macro template is tested on GPU-less, CUDA-less hosts too).
#include "core/cuda_check.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace moeseg {

namespace {
// -1: not read yet; 0 / 1: off / on. Atomic because launches may come from several threads.
std::atomic<int> g_sync_debug{-1};

int sync_from_env() {
  const char* v = std::getenv("MOESEG_CUDA_SYNC");
  // "1", "true", "on" … anything but empty / "0" turns it on: a debug switch should be easy to flip.
  return (v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0) ? 1 : 0;
}
}  // namespace

bool cuda_sync_debug() {
  int s = g_sync_debug.load(std::memory_order_relaxed);
  if (s < 0) {
    s = sync_from_env();
    int expected = -1;
    // A concurrent set_cuda_sync_debug wins over the environment.
    if (!g_sync_debug.compare_exchange_strong(expected, s)) s = expected;
  }
  return s == 1;
}

void set_cuda_sync_debug(bool on) { g_sync_debug.store(on ? 1 : 0); }

namespace detail {

void reset_cuda_sync_debug_from_env() { g_sync_debug.store(sync_from_env()); }

void throw_api_error(const char* api, const char* expr, long long code, const std::string& text, const char* file,
                     int line) {
  throw_error(file, line, concat_message(api, " error: ", expr, " returned ", code, " (", text, ")"));
}

}  // namespace detail
}  // namespace moeseg
