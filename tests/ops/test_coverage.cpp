// The coverage listing over kernels/op_table.cpp: for every op, whether this test binary declares
// a finite-difference gradient test ("grad") and a PyTorch-fixture test ("torch"), as registered
// by MOESEG_OP_TEST at start-up. Fails, naming them, while a differentiable op lacks a "grad" test
// or any op lacks a "torch" test. Declarations are not executions: the ctest entry
// ops/coverage_of_checks_that_ran runs the whole binary and fails unless every op's checks really
// ran and passed (tests/support/gradcheck.h, report_op_checks_that_ran).
// Run: ./build/tests/test_ops -tc='*coverage*' -s
#include <doctest/doctest.h>

#include <algorithm>
#include <iostream>
#include <sstream>

#include "kernels/op_table.h"
#include "support/gradcheck.h"

using namespace moeseg;

TEST_CASE("coverage: every op in the op table has its gradient and torch tests") {
  const auto& reg = testing::registered_op_tests();
  auto has = [&](const std::string& op, const std::string& kind) {
    return std::find(reg.begin(), reg.end(), std::make_pair(op, kind)) != reg.end();
  };
  std::ostringstream listing;
  std::vector<std::string> missing;
  for (const OpInfo& op : op_table()) {
    bool grad = has(op.name, "grad"), torch = has(op.name, "torch");
    std::string g = op.differentiable ? (grad ? "yes" : "no") : "n.a.";
    listing << op.name << std::string(op.name.size() < 22 ? 22 - op.name.size() : 1, ' ') << "grad: " << g
            << (g == "n.a." ? "  " : (g == "yes" ? "   " : "    ")) << "torch: " << (torch ? "yes" : "no") << "\n";
    std::string what;
    if (op.differentiable && !grad) what += " grad";
    if (!torch) what += " torch";
    if (!what.empty()) missing.push_back(op.name + " (" + what.substr(1) + ")");
  }
  listing << "ops: " << op_table().size() << ", missing: " << missing.size() << "\n";
  std::vector<std::string> unknown;   // registered names the table lacks (typos, helper ops)
  for (auto& [op, kind] : reg)
    if (!find_op(op) && std::find(unknown.begin(), unknown.end(), op) == unknown.end()) unknown.push_back(op);
  if (!unknown.empty()) {
    listing << "tested but not in the op table:";
    for (auto& u : unknown) listing << " " << u;
    listing << "\n";
  }
  std::cout << listing.str() << std::flush;
  if (!missing.empty()) {
    std::string names;
    for (auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    FAIL_CHECK("ops without the required tests: " << names);
  }
  CHECK(!op_table().empty());
}
