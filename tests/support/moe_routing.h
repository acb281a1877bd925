// Top-k expert indices for the dispatch tests: T tokens, k distinct experts of N each, drawn by a
// 64-bit LCG from `seed` (the same list on every machine), never the expert `unused` (-1: none),
// so a test can leave one expert without tokens. Row-major [T, k].
#pragma once
#include <cstdint>
#include <vector>

namespace moeseg::testing {

inline std::vector<int64_t> random_routing(int64_t T, int k, int N, uint64_t seed, int unused = -1) {
  std::vector<int64_t> v(static_cast<size_t>(T * k));
  uint64_t s = seed;
  for (int64_t t = 0; t < T; ++t)
    for (int j = 0; j < k; ++j) {
      int64_t e;
      bool again;
      do {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        e = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(N));
        again = e == unused;
        for (int i = 0; i < j; ++i) again = again || v[static_cast<size_t>(t * k + i)] == e;
      } while (again);
      v[static_cast<size_t>(t * k + j)] = e;
    }
  return v;
}

}  // namespace moeseg::testing
