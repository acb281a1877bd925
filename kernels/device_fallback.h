// The CPU fallback of ops on CUDA tensors (the ggml shape): an op whose CUDA kernel does not exist
// yet, or does not cover the case at hand (a dtype, a broadcast), runs on CPU copies of its inputs
// and moves its result back, and says so once per op on stderr. Written as composition —
// op(cpu_copy(x)).to(device) — so autograd crosses the devices through Tensor::to's own backward,
// and the backward pass of the fallback op runs on the CPU as well.
// Tests: tests/device/ (every op on the emulated CUDA device against the CPU).
#pragma once
#include "core/tensor.h"

namespace moeseg {

// True when t is defined and lives on a CUDA device.
inline bool on_cuda(const Tensor& t) { return t.defined() && t.device().is_cuda(); }

// Says, once per op name, that `op` runs on the CPU for CUDA tensors ("why" names the case).
void note_cpu_fallback(const char* op, const char* why = nullptr);

// t on the CPU (differentiable; an undefined tensor stays undefined).
inline Tensor cpu_copy(const Tensor& t) { return t.defined() ? t.to(Device{}) : t; }

// The ops that fell back so far in this process, in first-use order (tests and `moeseg ops`).
std::vector<std::string> cpu_fallbacks_taken();

}  // namespace moeseg
