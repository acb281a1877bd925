// Finite-difference gradient checking and tolerance comparisons for the op tests.
#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <doctest/doctest.h>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace moeseg::testing {

bool expect_close(const Tensor& actual, const Tensor& expected, Tolerance tol, const std::string& what) {
  if (actual.sizes() != expected.sizes()) {
    FAIL_CHECK(what << ": shape " << shape_str(actual.sizes()) << " != expected " << shape_str(expected.sizes()));
    return false;
  }
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
  if (bad.empty()) return true;
  std::sort(bad.begin(), bad.end(), [](auto& x, auto& y) { return x.first > y.first; });
  std::ostringstream os;
  os << what << ": " << bad.size() << " of " << a.size() << " elements outside atol=" << tol.atol
     << " rtol=" << tol.rtol << ", max abs error " << max_err << "; worst:";
  for (size_t k = 0; k < std::min<size_t>(5, bad.size()); ++k)
    os << " [" << bad[k].second << "] got " << a[bad[k].second] << " want " << e[bad[k].second] << ";";
  FAIL_CHECK(os.str());
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

bool check_gradients(const std::string& op, const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                     const std::vector<Tensor>& inputs, GradcheckOptions opts) {
  register_op_test(op, "grad");
  for (auto& t : inputs)
    if (t.defined() && t.requires_grad())
      REQUIRE_MESSAGE(t.dtype() == DType::Float64, op << ": gradcheck inputs must be float64");
  Tensor out = fn(inputs);
  REQUIRE_MESSAGE(out.requires_grad(), op << ": output does not require grad");
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
  bool ok = true;
  for (size_t k = 0; k < wrt.size(); ++k) {
    Tensor x = wrt[k];
    Tensor numeric = Tensor::zeros(x.sizes(), DType::Float64);
    REQUIRE(x.is_contiguous());
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
    ok &= expect_close(analytic[k], numeric, {opts.atol, opts.rtol},
                       op + ": gradient of input " + std::to_string(k) + " vs finite differences");
  }
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

}  // namespace moeseg::testing
