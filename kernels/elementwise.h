// Element-wise ops: broadcasting binary arithmetic, unary activations and math, clamp, scale.
// Each is differentiable (backward beside the forward in elementwise.cpp / unary.cpp) and runs on
// the CPU with OpenMP over contiguous data; non-contiguous inputs go through StridedLoop.
#pragma once
#include "core/tensor.h"

namespace moeseg {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double s);
Tensor scale(const Tensor& a, double s);     // a * s
Tensor neg(const Tensor& a);

Tensor relu(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor sign(const Tensor& a);                 // gradient zero everywhere
Tensor clamp(const Tensor& a, double lo, double hi);   // gradient passes where lo < a < hi (torch)
Tensor sqrt(const Tensor& a);
Tensor square(const Tensor& a);
// The standard normal CDF Phi(a) = erfc(-a / sqrt(2)) / 2 (torch.special.ndtr); d/da = exp(-a^2/2) / sqrt(2 pi).
// Shazeer's smooth load estimate of a noisy top-k router (layers/moe_balancing.h) is built on it.
Tensor normal_cdf(const Tensor& a);

// In place, not recorded by autograd (optimisers, gradient accumulation). dst += src (broadcast src).
void add_(const Tensor& dst, const Tensor& src, double alpha = 1.0);
void mul_(const Tensor& dst, double s);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator*(const Tensor& a, double s) { return scale(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return scale(a, s); }
inline Tensor operator+(const Tensor& a, double s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add_scalar(a, -s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace moeseg
