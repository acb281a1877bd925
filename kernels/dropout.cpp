// Inverted dropout (forward + backward), float32/float64 on the CPU.
// The keep decision for element i is u_i > p with u_i = Generator::uniform_at(base, i), i.e.
// output r of Philox block (seed, base + i/4): a pure function of (seed, offset, i), so the mask
// is the same for any thread count and is what a CUDA kernel computing the same Philox values
// would draw. One call reserves ceil(n/4) blocks, so consecutive calls use disjoint streams.
// Memory: the mask is saved for backward as uint8 (1 byte/element instead of 4 or 8).
// Like torch: p == 0 or eval mode return the input itself; p == 1 returns x * 0 without drawing.
// Tested by tests/ops/test_dropout.cpp.
#include "kernels/dropout.h"

#include <cstring>

#include "core/autograd.h"
#include "kernels/device_fallback.h"

namespace moeseg {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;

// mask[i] = 1 where uniform_at(base, i) > p; one Philox block serves four elements.
void draw_mask(uint8_t* mask, int64_t n, double p, uint64_t seed, uint64_t base) {
  const std::array<uint32_t, 2> key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t ctr = base + static_cast<uint64_t>(b);
    const auto r = philox4x32({static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0u, 0u}, key);
    for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j) mask[b * 4 + j] = uint_to_unit(r[j]) > p ? 1 : 0;
  }
}

// out[i] = mask[i] ? in[i] * scale : 0 (used by forward and backward alike).
template <typename T>
void apply_mask(const T* in, const uint8_t* mask, T* out, int64_t n, T scale) {
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = mask[i] ? in[i] * scale : T(0);
}

Tensor masked_scale(const Tensor& x, const Tensor& mask, double scale, const char* op) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.sizes(), x.dtype(), x.device());
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    apply_mask<T>(xc.data<T>(), mask.data<uint8_t>(), out.data<T>(), x.numel(), static_cast<T>(scale));
  });
  return out;
}

struct DropoutBackward final : autograd::Node {
  autograd::SavedTensor mask;   // uint8, same shape as x, contiguous
  double scale = 1.0;           // 1/(1-p); 0 for p == 1
  std::vector<Tensor> backward(const Tensor& g) override {
    return {masked_scale(g, mask.get("dropout"), scale, "dropout backward")};
  }
  void release() override { mask.reset(); }
  std::string name() const override { return "DropoutBackward"; }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_defined(x, "dropout", "input");
  MOESEG_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p=", p, " must be in [0, 1]");
  if (!training || p == 0.0 || x.numel() == 0) return x;
  if (on_cuda(x)) {
    // The mask is drawn on the CPU from the same generator, so both devices drop the same elements.
    note_cpu_fallback("dropout");
    return dropout(cpu_copy(x), p, training, gen).to(x.device());
  }
  MOESEG_CHECK(is_floating(x.dtype()), "dropout: input must be float32 or float64, got ", x.str());
  const int64_t n = x.numel();
  Tensor mask = Tensor::empty(x.sizes(), DType::UInt8, x.device());
  double scale = 0.0;
  if (p == 1.0) {   // torch computes x * 0 here (nan stays nan): all "kept", scale 0
    std::memset(mask.data<uint8_t>(), 1, static_cast<size_t>(n));
  } else {
    scale = 1.0 / (1.0 - p);
    const uint64_t base = gen.reserve(static_cast<uint64_t>((n + 3) / 4));
    draw_mask(mask.data<uint8_t>(), n, p, gen.seed(), base);
  }
  Tensor out = masked_scale(x.detach(), mask, scale, "dropout");
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<DropoutBackward>();
    node->mask = autograd::SavedTensor(mask);
    node->scale = scale;
    autograd::connect(node, {&x}, out);
  }
  return out;
}

}  // namespace moeseg
