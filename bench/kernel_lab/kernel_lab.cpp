// kernel_lab: numbered versions of the flagship CUDA kernels side by side (atrous conv forward,
// gate softmax + combine forward, fused cross-entropy forward, the FRRU pieces pool_concat
// ("pcat") and conv1x1_upsample_add ("upadd") forward), in the manner of llm.c's dev/cuda: v1 a
// naive kernel of this lab (for the FRRU pieces the unfused sequence of naive kernels), v2 the
// production kernel of kernels/cuda.
//   kernel_lab --validate      every version through CUDA-on-CPU on scaled-down shapes against the
//                              CPU backend (a few seconds; the ctest kernel_lab_validate)
//   kernel_lab [--repeats N] [--only conv|gate|xent|frru] [--no-baselines]
//                              the same, then, when the build has CUDA and a GPU is present, every
//                              version validated and timed at the full FRRN-A / DeepLabv3+ shapes
//                              next to cuDNN / cuBLAS
// Exit code: 0 when every check passed, 1 when one failed, 2 on a usage error.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "bench/kernel_lab/lab_main.h"
#include "core/error.h"

namespace {

int usage(const char* why) {
  std::fprintf(stderr,
               "kernel_lab: %s\nusage: kernel_lab [--validate] [--repeats N] [--only conv|gate|xent|frru] [--no-baselines]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool validate_only = false;
  int repeats = 20;
  bool baselines = true;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--validate") {
      validate_only = true;
    } else if (a == "--repeats" && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
      if (repeats < 1) return usage("--repeats needs a positive integer");
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
      if (only != "conv" && only != "gate" && only != "xent" && only != "frru")
        return usage("--only takes conv, gate, xent or frru");
    } else if (a == "--no-baselines") {
      baselines = false;
    } else if (a == "--help" || a == "-h") {
      usage("numbered kernel versions validated against the CPU backend, timed on a GPU");
      return 0;
    } else {
      return usage(("unknown argument '" + a + "'").c_str());
    }
  }
  try {
    std::printf("CUDA-on-CPU validation (scaled-down shapes, every version against the CPU backend):\n");
    int failures = moeseg::lab::validate_on_cuda_on_cpu();
    if (validate_only) {
      std::printf("%s\n", failures ? "kernel_lab: validation FAILED" : "kernel_lab: all versions match the CPU backend");
      return failures ? 1 : 0;
    }
#ifdef MOESEG_KERNEL_LAB_GPU
    const std::string gpu = moeseg::lab::gpu_name();
    if (gpu.empty()) {
      std::printf("no GPU found: no timing was taken (validation on CUDA-on-CPU only)\n");
    } else {
      moeseg::lab::GpuOptions opt;
      opt.repeats = repeats;
      opt.baselines = baselines;
      opt.only = only;
      failures += moeseg::lab::validate_and_time_on_gpu(opt);
    }
#else
    (void)baselines;
    std::printf("built without CUDA: no timing was taken (validation on CUDA-on-CPU only)\n");
#endif
    std::printf("%s\n", failures ? "kernel_lab: validation FAILED" : "kernel_lab: all versions match the CPU backend");
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernel_lab: error: %s\n", e.what());
    return 3;
  }
}
