// conv2d_cpu.cpp — CPU convolution kernels: im2col column tiles + BLAS GEMM, OpenMP outside.
//
// Work split (every task writes a disjoint part of the output, so no locks, no atomics):
//   forward          tasks = (image, group, pixel tile):  Y[:, tile] = W_g · col_tile
//   backward-data    stride 1: forward conv of dy with the flipped, transposed weight;
//                    otherwise tasks = (image, group, input-channel block):
//                    col_tile = W_g[:, block]ᵀ · dY[:, tile], then col2im into that block of dx
//   backward-weight  tasks = (group, block of im2col rows): dW[:, rows] = Σ_images,tiles
//                    dY[:, tile] · col_tile[rows]ᵀ. Each dW element is owned by one task and
//                    summed in a fixed image/tile order, so results are deterministic and need
//                    no per-thread partial buffers and no reduction pass.
// Each thread calls single-threaded BLAS on its own tile; the im2col tile is sized to stay in
// L2 (conv2d_tile_bytes(), default 1 MiB per thread), so BLAS packs it from cache.
//
// Tested by tests/kernels/test_conv2d_cpu.cpp; timed by bench/conv_bench.cpp.
#include "kernels/conv2d_cpu.h"

#include "core/error.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace moeseg::cpu {

int64_t Conv2dGeometry::h_out() const {
  return (h_in + 2 * pad_h - dil_h * (kh - 1) - 1) / stride_h + 1;
}
int64_t Conv2dGeometry::w_out() const {
  return (w_in + 2 * pad_w - dil_w * (kw - 1) - 1) / stride_w + 1;
}

namespace {

constexpr std::size_t kDefaultTileBytes = std::size_t(1) << 20;
std::atomic<std::size_t> g_tile_bytes{kDefaultTileBytes};
constexpr int64_t kDefaultMinWidth = 256;
std::atomic<int64_t> g_min_width{kDefaultMinWidth};

// ---------------------------------------------------------------------------------------------
// BLAS dispatch (row-major everywhere).
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
}
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
}

// OpenBLAS (pthread build) runs its own thread pool. Inside our OpenMP regions every thread
// must call BLAS single-threaded, or 2 OpenMP threads x N BLAS threads oversubscribe the cores.
// The setting is process-global: we restore the previous count so that other callers (a big
// Linear layer, the sgemm ceiling in the benchmark) still get threaded BLAS. Not safe against a
// second thread changing the BLAS thread count concurrently — the framework calls ops from one
// thread.
struct BlasSingleThreaded {
  int prev;
  BlasSingleThreaded() : prev(openblas_get_num_threads()) {
    if (prev != 1) openblas_set_num_threads(1);
  }
  ~BlasSingleThreaded() {
    if (prev != 1) openblas_set_num_threads(prev);
  }
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;
};

// Per-thread reusable scratch; grows, never shrinks. Tag separates buffers that the same thread
// needs at once (the caller thread holds the transposed weight while also working as thread 0).
// OpenMP pool threads live across calls, so after warm-up the hot path does not allocate.
template <typename T, int Tag>
T* scratch(std::size_t count) {
  thread_local std::vector<T> buf;
  if (buf.size() < count) buf.resize(count);
  return buf.data();
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// floor division valid for negative numerators (b > 0)
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Split `hw` output pixels into tiles of about tile_bytes / (rows * sizeof(T)) columns, and
// nudge the count so that outer*tiles spreads evenly over the threads when tasks are few.
struct TilePlan {
  int64_t tiles, width;
};
TilePlan plan_tiles(int64_t hw, int64_t rows, std::size_t elem, int64_t outer, int nthreads) {
  // BLAS re-packs the whole weight matrix (c_out x K) on every call, so a tile narrower than a
  // few hundred columns spends a large share of its time packing weights (measured: 1 MiB
  // tiles at K=3744 give 70-column tiles and ~75% of sgemm, 256+ columns ~85-90%). Above
  // the L2 budget the tile spills to L3, which costs less than the repeated packing.
  const int64_t min_width = g_min_width.load(std::memory_order_relaxed);
  int64_t width = (int64_t)(g_tile_bytes.load(std::memory_order_relaxed) / (elem * (std::size_t)std::max<int64_t>(rows, 1)));
  width = std::clamp<int64_t>(width, std::min(min_width, hw), hw);
  int64_t tiles = ceil_div(hw, width);
  const int64_t total = outer * tiles;
  if (nthreads > 1 && total < 8 * nthreads && total % nthreads != 0) {
    // smallest tile count >= current that makes the task count a multiple of nthreads
    for (int64_t t = tiles + 1; t <= std::min<int64_t>(hw, 2 * tiles + nthreads); ++t) {
      if ((outer * t) % nthreads == 0) {
        tiles = t;
        break;
      }
    }
  }
  width = ceil_div(hw, tiles);
  tiles = ceil_div(hw, width);
  return {tiles, width};
}

// Valid output-column range [lo, hi) for which iw = ow*s + off lies in [0, w).
inline void valid_cols(int64_t off, int64_t s, int64_t w, int64_t ow_begin, int64_t ow_end,
                       int64_t* lo, int64_t* hi) {
  int64_t a = off >= 0 ? 0 : ceil_div(-off, s);
  int64_t b = (w - 1 - off) < 0 ? 0 : floor_div(w - 1 - off, s) + 1;
  a = std::clamp(a, ow_begin, ow_end);
  b = std::clamp(b, a, ow_end);
  *lo = a;
  *hi = b;
}

// im2col for im2col rows [r0, r1) (row r = (c*kh + a)*kw + b, c relative to x) and output
// pixels [p0, p1) (flattened oh*w_out + ow). Writes col[(r - r0) * (p1 - p0) + (p - p0)].
// Padding is written as explicit zeros so the GEMM can overwrite (beta = 0) its output.
template <typename T>
void im2col_tile(const Conv2dGeometry& g, const T* x, int64_t r0, int64_t r1, int64_t p0,
                 int64_t p1, T* col) {
  const int64_t wo = g.w_out(), H = g.h_in, W = g.w_in, nt = p1 - p0;
  const int64_t oh_first = p0 / wo, oh_last = (p1 - 1) / wo;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r % g.kw, a = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const T* xc = x + c * H * W;
    const int64_t off = b * g.dil_w - g.pad_w;
    T* dst = col + (r - r0) * nt;
    for (int64_t oh = oh_first; oh <= oh_last; ++oh) {
      const int64_t ow_begin = oh == oh_first ? p0 - oh * wo : 0;
      const int64_t ow_end = oh == oh_last ? p1 - oh * wo : wo;
      const int64_t ih = oh * g.stride_h - g.pad_h + a * g.dil_h;
      T* d = dst - ow_begin;  // d[ow] is this row's slot for column ow
      if (ih < 0 || ih >= H) {
        std::fill(d + ow_begin, d + ow_end, T(0));
      } else {
        int64_t lo, hi;
        valid_cols(off, g.stride_w, W, ow_begin, ow_end, &lo, &hi);
        std::fill(d + ow_begin, d + lo, T(0));
        const T* xr = xc + ih * W + off;
        if (g.stride_w == 1) {
          if (hi > lo) std::memcpy(d + lo, xr + lo, (std::size_t)(hi - lo) * sizeof(T));
        } else {
          for (int64_t ow = lo; ow < hi; ++ow) d[ow] = xr[ow * g.stride_w];
        }
        std::fill(d + hi, d + ow_end, T(0));
      }
      dst += ow_end - ow_begin;
    }
  }
}

// col2im, the adjoint of im2col_tile: dx[c, ih, iw] += col[r, p] over the same index map.
// Callers give each thread a disjoint channel block, so the += never races.
template <typename T>
void col2im_tile(const Conv2dGeometry& g, const T* col, int64_t r0, int64_t r1, int64_t p0,
                 int64_t p1, T* dx) {
  const int64_t wo = g.w_out(), H = g.h_in, W = g.w_in, nt = p1 - p0;
  const int64_t oh_first = p0 / wo, oh_last = (p1 - 1) / wo;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r % g.kw, a = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    T* xc = dx + c * H * W;
    const int64_t off = b * g.dil_w - g.pad_w;
    const T* src = col + (r - r0) * nt;
    for (int64_t oh = oh_first; oh <= oh_last; ++oh) {
      const int64_t ow_begin = oh == oh_first ? p0 - oh * wo : 0;
      const int64_t ow_end = oh == oh_last ? p1 - oh * wo : wo;
      const int64_t ih = oh * g.stride_h - g.pad_h + a * g.dil_h;
      if (ih >= 0 && ih < H) {
        int64_t lo, hi;
        valid_cols(off, g.stride_w, W, ow_begin, ow_end, &lo, &hi);
        const T* s = src - ow_begin;
        T* xr = xc + ih * W + off;
        const int64_t sw = g.stride_w;
        for (int64_t ow = lo; ow < hi; ++ow) xr[ow * sw] += s[ow];
      }
      src += ow_end - ow_begin;
    }
  }
}

inline bool is_pointwise(const Conv2dGeometry& g) {
  // 1x1, stride 1, no padding: the input itself is the im2col matrix (dilation is irrelevant).
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

template <typename T>
void forward_impl(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, bool relu, T* y) {
  const int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t K = cin_g * g.kh * g.kw;
  const int64_t hwo = g.h_out() * g.w_out(), hwi = g.h_in * g.w_in;
  const bool pointwise = is_pointwise(g);
  const int nthreads = omp_get_max_threads();
  const TilePlan plan = plan_tiles(hwo, K, sizeof(T), g.n * g.groups, nthreads);
  const int64_t ntasks = g.n * g.groups * plan.tiles;

  BlasSingleThreaded blas1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (ntasks > 1)
  for (int64_t task = 0; task < ntasks; ++task) {
    const int64_t t = task % plan.tiles, ng = task / plan.tiles;
    const int64_t gi = ng % g.groups, ni = ng / g.groups;
    const int64_t p0 = t * plan.width, p1 = std::min(hwo, p0 + plan.width), nt = p1 - p0;
    if (nt <= 0) continue;
    const T* xg = x + (ni * g.c_in + gi * cin_g) * hwi;
    const T* wg = w + gi * cout_g * K;
    T* yb = y + (ni * g.c_out + gi * cout_g) * hwo + p0;
    if (pointwise) {
      gemm(false, false, cout_g, nt, K, T(1), wg, K, xg + p0, hwi, T(0), yb, hwo);
    } else {
      T* col = scratch<T, 0>((std::size_t)(K * nt));
      im2col_tile(g, xg, 0, K, p0, p1, col);
      gemm(false, false, cout_g, nt, K, T(1), wg, K, col, nt, T(0), yb, hwo);
    }
    // Epilogue on the tile while it is still in cache.
    if (bias || relu) {
      for (int64_t co = 0; co < cout_g; ++co) {
        T* row = yb + co * hwo;
        const T bv = bias ? bias[gi * cout_g + co] : T(0);
        if (relu) {
          // std::max(v, 0) keeps NaN (NaN < 0 is false), like torch.relu.
          for (int64_t j = 0; j < nt; ++j) row[j] = std::max(row[j] + bv, T(0));
        } else {
          for (int64_t j = 0; j < nt; ++j) row[j] += bv;
        }
      }
    }
  }
}

}  // namespace

void conv2d_set_tile_bytes(std::size_t bytes, int64_t min_width) {
  g_tile_bytes.store(bytes == 0 ? kDefaultTileBytes : bytes, std::memory_order_relaxed);
  g_min_width.store(min_width <= 0 ? kDefaultMinWidth : min_width, std::memory_order_relaxed);
}
std::size_t conv2d_tile_bytes() { return g_tile_bytes.load(std::memory_order_relaxed); }

void conv2d_check_geometry(const Conv2dGeometry& g, const char* op) {
  auto fail = [&](const std::string& why) {
    throw moeseg::Error(
        std::string(op) + ": " + why + " (n=" + std::to_string(g.n) + " c_in=" +
        std::to_string(g.c_in) + " h=" + std::to_string(g.h_in) + " w=" + std::to_string(g.w_in) +
        " c_out=" + std::to_string(g.c_out) + " k=" + std::to_string(g.kh) + "x" +
        std::to_string(g.kw) + " stride=" + std::to_string(g.stride_h) + "," +
        std::to_string(g.stride_w) + " pad=" + std::to_string(g.pad_h) + "," +
        std::to_string(g.pad_w) + " dil=" + std::to_string(g.dil_h) + "," +
        std::to_string(g.dil_w) + " groups=" + std::to_string(g.groups) + ")");
  };
  if (g.n <= 0 || g.c_in <= 0 || g.h_in <= 0 || g.w_in <= 0 || g.c_out <= 0 || g.kh <= 0 ||
      g.kw <= 0)
    fail("sizes must be positive");
  if (g.stride_h <= 0 || g.stride_w <= 0 || g.dil_h <= 0 || g.dil_w <= 0 || g.groups <= 0)
    fail("stride, dilation and groups must be positive");
  if (g.pad_h < 0 || g.pad_w < 0) fail("padding must be >= 0");
  if (g.c_in % g.groups != 0 || g.c_out % g.groups != 0)
    fail("channels must be divisible by groups");
  if (g.h_in + 2 * g.pad_h - g.dil_h * (g.kh - 1) - 1 < 0 ||
      g.w_in + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1 < 0)
    fail("dilated kernel is larger than the padded input");
  // BLAS takes 32-bit sizes; the largest leading dimension is h*w (or K).
  const int64_t lim = 0x7fffffff;
  if (g.h_in * g.w_in > lim || (g.c_in / g.groups) * g.kh * g.kw > lim)
    fail("too large for 32-bit BLAS dimensions");
}

template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, bool fuse_relu,
                    T* y) {
  conv2d_check_geometry(g, "conv2d_forward");
  forward_impl(g, x, w, bias, fuse_relu, y);
}

template <typename T>
void conv2d_backward_data(const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  conv2d_check_geometry(g, "conv2d_backward_data");
  const int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t khw = g.kh * g.kw, K = cin_g * khw;
  const int64_t ho = g.h_out(), wo = g.w_out(), hwo = ho * wo, hwi = g.h_in * g.w_in;
  const int64_t pad_h2 = g.dil_h * (g.kh - 1) - g.pad_h, pad_w2 = g.dil_w * (g.kw - 1) - g.pad_w;

  if (g.stride_h == 1 && g.stride_w == 1 && pad_h2 >= 0 && pad_w2 >= 0) {
    // dx = conv(dy, w') with w'[gi*cin_g + ci, co, a, b] = w[gi*cout_g + co, ci, kh-1-a, kw-1-b]
    // and padding dil*(k-1) - pad; for stride 1 its output size is exactly h_in x w_in. The
    // transposed weight is a small copy (c_out*K elements) next to the GEMM work.
    // Blocked over 16 input channels: for each co the block's source is one contiguous run
    // (16*khw elements) and each destination row advances by khw, so reads stream instead of
    // touching a new page per element (the row-at-a-time version cost ~1 ms at 384x384x3x3,
    // 20% of a 15x20 backward pass).
    T* wt = scratch<T, 1>((std::size_t)(g.c_out * K));
    constexpr int64_t kCiBlock = 16;
    const int64_t ci_blocks = ceil_div(cin_g, kCiBlock);
#pragma omp parallel for schedule(static) if (g.c_out * K > 65536)
    for (int64_t blk = 0; blk < g.groups * ci_blocks; ++blk) {
      const int64_t gi = blk / ci_blocks, ci0 = (blk % ci_blocks) * kCiBlock;
      const int64_t ci1 = std::min(cin_g, ci0 + kCiBlock);
      for (int64_t co = 0; co < cout_g; ++co)
        for (int64_t ci = ci0; ci < ci1; ++ci) {
          const T* src = w + ((gi * cout_g + co) * cin_g + ci) * khw;
          T* dst = wt + ((gi * cin_g + ci) * cout_g + co) * khw;
          for (int64_t k = 0; k < khw; ++k) dst[k] = src[khw - 1 - k];  // flips both axes
        }
    }
    Conv2dGeometry t{g.n,      g.c_out,  ho,       wo,      g.c_in,  g.kh,    g.kw,
                     1,        1,        pad_h2,   pad_w2,  g.dil_h, g.dil_w, g.groups};
    forward_impl(t, dy, wt, (const T*)nullptr, false, dx);
    return;
  }

  // General path (stride > 1, or padding larger than the dilated kernel). A task owns one
  // block of input channels of one image and group, so col2im's += never races.
  const int nthreads = omp_get_max_threads();
  const int64_t outer = g.n * g.groups;
  int64_t chunks = cin_g;
  for (int64_t c = 1; c <= cin_g; ++c) {
    if (outer * c >= nthreads && (outer * c) % nthreads == 0) {
      chunks = c;
      break;
    }
  }
  if (outer >= 8 * (int64_t)nthreads) chunks = 1;
  const int64_t cpb = ceil_div(cin_g, chunks);
  chunks = ceil_div(cin_g, cpb);
  const int64_t ntasks = outer * chunks;

  BlasSingleThreaded blas1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (ntasks > 1)
  for (int64_t task = 0; task < ntasks; ++task) {
    const int64_t ch = task % chunks, ng = task / chunks;
    const int64_t gi = ng % g.groups, ni = ng / g.groups;
    const int64_t c0 = ch * cpb, c1 = std::min(cin_g, c0 + cpb);
    const int64_t rows = (c1 - c0) * khw;
    T* dxb = dx + (ni * g.c_in + gi * cin_g + c0) * hwi;
    std::fill(dxb, dxb + (c1 - c0) * hwi, T(0));
    const T* dyg = dy + (ni * g.c_out + gi * cout_g) * hwo;
    const T* wb = w + gi * cout_g * K + c0 * khw;
    const TilePlan plan = plan_tiles(hwo, rows, sizeof(T), 1, 1);
    T* col = scratch<T, 0>((std::size_t)(rows * plan.width));
    for (int64_t t = 0; t < plan.tiles; ++t) {
      const int64_t p0 = t * plan.width, p1 = std::min(hwo, p0 + plan.width), nt = p1 - p0;
      // col[rows x nt] = w_block^T (rows x cout_g) · dy[:, p0:p1] (cout_g x nt)
      gemm(true, false, rows, nt, cout_g, T(1), wb, K, dyg + p0, hwo, T(0), col, nt);
      col2im_tile(g, col, 0, rows, p0, p1, dxb);
    }
  }
}

template <typename T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* dy, T* dw, T* dbias) {
  conv2d_check_geometry(g, "conv2d_backward_weight");
  const int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t K = cin_g * g.kh * g.kw;
  const int64_t hwo = g.h_out() * g.w_out(), hwi = g.h_in * g.w_in;
  const bool pointwise = is_pointwise(g);
  const int nthreads = omp_get_max_threads();

  // Split each group's K im2col rows into blocks so that groups*blocks is a multiple of the
  // thread count. Rows of dW are never split: the whole [cout_g x rows] block is one GEMM's C.
  int64_t blocks = 1;
  if (g.groups < nthreads) {
    blocks = nthreads / std::gcd<int64_t>(g.groups, nthreads);
    blocks = std::min(blocks, K);
  }
  const int64_t rpb = ceil_div(K, blocks);
  blocks = ceil_div(K, rpb);
  const int64_t ntasks = g.groups * blocks;

  BlasSingleThreaded blas1;
#pragma omp parallel num_threads(nthreads)
  {
#pragma omp for schedule(static) nowait
    for (int64_t task = 0; task < ntasks; ++task) {
      const int64_t bi = task % blocks, gi = task / blocks;
      const int64_t r0 = bi * rpb, r1 = std::min(K, r0 + rpb), rows = r1 - r0;
      T* dwb = dw + gi * cout_g * K + r0;  // C block: cout_g x rows, leading dimension K
      const TilePlan plan = plan_tiles(hwo, rows, sizeof(T), 1, 1);
      T* col = pointwise ? nullptr : scratch<T, 0>((std::size_t)(rows * plan.width));
      // Fixed summation order per dW element: images ascending, tiles ascending (and BLAS's
      // own order within a tile). First GEMM uses beta = 0, so dw needs no zeroing pass.
      bool first = true;
      for (int64_t ni = 0; ni < g.n; ++ni) {
        const T* xg = x + (ni * g.c_in + gi * cin_g) * hwi;
        const T* dyg = dy + (ni * g.c_out + gi * cout_g) * hwo;
        for (int64_t t = 0; t < plan.tiles; ++t) {
          const int64_t p0 = t * plan.width, p1 = std::min(hwo, p0 + plan.width), nt = p1 - p0;
          const T* b;
          int64_t ldb;
          if (pointwise) {
            b = xg + r0 * hwi + p0;  // rows of x are channels
            ldb = hwi;
          } else {
            im2col_tile(g, xg, r0, r1, p0, p1, col);
            b = col;
            ldb = nt;
          }
          // dW[:, r0:r1] (+)= dy[:, p0:p1] (cout_g x nt) · col^T (nt x rows)
          gemm(false, true, cout_g, rows, nt, T(1), dyg + p0, hwo, b, ldb, first ? T(0) : T(1),
               dwb, K);
          first = false;
        }
      }
    }
    if (dbias) {
      // Per-channel sum in double (float inputs: 150k-term sums lose ~3 digits in float),
      // images then pixels in order: deterministic.
#pragma omp for schedule(static)
      for (int64_t co = 0; co < g.c_out; ++co) {
        // 8 independent accumulators in a fixed lane order let the compiler vectorise
        // without -ffast-math while keeping the result reproducible.
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t ni = 0; ni < g.n; ++ni) {
          const T* row = dy + (ni * g.c_out + co) * hwo;
          int64_t p = 0;
          for (; p + 8 <= hwo; p += 8)
            for (int l = 0; l < 8; ++l) acc[l] += (double)row[p + l];
          for (; p < hwo; ++p) acc[p & 7] += (double)row[p];
        }
        dbias[co] = (T)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
      }
    }
  }
}

template void conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*,
                                    const float*, bool, float*);
template void conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*,
                                     const double*, bool, double*);
template void conv2d_backward_data<float>(const Conv2dGeometry&, const float*, const float*,
                                          float*);
template void conv2d_backward_data<double>(const Conv2dGeometry&, const double*, const double*,
                                           double*);
template void conv2d_backward_weight<float>(const Conv2dGeometry&, const float*, const float*,
                                            float*, float*);
template void conv2d_backward_weight<double>(const Conv2dGeometry&, const double*, const double*,
                                             double*, double*);

}  // namespace moeseg::cpu
