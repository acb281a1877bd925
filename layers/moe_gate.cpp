// The gate of a sparse MoE layer: selection, hard-constraint mask, overflow re-assignment and
// output weights; the maths are in moe_gate.h.
#include "layers/moe_gate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace moeseg {

namespace {

bool is_masked(const std::vector<bool>& masked, int64_t e) {
  return !masked.empty() && masked[static_cast<size_t>(e)];
}

// Host copies of a tensor (explicitly moved off the device first).
template <typename T>
std::vector<T> host_values(const Tensor& t) {
  return t.detach().to(Device{}).template to_vector<T>();
}

// Whether token t (slots idx[t·k .. t·k + k)) already uses expert e.
bool token_uses(const std::vector<int64_t>& idx, int64_t t, int64_t k, int64_t e) {
  for (int64_t s = 0; s < k; ++s)
    if (idx[static_cast<size_t>(t * k + s)] == e) return true;
  return false;
}

// The best-scored expert of token t with room, not masked and not used by the token; -1 if none.
int64_t best_candidate(const std::vector<int64_t>& idx, const std::vector<double>& scores, int64_t t, int64_t k,
                       int64_t n, const std::vector<int64_t>& room, const std::vector<bool>& masked) {
  int64_t best = -1;
  for (int64_t e = 0; e < n; ++e) {
    if (room[static_cast<size_t>(e)] <= 0 || is_masked(masked, e) || token_uses(idx, t, k, e)) continue;
    if (best < 0 || scores[static_cast<size_t>(t * n + e)] > scores[static_cast<size_t>(t * n + best)]) best = e;
  }
  return best;
}

}  // namespace

const char* moe_overflow_name(MoeOverflow overflow) {
  switch (overflow) {
    case MoeOverflow::Drop: return "drop";
    case MoeOverflow::Reassign: return "reassign";
  }
  return "?";
}

MoeOverflow moe_overflow_from_name(const std::string& name, const std::string& context) {
  for (MoeOverflow o : {MoeOverflow::Drop, MoeOverflow::Reassign})
    if (name == moe_overflow_name(o)) return o;
  MOESEG_FAIL(context.empty() ? std::string("moe overflow") : context, ": unknown overflow policy '", name,
              "' (known: drop, reassign)");
}

std::vector<bool> moe_hard_constraint_mask(const std::vector<double>& importance, int64_t k, double tau) {
  const int64_t n = static_cast<int64_t>(importance.size());
  std::vector<bool> masked(static_cast<size_t>(n), false);
  const double total = std::accumulate(importance.begin(), importance.end(), 0.0);
  if (!(total > 0.0) || !std::isfinite(total)) return masked;
  int64_t count = 0;
  for (int64_t e = 0; e < n; ++e)
    if (importance[static_cast<size_t>(e)] / total > tau) masked[static_cast<size_t>(e)] = true, ++count;
  while (n - count < k) {   // unmask the least used masked expert (the lower index on ties)
    int64_t least = -1;
    for (int64_t e = 0; e < n; ++e)
      if (masked[static_cast<size_t>(e)] &&
          (least < 0 || importance[static_cast<size_t>(e)] < importance[static_cast<size_t>(least)]))
        least = e;
    masked[static_cast<size_t>(least)] = false;
    --count;
  }
  return masked;
}

Tensor moe_select_topk(const Tensor& scores, int64_t k, const std::vector<bool>& masked) {
  MOESEG_CHECK(scores.dim() == 2 && k >= 1 && k <= scores.size(1), "moe_select_topk: scores ", scores.str(),
               ", k = ", k);
  Tensor s = scores.detach();
  if (std::find(masked.begin(), masked.end(), true) != masked.end()) {
    // Masked experts move to [−2, −1], below every score in [0, 1] (the scores are probabilities).
    std::vector<double> offset(masked.size());
    for (size_t e = 0; e < masked.size(); ++e) offset[e] = masked[e] ? -2.0 : 0.0;
    Tensor off = Tensor::from_vector<double>(offset, {1, static_cast<int64_t>(masked.size())}).to(s.dtype());
    s = add(s, off.to(s.device()));
  }
  return topk(s, k, 1).second;
}

MoeReassignResult moe_reassign_overflow(std::vector<int64_t>& idx, const std::vector<double>& scores, int64_t k,
                                        int64_t num_experts, int64_t capacity, int64_t rounds,
                                        const std::vector<bool>& masked) {
  const int64_t n = num_experts, pairs = static_cast<int64_t>(idx.size()), t_count = pairs / k;
  MOESEG_CHECK(capacity > 0 && rounds >= 0 && pairs % k == 0 && static_cast<int64_t>(scores.size()) == t_count * n,
               "moe_reassign_overflow: capacity ", capacity, ", rounds ", rounds, ", ", pairs, " pairs, k ", k, ", ",
               scores.size(), " scores for N = ", n);
  // The plan's rule: per expert, the first `capacity` pairs in pair order are kept.
  std::vector<int64_t> count(static_cast<size_t>(n), 0);
  std::vector<bool> kept(static_cast<size_t>(pairs), false);
  for (int64_t p = 0; p < pairs; ++p) {
    int64_t& c = count[static_cast<size_t>(idx[static_cast<size_t>(p)])];
    if (c < capacity) kept[static_cast<size_t>(p)] = true, ++c;
  }
  MoeReassignResult res;
  std::vector<int64_t> proposal(static_cast<size_t>(pairs), -1);
  for (int64_t r = 0; r < rounds; ++r) {
    std::vector<int64_t> room(static_cast<size_t>(n));
    for (int64_t e = 0; e < n; ++e) room[static_cast<size_t>(e)] = capacity - count[static_cast<size_t>(e)];
    bool any = false;
    for (int64_t p = 0; p < pairs; ++p) {
      proposal[static_cast<size_t>(p)] =
          kept[static_cast<size_t>(p)] ? -1 : best_candidate(idx, scores, p / k, k, n, room, masked);
      any = any || proposal[static_cast<size_t>(p)] >= 0;
    }
    if (!any) break;
    bool accepted = false;
    for (int64_t p = 0; p < pairs; ++p) {
      const int64_t e = proposal[static_cast<size_t>(p)];
      if (e < 0 || count[static_cast<size_t>(e)] >= capacity || token_uses(idx, p / k, k, e)) continue;
      idx[static_cast<size_t>(p)] = e;
      kept[static_cast<size_t>(p)] = true;
      ++count[static_cast<size_t>(e)];
      ++res.reassigned;
      accepted = true;
    }
    if (accepted) ++res.rounds;
  }
  return res;
}

Tensor moe_reassign_overflow(const Tensor& idx, const Tensor& scores, int64_t capacity, int64_t rounds,
                             const std::vector<bool>& masked, MoeReassignResult* result) {
  MOESEG_CHECK(idx.dim() == 2 && idx.dtype() == DType::Int64 && scores.dim() == 2 && scores.size(0) == idx.size(0),
               "moe_reassign_overflow: idx must be int64 [T, k] and scores [T, N], got ", idx.str(), " and ",
               scores.str());
  std::vector<int64_t> iv = host_values<int64_t>(idx);
  std::vector<double> sv = host_values<double>(scores.detach().to(DType::Float64));
  MoeReassignResult res = moe_reassign_overflow(iv, sv, idx.size(1), scores.size(1), capacity, rounds, masked);
  if (result) *result = res;
  return Tensor::from_vector<int64_t>(iv, idx.sizes(), idx.device());
}

Tensor moe_gather_scores(const Tensor& probs, const Tensor& idx) {
  MOESEG_CHECK(probs.dim() == 2 && idx.dim() == 2 && idx.dtype() == DType::Int64 && probs.size(0) == idx.size(0),
               "moe_gather_scores: probs [T, N] and int64 idx [T, k], got ", probs.str(), " and ", idx.str());
  const int64_t t = idx.size(0), k = idx.size(1), n = probs.size(1);
  std::vector<int64_t> iv = host_values<int64_t>(idx);
  std::vector<double> oh(static_cast<size_t>(t * k * n), 0.0);
  for (size_t p = 0; p < iv.size(); ++p) {
    MOESEG_CHECK(iv[p] >= 0 && iv[p] < n, "moe_gather_scores: expert index ", iv[p], " outside [0, ", n, ")");
    oh[p * static_cast<size_t>(n) + static_cast<size_t>(iv[p])] = 1.0;
  }
  Tensor one_hot = Tensor::from_vector<double>(oh, {t, k, n}).to(probs.dtype()).to(probs.device());
  // One product per slot is the probability itself (× 1), the others exact zeros: v is exact.
  return sum(mul(probs.unsqueeze(1), one_hot), {2});
}

Tensor moe_gate_weights(const Tensor& v, bool straight_through) {
  if (straight_through) return add_scalar(sub(v, v.detach()), 1.0);
  return div(v, sum(v, {1}, true));
}

}  // namespace moeseg
