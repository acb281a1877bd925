// Element-wise kernels on contiguous float32 buffers: relu forward/backward, add and mul of
// same-shape tensors, and the SGD(momentum) and Adam/AdamW parameter updates with PyTorch's rules
// in the CPU backend's order of operations (training/optimizer.cpp; fmaf where it uses std::fma).
// Tested through CUDA-on-CPU against the CPU ops: tests/cuda_kernels/test_elementwise.cpp.
//
// All are purely memory-bound (<= 1 FLOP per 4 bytes, Adam ~2 FLOP per 4 bytes of its 7 streams):
// the floor is bytes / bandwidth, e.g. add of a [2, 38, 480, 640] tensor moves 280 MB (84 us on an
// H100). relu/add/mul use 16-byte vector accesses when every pointer is 16-byte aligned (the
// n % 4 tail is done by the same kernel, scalar); grid-stride loops over a capped grid.
// Precision: nvcc contracts a*b+c into FMA by default, g++ (ISO mode) does not; the optimiser
// kernels write every FMA that the CPU code has explicitly, so the two compilations differ only
// where nvcc contracts on its own (an ulp or so; tests use a relative tolerance of a few ulp).
#include <cmath>

#include "kernels/cuda/kernel_common.cuh"

namespace moeseg::MOESEG_KERNEL_NS {
namespace detail {

constexpr int kEwBlock = 256;

enum class Binary : int { Add, Mul };

MOESEG_DEVICE float relu1(float x) { return x > 0.f ? x : 0.f; }
MOESEG_DEVICE float relu_grad1(float g, float x) { return x > 0.f ? g : 0.f; }

// VEC = 4: elements [0, n/4*4) as F4, then the tail [n/4*4, n) one per thread. VEC = 1: scalar.
template <int VEC>
__global__ void __launch_bounds__(kEwBlock) relu_forward_kernel(const float* x, float* y, long long n) {
  const long long nv = n / VEC;
  for (long long v = global_index_x(); v < nv; v += grid_stride_x()) {
    if constexpr (VEC == 4) {
      const F4 a = load4(x, v);
      store4(y, v, F4{relu1(a.x), relu1(a.y), relu1(a.z), relu1(a.w)});
    } else {
      y[v] = relu1(x[v]);
    }
  }
  for (long long i = nv * VEC + global_index_x(); i < n; i += grid_stride_x()) y[i] = relu1(x[i]);
}

template <int VEC>
__global__ void __launch_bounds__(kEwBlock)
relu_backward_kernel(const float* gy, const float* x, float* gx, long long n) {
  const long long nv = n / VEC;
  for (long long v = global_index_x(); v < nv; v += grid_stride_x()) {
    if constexpr (VEC == 4) {
      const F4 g = load4(gy, v), a = load4(x, v);
      store4(gx, v, F4{relu_grad1(g.x, a.x), relu_grad1(g.y, a.y), relu_grad1(g.z, a.z), relu_grad1(g.w, a.w)});
    } else {
      gx[v] = relu_grad1(gy[v], x[v]);
    }
  }
  for (long long i = nv * VEC + global_index_x(); i < n; i += grid_stride_x()) gx[i] = relu_grad1(gy[i], x[i]);
}

MOESEG_DEVICE float binary1(Binary op, float a, float b) { return op == Binary::Add ? a + b : a * b; }

template <int VEC>
__global__ void __launch_bounds__(kEwBlock)
binary_kernel(const float* a, const float* b, float* out, long long n, Binary op) {
  const long long nv = n / VEC;
  for (long long v = global_index_x(); v < nv; v += grid_stride_x()) {
    if constexpr (VEC == 4) {
      const F4 x = load4(a, v), y = load4(b, v);
      store4(out, v, F4{binary1(op, x.x, y.x), binary1(op, x.y, y.y), binary1(op, x.z, y.z), binary1(op, x.w, y.w)});
    } else {
      out[v] = binary1(op, a[v], b[v]);
    }
  }
  for (long long i = nv * VEC + global_index_x(); i < n; i += grid_stride_x()) out[i] = binary1(op, a[i], b[i]);
}

// torch SGD: d = g + wd*p; buf = first ? d : (1-damp)*d + mom*buf; d = nesterov ? d + mom*buf : buf;
// p -= lr*d. Scalars are rounded to float on the host exactly as the CPU code does.
__global__ void __launch_bounds__(kEwBlock)
sgd_step_kernel(float* p, const float* g, float* buf, long long n, float neg_lr, float mom, float one_minus_damp,
                float wd, int has_wd, int nesterov, int first) {
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) {
    float d = has_wd ? fmaf(wd, p[i], g[i]) : g[i];
    if (buf) {
      const float b = first ? d : fmaf(one_minus_damp, d, buf[i] * mom);
      buf[i] = b;
      d = nesterov ? fmaf(mom, b, d) : b;
    }
    p[i] = fmaf(neg_lr, d, p[i]);
  }
}

// torch Adam/AdamW (single-tensor): see training/optimizer.h for the rule; lerp as ATen's.
__global__ void __launch_bounds__(kEwBlock)
adam_step_kernel(float* p, const float* g, float* m, float* v, float* vmax, long long n, float w1, float b2,
                 float one_minus_b2, float bc2s, float eps, float neg_step, float wd, float decay, int has_wd,
                 int decoupled, int lerp_low) {
  for (long long i = global_index_x(); i < n; i += grid_stride_x()) {
    float gi = g[i];
    float pi = p[i];
    if (has_wd) {
      if (decoupled) pi = pi * decay;
      else gi = fmaf(wd, pi, gi);
    }
    const float mi0 = m[i];
    const float diff = gi - mi0;
    const float mi = lerp_low ? fmaf(w1, diff, mi0) : fmaf(w1 - 1.f, diff, gi);
    const float vi = fmaf(one_minus_b2 * gi, gi, v[i] * b2);
    m[i] = mi;
    v[i] = vi;
    float vv = vi;
    if (vmax) {
      vv = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vv;
    }
    const float denom = sqrtf(vv) / bc2s + eps;   // IEEE sqrt and division (no fast math)
    p[i] = pi + neg_step * mi / denom;
  }
}

inline bool all_aligned(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (!is_aligned16(p)) return false;
  return true;
}

}  // namespace detail

void relu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  using namespace detail;
  if (n <= 0) return;
  if (all_aligned({x, y}))
    MOESEG_LAUNCH(relu_forward_kernel<4>, grid_for(n / 4 + 1, kEwBlock), kEwBlock, 0, stream)(x, y, static_cast<long long>(n));
  else
    MOESEG_LAUNCH(relu_forward_kernel<1>, grid_for(n, kEwBlock), kEwBlock, 0, stream)(x, y, static_cast<long long>(n));
  check_launch("relu_forward");
}

void relu_backward(const float* grad_y, const float* x, float* grad_x, int64_t n, cudaStream_t stream) {
  using namespace detail;
  if (n <= 0) return;
  if (all_aligned({grad_y, x, grad_x}))
    MOESEG_LAUNCH(relu_backward_kernel<4>, grid_for(n / 4 + 1, kEwBlock), kEwBlock, 0, stream)(
        grad_y, x, grad_x, static_cast<long long>(n));
  else
    MOESEG_LAUNCH(relu_backward_kernel<1>, grid_for(n, kEwBlock), kEwBlock, 0, stream)(
        grad_y, x, grad_x, static_cast<long long>(n));
  check_launch("relu_backward");
}

static void launch_binary(const float* a, const float* b, float* out, int64_t n, detail::Binary op,
                          cudaStream_t stream, const char* name) {
  using namespace detail;
  if (n <= 0) return;
  if (all_aligned({a, b, out}))
    MOESEG_LAUNCH(binary_kernel<4>, grid_for(n / 4 + 1, kEwBlock), kEwBlock, 0, stream)(a, b, out, static_cast<long long>(n), op);
  else
    MOESEG_LAUNCH(binary_kernel<1>, grid_for(n, kEwBlock), kEwBlock, 0, stream)(a, b, out, static_cast<long long>(n), op);
  check_launch(name);
}

void add_forward(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  launch_binary(a, b, out, n, detail::Binary::Add, stream, "add_forward");
}
void mul_forward(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  launch_binary(a, b, out, n, detail::Binary::Mul, stream, "mul_forward");
}

void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first_step, cudaStream_t stream) {
  using namespace detail;
  if (n <= 0) return;
  const bool use_momentum = momentum != 0.0;
  MOESEG_CHECK(!use_momentum || momentum_buffer != nullptr, "sgd_step: momentum ", momentum, " needs a momentum buffer");
  MOESEG_LAUNCH(sgd_step_kernel, grid_for(n, kEwBlock), kEwBlock, 0, stream)(
      param, grad, use_momentum ? momentum_buffer : nullptr, static_cast<long long>(n), static_cast<float>(-lr),
      static_cast<float>(momentum), static_cast<float>(1.0 - dampening), static_cast<float>(weight_decay),
      weight_decay != 0.0 ? 1 : 0, nesterov ? 1 : 0, first_step ? 1 : 0);
  check_launch("sgd_step");
}

void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, int64_t n,
               int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
               cudaStream_t stream) {
  using namespace detail;
  if (n <= 0) return;
  MOESEG_CHECK(step >= 1, "adam_step: step ", step, " must be >= 1");
  // The Python-side scalars, in double as torch forms them, then rounded once to float.
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const float w1 = static_cast<float>(1.0 - beta1);
  MOESEG_LAUNCH(adam_step_kernel, grid_for(n, kEwBlock), kEwBlock, 0, stream)(
      param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, static_cast<long long>(n), w1, static_cast<float>(beta2),
      static_cast<float>(1.0 - beta2), static_cast<float>(std::sqrt(bc2)), static_cast<float>(eps),
      static_cast<float>(-(lr / bc1)), static_cast<float>(weight_decay), static_cast<float>(1.0 - lr * weight_decay),
      weight_decay != 0.0 ? 1 : 0, decoupled ? 1 : 0, std::abs(static_cast<double>(w1)) < 0.5 ? 1 : 0);
  check_launch("adam_step");
}

}  // namespace moeseg::MOESEG_KERNEL_NS
