// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// tensor fills built on it.
#include "core/rng.h"

#include <cmath>

namespace moeseg {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(M0) * c[0];
    uint64_t p1 = static_cast<uint64_t>(M1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += W0;
    k[1] += W1;
  }
  return c;
}

namespace {
std::array<uint32_t, 4> block(uint64_t seed, uint64_t counter) {
  return philox4x32({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}
}  // namespace

double Generator::uniform_at(uint64_t base, uint64_t index) const {
  return uint_to_unit(block(seed_, base + index / 4)[index % 4]);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

void uniform_(const Tensor& t, double lo, double hi, Generator& g) {
  if (!t.device().is_cpu()) {
    // Drawn on the CPU from the same generator (same values on every device), then uploaded.
    Tensor h = host_mirror(t);
    uniform_(h, lo, hi, g);
    upload_mirror(h, t);
    t.bump_version();
    return;
  }
  MOESEG_CHECK(t.is_contiguous(), "uniform_: tensor ", t.str(), " must be contiguous");
  const int64_t n = t.numel();
  const uint64_t base = g.reserve((n + 3) / 4);
  const uint64_t seed = g.seed();
  dispatch_float(t.dtype(), "uniform_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
    for (int64_t b = 0; b < (n + 3) / 4; ++b) {
      auto r = block(seed, base + b);
      for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j)
        p[b * 4 + j] = static_cast<T>(lo + (hi - lo) * (1.0 - uint_to_unit(r[j])));   // [lo, hi)
    }
  });
  t.bump_version();
}

void normal_(const Tensor& t, double mean, double std, Generator& g) {
  if (!t.device().is_cpu()) {
    // Drawn on the CPU from the same generator (same values on every device), then uploaded.
    Tensor h = host_mirror(t);
    normal_(h, mean, std, g);
    upload_mirror(h, t);
    t.bump_version();
    return;
  }
  MOESEG_CHECK(t.is_contiguous(), "normal_: tensor ", t.str(), " must be contiguous");
  const int64_t n = t.numel();
  const uint64_t base = g.reserve((n + 1) / 2);   // one block per two values (Box-Muller pairs)
  const uint64_t seed = g.seed();
  dispatch_float(t.dtype(), "normal_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
    for (int64_t b = 0; b < (n + 1) / 2; ++b) {
      auto r = block(seed, base + b);
      for (int64_t j = 0; j < 2 && b * 2 + j < n; ++j) {
        double u1 = uint_to_unit(r[2 * j]), u2 = uint_to_unit(r[2 * j + 1]);
        p[b * 2 + j] = static_cast<T>(mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
      }
    }
  });
  t.bump_version();
}

Tensor rand(const Shape& shape, DType dtype, Generator& g) {
  Tensor t = Tensor::empty(shape, dtype);
  uniform_(t, 0.0, 1.0, g);
  return t;
}

Tensor randn(const Shape& shape, DType dtype, Generator& g) {
  Tensor t = Tensor::empty(shape, dtype);
  normal_(t, 0.0, 1.0, g);
  return t;
}

Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator& g) {
  MOESEG_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  Tensor t = Tensor::empty(shape, DType::Int64);
  const int64_t n = t.numel();
  const uint64_t base = g.reserve((n + 3) / 4);
  int64_t* p = t.data<int64_t>();
  const uint64_t span = static_cast<uint64_t>(hi - lo);
  for (int64_t i = 0; i < n; ++i) {
    double u = 1.0 - g.uniform_at(base, i);   // [0, 1)
    p[i] = lo + std::min<int64_t>(static_cast<int64_t>(u * span), span - 1);
  }
  return t;
}

}  // namespace moeseg
