// The reference's expert-disagreement categories of one pixel (spec §1.12, training/report.h):
// how the combined prediction m (MoE or ensemble) relates to the predictions e1, e2 of experts
// 1 and 2. One definition for the evaluation statistics (report.cpp) and the per-pixel maps of
// `moeseg predict`.
#pragma once
#include <cstdint>

namespace moeseg {

enum class ExpertAgreement : uint8_t {
  Perfect = 0,    // m = e1 = e2
  Follows1 = 1,   // m = e1 != e2
  Follows2 = 2,   // m = e2 != e1
  Critical = 3,   // m != e1 and m != e2
};

inline ExpertAgreement expert_agreement(int64_t m, int64_t e1, int64_t e2) {
  if (m == e1 && m == e2) return ExpertAgreement::Perfect;
  if (m == e1) return ExpertAgreement::Follows1;
  if (m == e2) return ExpertAgreement::Follows2;
  return ExpertAgreement::Critical;
}

}  // namespace moeseg
