// The thread's innermost FlopCountScope (core/flop_counter.h).
#include "core/flop_counter.h"

namespace moeseg {

namespace {
thread_local FlopCountScope* g_scope = nullptr;
}

FlopCountScope::FlopCountScope() : outer_(g_scope) { g_scope = this; }
FlopCountScope::~FlopCountScope() { g_scope = outer_; }

void count_flops(double flops) {
  if (g_scope) g_scope->add(flops);
}

}  // namespace moeseg
