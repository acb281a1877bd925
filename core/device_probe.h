// Decides where work runs. A user asks for a device with one flag (--device cpu|cuda); when CUDA
// is asked for but this build has no CUDA backend, or no usable GPU is present, resolve_device
// prints one line saying so and returns the CPU — a CUDA build never crashes on a GPU-less machine.
// With MOESEG_CUDA_EMULATE=1 (core/cuda_emulation.h) "cuda" is the emulated device instead.
#pragma once
#include <string>

#include "core/device.h"

namespace moeseg {

bool built_with_cuda();
// True when the CUDA runtime reports at least one device; `why` gets the reason when false.
bool cuda_usable(std::string* why = nullptr);
// "cpu" -> CPU; "cuda[:N]" -> that GPU when usable, else the CPU with a one-line notice on stderr.
Device resolve_device(const std::string& requested);

}  // namespace moeseg
