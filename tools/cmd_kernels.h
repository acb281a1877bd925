// `moeseg kernels`: lists every __global__ kernel under kernels/ and the test that runs it
// through CUDA-on-CPU (see cmd_kernels.cpp).
#pragma once

namespace moeseg::cli {
int run_kernels(int argc, char** argv);
}  // namespace moeseg::cli
