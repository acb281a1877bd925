// The emulated CUDA device: DeviceType::CUDA backed by host memory, on which the ops run the same
// hand-written kernels as on a GPU (kernels/cuda/*.cu) through the CUDA-on-CPU runtime.
// It exists so that everything above kernels/ — the dispatch from each op to its CUDA kernel, the
// CPU fallback of ops without one, autograd across devices, moving models and optimisers — runs
// and is tested on machines without a GPU, exactly as it would with one, only slowly.
// Switched on by MOESEG_CUDA_EMULATE=1 in the environment (read once at start-up) or by
// enable_cuda_emulation(); never when a real GPU backend is registered (the GPU wins).
// Tests: tests/device/.
#pragma once

namespace moeseg {

// Registers the emulated backend for DeviceType::CUDA unless a CUDA backend is already registered.
// Returns whether CUDA is emulated afterwards.
bool enable_cuda_emulation();
// True when DeviceType::CUDA is the emulated device (not a GPU).
bool cuda_emulated();

}  // namespace moeseg
