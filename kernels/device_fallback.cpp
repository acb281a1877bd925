// One-time notices of CPU fallbacks taken by ops on CUDA tensors (see kernels/device_fallback.h).
#include "kernels/device_fallback.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace moeseg {

namespace {
std::mutex g_mu;
std::vector<std::string>& taken() {
  static std::vector<std::string> v;
  return v;
}
}  // namespace

void note_cpu_fallback(const char* op, const char* why) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto& v = taken();
  if (std::find(v.begin(), v.end(), op) != v.end()) return;
  v.emplace_back(op);
  std::fprintf(stderr, "moeseg: %s has no CUDA kernel%s%s yet; it runs on the CPU (inputs copied over and back)\n",
               op, why ? " for " : "", why ? why : "");
}

std::vector<std::string> cpu_fallbacks_taken() {
  std::lock_guard<std::mutex> lock(g_mu);
  return taken();
}

}  // namespace moeseg
