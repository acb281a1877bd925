// conv2d_cpu.h — CPU kernels for 2-D convolution (forward, backward-data, backward-weight)
// on raw contiguous NCHW pointers; no tensor class. The CPU backend's conv op calls these.
//
// Design: im2col in L2-sized column tiles + single-threaded BLAS GEMM per tile, OpenMP over
// (image, group, tile). Backward-data of stride-1 convs is a forward conv of dy with the
// flipped/transposed weight; the general case is GEMM + col2im over disjoint channel blocks.
// Backward-weight reduces per-thread partial buffers in a fixed order (deterministic for a
// given thread count, no float atomics).
//
// Tested by tests/kernels/test_conv2d_cpu.cpp (naive double-precision reference on awkward
// shapes); timed by bench/conv_bench.cpp (`moeseg bench conv`).
#pragma once

#include <cstddef>
#include <cstdint>

namespace moeseg::cpu {

struct Conv2dGeometry {
  int64_t n, c_in, h_in, w_in;  // input NCHW
  int64_t c_out, kh, kw;        // weight [c_out, c_in/groups, kh, kw]
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  // PyTorch formula: (h + 2p - d*(k-1) - 1)/s + 1
  int64_t h_out() const;
  int64_t w_out() const;
};

// Throws moeseg::Error naming the op and the offending values when the geometry is
// not a valid convolution (non-positive sizes, channels not divisible by groups, empty output).
void conv2d_check_geometry(const Conv2dGeometry& g, const char* op);

// All tensors contiguous NCHW; weight contiguous [c_out, c_in/groups, kh, kw].
// T is float or double. Thread count = omp_get_max_threads() of the calling thread.
// BLAS is switched to 1 thread inside the parallel regions and restored afterwards.
template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias /*may be null*/,
                    bool fuse_relu, T* y);  // overwrites y
template <typename T>
void conv2d_backward_data(const Conv2dGeometry& g, const T* dy, const T* w, T* dx);  // overwrites dx
template <typename T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* dy, T* dw,
                            T* dbias /*may be null*/);  // overwrites dw (and dbias)

// Tuning knobs (benchmark sweeps, tests forcing many small tiles): target size in bytes of one
// thread's im2col column tile (default 1 MiB, half of a Zen4 L2) and the minimum tile width in
// output pixels (default 256; wins over the byte target). 0 restores a default.
void conv2d_set_tile_bytes(std::size_t bytes, int64_t min_width = 0);
std::size_t conv2d_tile_bytes();

}  // namespace moeseg::cpu
