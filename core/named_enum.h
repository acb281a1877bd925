// Enums whose values arrive as text (a JSON config, an environment variable, a CLI option): one
// table of {value, name} per enum, parsed once where the string enters, so the code behind the
// edge compares enums, never strings, and a typo fails at the edge with the key, the value and
// the known names instead of deep inside (or, worse, silently taking a default branch).
//   GateType parse_gate_type(const std::string& s, const std::string& where) {
//     return parse_named(kGateTypeNames, s, where);   // "<where> is 'softmax' (known: simple, classwise)"
//   }
//   std::string to_string(GateType t) { return name_of(kGateTypeNames, t); }
// `where` names the source and the key ("model config: key 'gate'", "environment variable
// MOESEG_CONV"). The names are the strings configs and checkpoints hold, so to_string(parse(s)) == s
// and a config written back keeps its spelling. Used by models/gates.h, models/ensemble.h,
// kernels/cross_entropy.h, kernels/gpu_kernels.h; tested by tests/models/test_registry.cpp and
// tests/badinput/test_badinput.cpp.
#pragma once
#include <cstddef>
#include <string>

#include "core/error.h"
#include "core/value_checks.h"

namespace moeseg {

template <typename E>
struct NamedValue {
  E value;
  const char* name;
};

// "simple, classwise": the names in table order.
template <typename E, size_t N>
std::string known_names(const NamedValue<E> (&table)[N]) {
  std::string known;
  for (const NamedValue<E>& e : table) known += (known.empty() ? "" : ", ") + std::string(e.name);
  return known;
}

// The value named `s`; anything else throws "<where> is '<s>' (known: a, b)".
template <typename E, size_t N>
E parse_named(const NamedValue<E> (&table)[N], const std::string& s, const std::string& where) {
  for (const NamedValue<E>& e : table)
    if (s == e.name) return e.value;
  MOESEG_FAIL(where, " is '", printable(s), "' (known: ", known_names(table), ")");
}

// The name of `v` (a value outside the table, only possible through a cast, is an error).
template <typename E, size_t N>
std::string name_of(const NamedValue<E> (&table)[N], E v) {
  for (const NamedValue<E>& e : table)
    if (e.value == v) return e.name;
  MOESEG_FAIL("enum value ", static_cast<long long>(v), " has no name (known: ", known_names(table), ")");
}

}  // namespace moeseg
