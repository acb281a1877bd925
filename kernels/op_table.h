// The op table: every op moeseg has, the header that declares it, whether it is differentiable
// and which backends implement it. The coverage test (tests/ops/test_coverage.cpp) checks that
// each op has a finite-difference gradient test and a PyTorch-fixture test; `moeseg ops` prints it.
#pragma once
#include <string>
#include <vector>

namespace moeseg {

struct OpInfo {
  std::string name;
  std::string header;        // kernels/<header>
  bool differentiable;       // needs a gradient check
  // "cpu,cuda": a CUDA kernel serves it (float32; the parenthesis names cases that still fall
  // back); "cpu,cuda(cpu fallback)": on a CUDA tensor it runs on the CPU and says so once.
  std::string backends;
};

const std::vector<OpInfo>& op_table();
const OpInfo* find_op(const std::string& name);

}  // namespace moeseg
