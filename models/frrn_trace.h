// A per-thread recorder of (layer name, type, output shape) rows that models fill during a
// forward pass when one is installed. `moeseg model summary` installs one around a single
// eval-mode forward to print its table; when none is installed the cost is one null check.
// Module has no forward hooks, so the models that want rows in the table (FRRN, MoE, ensembles)
// call trace_output() at their stage boundaries themselves.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

struct TraceRow {
  std::string name, type;
  Shape shape;
  int64_t params = 0;
};

struct ForwardTrace {
  std::vector<TraceRow> rows;
  std::string prefix;   // prepended to names (an MoE sets "expert1." while that expert runs)
};

// The trace installed on this thread, or nullptr.
ForwardTrace*& current_forward_trace();

inline void trace_output(const std::string& name, const std::string& type, const Tensor& out, int64_t params) {
  ForwardTrace* t = current_forward_trace();
  if (t) t->rows.push_back({t->prefix + name, type, out.shape(), params});
}

// Installs a trace for its lifetime (restores the previous one afterwards).
class ForwardTraceScope {
 public:
  explicit ForwardTraceScope(ForwardTrace* t) : prev_(current_forward_trace()) { current_forward_trace() = t; }
  ~ForwardTraceScope() { current_forward_trace() = prev_; }
  ForwardTraceScope(const ForwardTraceScope&) = delete;
  ForwardTraceScope& operator=(const ForwardTraceScope&) = delete;

 private:
  ForwardTrace* prev_;
};

// Sets the trace's name prefix for its lifetime.
class TracePrefixScope {
 public:
  explicit TracePrefixScope(const std::string& p) : t_(current_forward_trace()) {
    if (t_) { saved_ = t_->prefix; t_->prefix += p; }
  }
  ~TracePrefixScope() { if (t_) t_->prefix = saved_; }
  TracePrefixScope(const TracePrefixScope&) = delete;
  TracePrefixScope& operator=(const TracePrefixScope&) = delete;

 private:
  ForwardTrace* t_;
  std::string saved_;
};

}  // namespace moeseg
