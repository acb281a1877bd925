// Finite-difference gradient checking and tolerance comparisons for the op tests.
#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>

#include <doctest/doctest.h>

#include "kernels/elementwise.h"
#include "kernels/op_table.h"
#include "kernels/reduce.h"

namespace moeseg::testing {

bool expect_close(const Tensor& actual, const Tensor& expected, Tolerance tol, const std::string& what) {
  // One doctest assertion per comparison, passed or failed, so a case made of comparisons
  // counts them (ctest fails an entry that ran no assertion).
  CHECK_MESSAGE(actual.sizes() == expected.sizes(),
                what << ": shape " << shape_str(actual.sizes()) << " != expected " << shape_str(expected.sizes()));
  if (actual.sizes() != expected.sizes()) return false;
  auto a = actual.detach().to(DType::Float64).to_vector<double>();
  auto e = expected.detach().to(DType::Float64).to_vector<double>();
  std::vector<std::pair<double, size_t>> bad;
  double max_err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double err = std::fabs(a[i] - e[i]);
    bool nan_mismatch = std::isnan(a[i]) != std::isnan(e[i]);
    if (!std::isnan(err)) max_err = std::max(max_err, err);
    if (nan_mismatch || err > tol.atol + tol.rtol * std::fabs(e[i])) bad.push_back({nan_mismatch ? INFINITY : err, i});
  }
  if (bad.empty()) {
    CHECK_MESSAGE(bad.empty(), what);
    return true;
  }
  std::sort(bad.begin(), bad.end(), [](auto& x, auto& y) { return x.first > y.first; });
  std::ostringstream os;
  os << what << ": " << bad.size() << " of " << a.size() << " elements outside atol=" << tol.atol
     << " rtol=" << tol.rtol << ", max abs error " << max_err << "; worst:";
  for (size_t k = 0; k < std::min<size_t>(5, bad.size()); ++k)
    os << " [" << bad[k].second << "] got " << a[bad[k].second] << " want " << e[bad[k].second] << ";";
  CHECK_MESSAGE(bad.empty(), os.str());
  return false;
}

double max_relative_error(const Tensor& a, const Tensor& b) {
  REQUIRE_MESSAGE(a.sizes() == b.sizes(), "shapes differ: " << shape_str(a.sizes()) << " vs " << shape_str(b.sizes()));
  auto va = a.detach().to(DType::Float64).to_vector<double>(), vb = b.detach().to(DType::Float64).to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    num = std::max(num, std::fabs(va[i] - vb[i]));
    den = std::max(den, std::fabs(vb[i]));
  }
  return den > 0 ? num / den : num;
}

std::map<std::string, Tensor> tensors_with_prefix(const TensorFile& f, const std::string& prefix,
                                                  const std::string& replacement) {
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : f.tensors)
    if (k.rfind(prefix, 0) == 0) out[replacement + k.substr(prefix.size())] = v;
  return out;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Tensor rand_input(const Shape& shape, double lo, double hi, uint64_t seed) {
  Generator g(seed);
  Tensor t = Tensor::empty(shape, DType::Float64);
  uniform_(t, lo, hi, g);
  t.set_requires_grad(true);
  return t;
}

std::vector<GradientPair> compare_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                            const std::vector<Tensor>& inputs, GradcheckOptions opts) {
  for (auto& t : inputs)
    if (t.defined() && t.requires_grad()) MOESEG_CHECK(t.dtype() == DType::Float64, "gradcheck inputs must be float64");
  Tensor out = fn(inputs);
  MOESEG_CHECK(out.requires_grad(), "gradcheck: the output does not require grad");
  Generator g(opts.seed);
  Tensor v = Tensor::empty(out.sizes(), DType::Float64);
  uniform_(v, -1.0, 1.0, g);
  std::vector<Tensor> wrt;
  for (auto& t : inputs)
    if (t.defined() && t.requires_grad()) wrt.push_back(t);
  std::vector<Tensor> analytic = autograd::grad(out, wrt, v);
  auto objective = [&]() {
    NoGradGuard ng;
    return sum(mul(fn(inputs), v)).item();
  };
  std::vector<GradientPair> pairs;
  for (size_t k = 0; k < wrt.size(); ++k) {
    Tensor x = wrt[k];
    Tensor numeric = Tensor::zeros(x.sizes(), DType::Float64);
    MOESEG_CHECK(x.is_contiguous(), "gradcheck: input ", k, " is not contiguous");
    double* xp = x.data<double>();
    double* np_ = numeric.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = xp[i];
      xp[i] = orig + opts.eps;
      double fp = objective();
      xp[i] = orig - opts.eps;
      double fm = objective();
      xp[i] = orig;
      np_[i] = (fp - fm) / (2 * opts.eps);
    }
    pairs.push_back({analytic[k], numeric});
  }
  return pairs;
}

bool check_gradients(const std::string& op, const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                     const std::vector<Tensor>& inputs, GradcheckOptions opts) {
  register_op_test(op, "grad");
  std::vector<GradientPair> pairs;
  try {
    pairs = compare_gradients(fn, inputs, opts);
  } catch (const Error& e) {
    FAIL_CHECK(op << ": " << e.what());
    record_op_check(op, "grad", false);
    return false;
  }
  bool ok = true;
  for (size_t k = 0; k < pairs.size(); ++k)
    ok &= expect_close(pairs[k].analytic, pairs[k].numeric, {opts.atol, opts.rtol},
                       op + ": gradient of input " + std::to_string(k) + " vs finite differences");
  record_op_check(op, "grad", ok && !pairs.empty());
  return ok;
}

namespace {
std::vector<std::pair<std::string, std::string>>& registry() {
  static std::vector<std::pair<std::string, std::string>> r;
  return r;
}
}  // namespace

int register_op_test(const std::string& op, const std::string& kind) {
  auto& r = registry();
  if (std::find(r.begin(), r.end(), std::make_pair(op, kind)) == r.end()) r.push_back({op, kind});
  return static_cast<int>(r.size());
}

const std::vector<std::pair<std::string, std::string>>& registered_op_tests() { return registry(); }

namespace {
struct CheckCounts {
  int passed = 0, failed = 0;
};
std::map<std::pair<std::string, std::string>, CheckCounts>& checks_that_ran() {
  static std::map<std::pair<std::string, std::string>, CheckCounts> r;
  return r;
}
}  // namespace

void record_op_check(const std::string& op, const std::string& kind, bool passed) {
  auto& c = checks_that_ran()[{op, kind}];
  (passed ? c.passed : c.failed)++;
}

int report_op_checks_that_ran() {
  const auto& ran = checks_that_ran();
  auto counts = [&](const std::string& op, const std::string& kind) {
    auto it = ran.find({op, kind});
    return it == ran.end() ? CheckCounts{} : it->second;
  };
  std::vector<std::string> missing;
  std::cout << "op checks that ran (passed/failed):\n";
  for (const OpInfo& op : op_table()) {
    const CheckCounts g = counts(op.name, "grad"), t = counts(op.name, "torch");
    std::cout << "  " << op.name << std::string(op.name.size() < 22 ? 22 - op.name.size() : 1, ' ') << "grad: "
              << (op.differentiable ? std::to_string(g.passed) + "/" + std::to_string(g.failed) : std::string("n.a."))
              << "  torch: " << t.passed << "/" << t.failed << "\n";
    std::string what;
    if (op.differentiable && g.passed == 0) what += " grad";
    if (t.passed == 0) what += " torch";
    if (!what.empty()) missing.push_back(op.name + " (" + what.substr(1) + ")");
  }
  for (auto& [key, c] : ran)
    if (!find_op(key.first)) std::cout << "  checked but not in the op table: " << key.first << " " << key.second << "\n";
  std::cout << "ops: " << op_table().size() << ", without a passing check that ran: " << missing.size() << std::endl;
  if (missing.empty()) return 0;
  std::cout << "FAILED: ops without a passing check that ran:";
  for (auto& m : missing) std::cout << " " << m;
  std::cout << std::endl;
  return 1;
}

}  // namespace moeseg::testing
