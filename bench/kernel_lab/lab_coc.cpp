// Kernel lab, CUDA-on-CPU half: every version of every flagship kernel run through the
// CUDA-on-CPU runtime (kernels/cuda_on_cpu) on the scaled-down problems and checked against the
// CPU backend. What `kernel_lab --validate` (and its ctest) runs; no timing (CPU emulation
// time says nothing about a GPU).
#include "bench/kernel_lab/lab_main.h"
#include "bench/kernel_lab/lab_runs.h"

namespace moeseg::lab {

int validate_on_cuda_on_cpu() {
  using namespace moeseg::lab::coc;
  int failures = 0;
  uint64_t seed = 100;
  for (const ConvProblem& p : conv_problems(/*small=*/true)) {
    const ConvData d = make_conv_data(p, seed++);
    ConvRun run(p, d);
    for (const Version& v : kConvVersions) {
      run.poison();
      run.launch(v.id);
      const ErrorStats e = run.check(p, d);
      print_check("conv", p.name, v.id, v.name, e);
      failures += !e.ok();
    }
  }
  for (const GateProblem& p : gate_problems(true)) {
    const GateData d = make_gate_data(p, seed++);
    GateRun run(p, d);
    for (const Version& v : kGateVersions) {
      run.poison();
      run.launch(v.id);
      const ErrorStats e = run.check(d);
      print_check("gate", p.name, v.id, v.name, e);
      failures += !e.ok();
    }
  }
  for (const CeProblem& p : ce_problems(true)) {
    const CeData d = make_ce_data(p, seed++);
    CeRun run(p, d);
    for (const Version& v : kCeVersions) {
      run.poison();
      run.launch(v.id);
      const ErrorStats e = run.check(d);
      print_check("xent", p.name, v.id, v.name, e);
      failures += !e.ok();
    }
  }
  for (const FrruProblem& p : frru_pool_problems(true)) {
    const FrruPoolData d = make_frru_pool_data(p, seed++);
    FrruPoolRun run(p, d);
    for (const Version& v : kFrruPoolVersions) {
      run.poison();
      run.launch(v.id);
      const ErrorStats e = run.check(d);
      print_check("pcat", p.name, v.id, v.name, e);
      failures += !e.ok();
    }
  }
  for (const FrruProblem& p : frru_upadd_problems(true)) {
    const FrruUpData d = make_frru_upadd_data(p, seed++);
    FrruUpRun run(p, d);
    for (const Version& v : kFrruUpVersions) {
      run.poison();
      run.launch(v.id);
      const ErrorStats e = run.check(d);
      print_check("upadd", p.name, v.id, v.name, e);
      failures += !e.ok();
    }
  }
  return failures;
}

}  // namespace moeseg::lab
