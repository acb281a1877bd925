// `moeseg kernels`: the kernel listing. One line per `__global__` kernel under kernels/ (name,
// file, the tests that run it through CUDA-on-CPU, or "-"), then `kernels: N` and `uncovered: N`.
// The table is made at build time from the source tree (tools/kernel_index/make_kernel_index.cpp,
// from `// covers:` lines in tests/), so the command reads no files. Exit code 0.
#include "tools/cmd_kernels.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "core/cli_args.h"

namespace moeseg::cli {
namespace {

struct KernelRow {
  const char* name;
  const char* file;
  const char* tests;   // comma-separated; empty when no test covers the kernel
};

constexpr KernelRow kKernels[] = {
#include "kernel_index.inc"
};

}  // namespace

int run_kernels(int argc, char** argv) {
  ArgParser args("moeseg kernels", "",
                 "Lists every __global__ kernel under kernels/ with the test that runs it through CUDA-on-CPU\n"
                 "(from the source tree this binary was built from).");
  if (!args.parse(argc, argv)) return 0;
  size_t width = 6;
  for (const KernelRow& k : kKernels) width = std::max(width, std::string(k.name).size());
  int uncovered = 0;
  std::printf("%-*s  %-40s  %s\n", static_cast<int>(width), "kernel", "file", "CUDA-on-CPU test");
  for (const KernelRow& k : kKernels) {
    const bool covered = k.tests[0] != '\0';
    uncovered += covered ? 0 : 1;
    std::printf("%-*s  %-40s  %s\n", static_cast<int>(width), k.name, k.file, covered ? k.tests : "-");
  }
  std::printf("kernels: %zu\nuncovered: %d\n", std::size(kKernels), uncovered);
  return 0;
}

}  // namespace moeseg::cli
