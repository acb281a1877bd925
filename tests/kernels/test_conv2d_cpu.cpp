// test_conv2d_cpu.cpp — checks kernels/conv2d_cpu.{h,cpp} (forward, backward-data,
// backward-weight + bias) against a naive direct-loop reference computed in double.
//
// Shapes are deliberately awkward: batch 1 and 3, odd sizes, channels 3 and 37, dilation
// 1/2/6/12 with and without padding, stride 2, groups 2 and depthwise, 1x1/5x5/7x7 and
// non-square kernels, padding larger than the dilated kernel (general backward-data path).
// Every case runs with 1, 2 and 3 OpenMP threads and with tiny im2col tiles (many partial
// rows), in float and double. Error bound per element: |got - ref| <= tol * (sum of |terms|),
// tol = 1e-5 (float) and 1e-12 (double); on failure the worst element and max error are printed.
// A planted-error test checks that the checker itself fails on a wrong value.
// Run: built into the doctest test binary (main lives elsewhere).
#include <doctest/doctest.h>

#include "support/threads.h"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"

#include "kernels/conv2d_cpu.h"

namespace {

using moeseg::cpu::Conv2dGeometry;

struct Ref {
  std::vector<double> y, y_mag, dx, dx_mag, dw, dw_mag, db, db_mag;
};

// Naive reference by scattering every multiply of the forward index space; each output keeps the
// sum of |terms| so the tolerance scales with the conditioning of that element.
Ref reference(const Conv2dGeometry& g, const std::vector<double>& x, const std::vector<double>& w,
              const std::vector<double>* bias, bool relu, const std::vector<double>& dy) {
  const int64_t ho = g.h_out(), wo = g.w_out(), cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  Ref r;
  r.y.assign(g.n * g.c_out * ho * wo, 0.0);
  r.y_mag = r.y;
  r.dx.assign(x.size(), 0.0);
  r.dx_mag = r.dx;
  r.dw.assign(w.size(), 0.0);
  r.dw_mag = r.dw;
  r.db.assign(g.c_out, 0.0);
  r.db_mag = r.db;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t co = 0; co < g.c_out; ++co) {
      const int64_t gi = co / cog;
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          const int64_t yi = ((n * g.c_out + co) * ho + oh) * wo + ow;
          const double d = dy[yi];
          double acc = bias ? (*bias)[co] : 0.0, mag = bias ? std::fabs((*bias)[co]) : 0.0;
          r.db[co] += d;
          r.db_mag[co] += std::fabs(d);
          for (int64_t ci = 0; ci < cig; ++ci)
            for (int64_t a = 0; a < g.kh; ++a)
              for (int64_t b = 0; b < g.kw; ++b) {
                const int64_t ih = oh * g.stride_h - g.pad_h + a * g.dil_h;
                const int64_t iw = ow * g.stride_w - g.pad_w + b * g.dil_w;
                if (ih < 0 || ih >= g.h_in || iw < 0 || iw >= g.w_in) continue;
                const int64_t xi = ((n * g.c_in + gi * cig + ci) * g.h_in + ih) * g.w_in + iw;
                const int64_t wi = ((co * cig + ci) * g.kh + a) * g.kw + b;
                acc += x[xi] * w[wi];
                mag += std::fabs(x[xi] * w[wi]);
                r.dx[xi] += d * w[wi];
                r.dx_mag[xi] += std::fabs(d * w[wi]);
                r.dw[wi] += d * x[xi];
                r.dw_mag[wi] += std::fabs(d * x[xi]);
              }
          r.y[yi] = relu ? std::max(acc, 0.0) : acc;
          r.y_mag[yi] = mag;
        }
    }
  return r;
}

template <typename T>
constexpr double tol() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

// Returns true when every |got - ref| <= tol * (mag + tiny); prints the worst element otherwise.
template <typename T>
bool check_close(const char* what, const std::string& ctx, const std::vector<T>& got,
                 const std::vector<double>& ref, const std::vector<double>& mag) {
  if (got.size() != ref.size()) {
    std::printf("%s %s: size %zu vs %zu\n", what, ctx.c_str(), got.size(), ref.size());
    return false;
  }
  double worst_ratio = 0, max_err = 0;
  size_t worst = 0;
  bool ok = true;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs((double)got[i] - ref[i]);
    const double bound = tol<T>() * (mag[i] + 1e-30);
    if (!(err <= bound)) ok = false;  // also catches NaN
    const double ratio = err / bound;
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
    if (!(err <= max_err)) max_err = err;
  }
  if (!ok)
    std::printf("FAIL %s %s: worst element %zu got %.10g ref %.10g (sum|terms| %.4g), max err %.4g,"
                " tol %.1e\n",
                what, ctx.c_str(), worst, (double)got[worst], ref[worst], mag[worst], max_err,
                tol<T>());
  return ok;
}

std::string describe(const Conv2dGeometry& g) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "n=%lld c_in=%lld %lldx%lld c_out=%lld k=%lldx%lld s=%lld,%lld p=%lld,%lld "
                "d=%lld,%lld groups=%lld",
                (long long)g.n, (long long)g.c_in, (long long)g.h_in, (long long)g.w_in,
                (long long)g.c_out, (long long)g.kh, (long long)g.kw, (long long)g.stride_h,
                (long long)g.stride_w, (long long)g.pad_h, (long long)g.pad_w, (long long)g.dil_h,
                (long long)g.dil_w, (long long)g.groups);
  return buf;
}

std::vector<double> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(n);
  for (auto& e : v) e = u(rng);
  return v;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
// Round the double inputs through T, so the reference sees exactly the values the kernel sees.
template <typename T>
std::vector<double> rounded(const std::vector<double>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = (double)(T)v[i];
  return r;
}

struct Restore {
  int threads = omp_get_max_threads();
  ~Restore() {
    omp_set_num_threads(threads);
    moeseg::cpu::conv2d_set_tile_bytes(0);
  }
};

template <typename T>
void run_case(const Conv2dGeometry& g, unsigned seed) {
  using namespace moeseg::cpu;
  std::mt19937 rng(seed);
  const int64_t ho = g.h_out(), wo = g.w_out();
  const auto xd = rounded<T>(random_vec(g.n * g.c_in * g.h_in * g.w_in, rng));
  const auto wd = rounded<T>(random_vec(g.c_out * (g.c_in / g.groups) * g.kh * g.kw, rng));
  const auto bd = rounded<T>(random_vec(g.c_out, rng));
  const auto dyd = rounded<T>(random_vec(g.n * g.c_out * ho * wo, rng));
  const Ref plain = reference(g, xd, wd, nullptr, false, dyd);
  const Ref fused = reference(g, xd, wd, &bd, true, dyd);
  const auto x = cast<T>(xd), w = cast<T>(wd), b = cast<T>(bd), dy = cast<T>(dyd);

  Restore restore;
  for (int threads : {1, 2, 3}) {
    for (size_t tile_bytes : {size_t(0), size_t(512)}) {
      omp_set_num_threads(threads);
      conv2d_set_tile_bytes(tile_bytes, tile_bytes ? 3 : 0);  // 512 B: 3+-pixel tiles
      const std::string ctx = describe(g) + " threads=" + std::to_string(threads) +
                              " tile_bytes=" + std::to_string(conv2d_tile_bytes()) +
                              (sizeof(T) == 4 ? " float" : " double");
      CAPTURE(ctx);
      // Sentinel-filled outputs: the kernels must overwrite every element.
      std::vector<T> y(plain.y.size(), T(777)), dx(x.size(), T(777)), dw(w.size(), T(777)),
          db(g.c_out, T(777));
      conv2d_forward(g, x.data(), w.data(), (const T*)nullptr, false, y.data());
      CHECK(check_close("forward", ctx, y, plain.y, plain.y_mag));
      std::fill(y.begin(), y.end(), T(777));
      conv2d_forward(g, x.data(), w.data(), b.data(), true, y.data());
      CHECK(check_close("forward+bias+relu", ctx, y, fused.y, fused.y_mag));
      conv2d_backward_data(g, dy.data(), w.data(), dx.data());
      CHECK(check_close("backward-data", ctx, dx, plain.dx, plain.dx_mag));
      conv2d_backward_weight(g, x.data(), dy.data(), dw.data(), db.data());
      CHECK(check_close("backward-weight", ctx, dw, plain.dw, plain.dw_mag));
      CHECK(check_close("backward-bias", ctx, db, plain.db, plain.db_mag));
      std::fill(dw.begin(), dw.end(), T(777));
      conv2d_backward_weight(g, x.data(), dy.data(), dw.data(), (T*)nullptr);
      CHECK(check_close("backward-weight (no bias)", ctx, dw, plain.dw, plain.dw_mag));
    }
  }
}

Conv2dGeometry geo(int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout, int64_t kh,
                   int64_t kw, int64_t s, int64_t p, int64_t d, int64_t groups) {
  return {n, cin, h, w, cout, kh, kw, s, s, p, p, d, d, groups};
}

std::vector<Conv2dGeometry> awkward_shapes() {
  std::vector<Conv2dGeometry> v = {
      geo(1, 3, 7, 11, 5, 3, 3, 1, 1, 1, 1),      // batch 1, odd sizes
      geo(3, 37, 13, 5, 8, 3, 3, 1, 1, 1, 1),     // batch 3, 37 channels
      geo(2, 4, 13, 11, 6, 3, 3, 1, 2, 2, 1),     // dilation 2, matching pad
      geo(1, 3, 15, 17, 4, 3, 3, 1, 6, 6, 1),     // dilation 6 (ASPP)
      geo(1, 2, 13, 26, 3, 3, 3, 1, 12, 12, 1),   // dilation 12, input smaller than reach
      geo(2, 3, 9, 11, 4, 3, 3, 1, 0, 2, 1),      // dilation 2, pad 0
      geo(1, 3, 15, 13, 2, 3, 3, 1, 0, 6, 1),     // dilation 6, pad 0
      geo(1, 2, 27, 25, 3, 3, 3, 1, 0, 12, 1),    // dilation 12, pad 0
      geo(2, 5, 13, 11, 7, 3, 3, 2, 1, 1, 1),     // stride 2
      geo(1, 6, 7, 9, 4, 1, 1, 2, 0, 1, 1),       // 1x1 stride 2
      geo(1, 5, 12, 10, 3, 3, 3, 2, 2, 2, 1),     // stride 2 + dilation 2
      geo(2, 6, 9, 7, 4, 3, 3, 1, 1, 1, 2),       // groups 2
      geo(2, 5, 8, 7, 5, 3, 3, 1, 1, 1, 5),       // depthwise
      geo(1, 4, 9, 9, 8, 3, 3, 2, 1, 1, 4),       // depthwise, multiplier 2, stride 2
      geo(3, 37, 5, 13, 11, 1, 1, 1, 0, 1, 1),    // 1x1 fast path
      geo(2, 6, 5, 7, 4, 1, 1, 1, 0, 1, 2),       // 1x1 fast path, groups 2
      geo(1, 4, 5, 6, 3, 1, 1, 1, 1, 1, 1),       // 1x1 with padding (not the fast path)
      geo(2, 3, 11, 9, 4, 5, 5, 1, 2, 1, 1),      // 5x5
      geo(1, 3, 17, 15, 8, 7, 7, 2, 3, 1, 1),     // 7x7 stride 2 (ResNet stem)
      geo(1, 3, 9, 10, 4, 7, 7, 1, 3, 1, 1),      // 7x7 stride 1
      geo(1, 3, 6, 7, 4, 3, 3, 1, 3, 1, 1),       // pad > dil*(k-1): general backward-data
      geo(2, 37, 23, 29, 19, 3, 3, 1, 1, 1, 1),   // many tiles
      geo(1, 3, 3, 3, 2, 3, 3, 1, 0, 1, 1),       // 1x1 output
  };
  // non-square kernel, different strides/pads/dilations per axis
  v.push_back({2, 4, 6, 9, 3, 1, 5, 1, 2, 0, 2, 1, 1, 1});
  v.push_back({1, 3, 7, 8, 2, 3, 2, 2, 1, 1, 0, 2, 1, 1});
  v.push_back({1, 4, 10, 9, 6, 2, 4, 1, 3, 1, 0, 3, 2, 2});
  return v;
}

}  // namespace

TEST_CASE("conv2d_cpu: float matches naive double reference on awkward shapes") {
  unsigned seed = 1;
  for (const auto& g : awkward_shapes()) run_case<float>(g, seed++);
}

TEST_CASE("conv2d_cpu: double matches naive double reference on awkward shapes") {
  unsigned seed = 101;
  for (const auto& g : awkward_shapes()) run_case<double>(g, seed++);
}

TEST_CASE("conv2d_cpu: checker catches a planted error") {
  // One element off by 1e-3 of its magnitude must fail the float check; an exact copy passes.
  const Conv2dGeometry g = geo(1, 37, 9, 7, 5, 3, 3, 1, 1, 1, 1);
  std::mt19937 rng(7);
  const auto x = rounded<float>(random_vec(g.n * g.c_in * g.h_in * g.w_in, rng));
  const auto w = rounded<float>(random_vec(g.c_out * g.c_in * 9, rng));
  const auto dy = rounded<float>(random_vec(g.n * g.c_out * g.h_out() * g.w_out(), rng));
  const Ref r = reference(g, x, w, nullptr, false, dy);
  std::vector<float> y(r.y.size());
  moeseg::cpu::conv2d_forward(g, cast<float>(x).data(), cast<float>(w).data(), (const float*)nullptr,
                              false, y.data());
  CHECK(check_close("forward", "planted (clean)", y, r.y, r.y_mag));
  y[17] += (float)(1e-3 * r.y_mag[17]);
  std::printf("(expected failure below: planted error)\n");
  CHECK_FALSE(check_close("forward", "planted", y, r.y, r.y_mag));
}

TEST_CASE("conv2d_cpu: backward-weight is bit-identical across runs") {
  using namespace moeseg::cpu;
  Restore restore;
  const Conv2dGeometry g = geo(2, 37, 31, 27, 24, 3, 3, 1, 1, 1, 1);
  std::mt19937 rng(3);
  const auto x = cast<float>(random_vec(g.n * g.c_in * g.h_in * g.w_in, rng));
  const auto dy = cast<float>(random_vec(g.n * g.c_out * g.h_out() * g.w_out(), rng));
  // Same thread count, same bits (no float atomics, a fixed summation order per element); across
  // thread counts the blocking of K changes, so the results agree to float32 rounding only. The
  // runs with 2 and 3 threads must really have shared the work.
  std::vector<float> dw_single;
  for (int threads : {1, 2, 3}) {
    std::vector<float> dw1(g.c_out * g.c_in * 9), dw2(dw1.size()), db1(g.c_out), db2(g.c_out);
    const auto use = moeseg::testing::run_with_threads(threads, [&] {
      conv2d_backward_weight(g, x.data(), dy.data(), dw1.data(), db1.data());
      conv2d_backward_weight(g, x.data(), dy.data(), dw2.data(), db2.data());
    });
    CAPTURE(threads);
    moeseg::testing::check_ran_on_several_threads(use, "conv2d_backward_weight");
    CHECK(std::memcmp(dw1.data(), dw2.data(), dw1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(db1.data(), db2.data(), db1.size() * sizeof(float)) == 0);
    if (threads == 1) dw_single = dw1;
    double worst = 0, scale = 0;
    for (size_t i = 0; i < dw1.size(); ++i) {
      worst = std::max(worst, (double)std::abs(dw1[i] - dw_single[i]));
      scale = std::max(scale, (double)std::abs(dw_single[i]));
    }
    CHECK(worst <= 1e-5 * scale);
  }
}

TEST_CASE("conv2d_cpu: invalid geometry throws") {
  std::vector<float> buf(1024);
  const Conv2dGeometry bad_groups = geo(1, 6, 5, 5, 4, 3, 3, 1, 1, 1, 4);  // 6 % 4 != 0
  CHECK_THROWS_AS(moeseg::cpu::conv2d_forward(bad_groups, buf.data(), buf.data(),
                                              (const float*)nullptr, false, buf.data()),
                  moeseg::Error);
  const Conv2dGeometry too_small = geo(1, 2, 3, 3, 2, 5, 5, 1, 0, 1, 1);  // empty output
  CHECK_THROWS_AS(moeseg::cpu::conv2d_backward_weight(too_small, buf.data(), buf.data(),
                                                      buf.data(), (float*)nullptr),
                  moeseg::Error);
}

TEST_CASE("conv2d_cpu: output size formula matches PyTorch") {
  CHECK(geo(1, 1, 240, 320, 1, 3, 3, 1, 1, 1, 1).h_out() == 240);
  CHECK(geo(1, 1, 7, 11, 1, 3, 3, 2, 1, 1, 1).w_out() == 6);        // (11+2-2-1)/2+1
  CHECK(geo(1, 1, 13, 26, 1, 3, 3, 1, 12, 12, 1).h_out() == 13);    // (13+24-24-1)/1+1
  CHECK(geo(1, 1, 17, 15, 1, 7, 7, 2, 3, 1, 1).w_out() == 8);       // (15+6-6-1)/2+1
  CHECK(geo(1, 1, 27, 25, 1, 3, 3, 1, 0, 12, 1).h_out() == 3);
}
