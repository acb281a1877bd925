// Tests of the CUDA-on-CPU runtime (kernels/cuda_on_cpu/) and kernels/device_helpers.cuh:
// reductions give the exact CPU result at awkward sizes, warp primitives follow CUDA's 32-lane
// semantics lane by lane (partial last warp included), atomics, dynamic shared memory, 3-D
// indexing, the runtime's own misuse checks, and the launch overhead.
// Run: ctest -R cuda_on_cpu  (or build-*/tests/test_cuda_on_cpu). Test names avoid commas and
// semicolons: doctest filters and doctest_discover_tests split names on them. Under MOESEG_SANITIZE=thread
// the same binary checks that the runtime and these kernels are free of data races.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "kernels/cuda_on_cpu/runtime.h"
#include "tests/cuda_on_cpu/sample_kernels.cu"

// Until kernels/cuda_on_cpu/CMakeLists.txt is added to the top CMakeLists.txt (which links the
// moeseg_cuda_on_cpu library and defines MOESEG_COC_RUNTIME_LINKED), this binary compiles the
// runtime itself, so the per-folder test loop in tests/CMakeLists.txt links either way.
#ifndef MOESEG_COC_RUNTIME_LINKED
#include "kernels/cuda_on_cpu/runtime.cpp"
#endif

namespace {

using namespace moeseg::coc_samples;
using moeseg::cuda_on_cpu::KernelError;

// Host <-> "device" buffer of n elements (host memory behind the cudaMalloc shim).
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) { REQUIRE(cudaMalloc(&ptr, count * sizeof(T)) == cudaSuccess); }
  DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& host) {
    REQUIRE(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> host(n);
    REQUIRE(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return host;
  }
};

// Integer-valued inputs in [-8, 8]: every partial sum below 2^24 is exact in float, so any
// summation order gives the same bits and the comparison with the CPU can be exact.
template <class T>
std::vector<T> test_input(size_t n) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<T>(static_cast<int>((i * 37 + 11) % 17) - 8);
  return v;
}

// The partial sum block b computes with a grid-stride loop, on the CPU.
template <class T>
T expected_partial(const std::vector<T>& in, int b, int block, int grid, bool max) {
  T acc = max ? T(-1e9) : T(0);
  for (int t = 0; t < block; ++t)
    for (size_t i = static_cast<size_t>(b) * block + t; i < in.size(); i += static_cast<size_t>(grid) * block)
      acc = max ? (in[i] > acc ? in[i] : acc) : acc + in[i];
  return acc;
}

const int kSizes[] = {1, 31, 33, 1000, 65537};

template <int BLOCK>
void check_tiled(int n) {
  CAPTURE(n);
  CAPTURE(BLOCK);
  const auto in = test_input<float>(static_cast<size_t>(n));
  const int grid = std::min(moeseg::dev::ceil_div(n, BLOCK), 40);  // < ceil: the grid-stride loop runs
  DeviceBuffer<float> d_in(in), d_partial(static_cast<size_t>(grid));
  MOESEG_LAUNCH(reduce_tiled<BLOCK>, grid, BLOCK, 0, nullptr)(d_in.ptr, d_partial.ptr, n);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const auto partial = d_partial.download();
  double total = 0, expected_total = 0;
  for (int b = 0; b < grid; ++b) {
    CHECK(partial[b] == expected_partial(in, b, BLOCK, grid, false));
    total += partial[b];
  }
  for (float x : in) expected_total += x;
  CHECK(total == expected_total);
}

template <class T>
void check_shuffle_reduce(int n, int block) {
  CAPTURE(n);
  CAPTURE(block);
  const auto in = test_input<T>(static_cast<size_t>(n));
  const int grid = std::min(moeseg::dev::ceil_div(n, block), 40);
  DeviceBuffer<T> d_in(in), d_sum(grid), d_max(grid), d_sum2(grid);
  MOESEG_LAUNCH(reduce_shuffle<T>, grid, block, 0, nullptr)(d_in.ptr, d_sum.ptr, d_max.ptr, d_sum2.ptr, n);
  const auto s = d_sum.download(), m = d_max.download(), s2 = d_sum2.download();
  for (int b = 0; b < grid; ++b) {
    CAPTURE(b);
    CHECK(s[b] == expected_partial(in, b, block, grid, false));
    CHECK(m[b] == expected_partial(in, b, block, grid, true));
    CHECK(s2[b] == s[b]);
  }
}

}  // namespace

TEST_CASE("cuda_on_cpu: tiled shared-memory reduction is exact at awkward sizes") {
  for (int n : kSizes) {
    check_tiled<32>(n);
    check_tiled<96>(n);
    check_tiled<256>(n);
  }
  CHECK(moeseg::cuda_on_cpu::live_allocations() == 0);
}

TEST_CASE("cuda_on_cpu: warp-shuffle block reduction is exact for float double int and partial warps") {
  for (int n : kSizes)
    for (int block : {32, 96, 256, 50, 1000}) {
      if (block == 1000 && n > 1000) continue;  // 40 blocks of 1000 threads: slow, adds nothing
      check_shuffle_reduce<float>(n, block);
      check_shuffle_reduce<int>(n, block);
    }
  check_shuffle_reduce<double>(65537, 96);
  check_shuffle_reduce<double>(33, 7);  // a block smaller than one warp
}

TEST_CASE("cuda_on_cpu: warp primitives follow CUDA semantics lane by lane") {
  const unsigned kPoison = 0xffffffffu;  // what the runtime returns for a lane not taking part
  for (int block : {32, 50, 96, 7}) {
    CAPTURE(block);
    DeviceBuffer<unsigned> out(static_cast<size_t>(block) * kProbeFields);
    MOESEG_LAUNCH(warp_probe, 1, block, 0, nullptr)(out.ptr);
    const auto o = out.download();
    for (int tid = 0; tid < block; ++tid) {
      const int w = tid / 32, l = tid % 32;
      const int n = std::min(32, block - 32 * w);  // lanes present in this warp
      auto v = [&](int j) { return 1000u * w + static_cast<unsigned>(j); };
      auto from = [&](int j) { return j < n ? v(j) : kPoison; };
      const unsigned* r = &o[static_cast<size_t>(tid) * kProbeFields];
      CAPTURE(tid);
      CHECK(r[0] == from((l + 3) % 32));
      CHECK(r[1] == from(l ^ 1));
      CHECK(r[2] == from(l ^ 16));
      CHECK(r[3] == (l + 5 >= 32 ? v(l) : from(l + 5)));
      CHECK(r[4] == (l < 2 ? v(l) : v(l - 2)));
      CHECK(r[5] == from((l & ~7) + 2));
      CHECK(r[6] == ((l & 7) + 3 >= 8 ? v(l) : from(l + 3)));
      unsigned ballot = 0;
      for (int j = 0; j < n; ++j)
        if (j % 3 == 0) ballot |= 1u << j;
      CHECK(r[7] == ballot);
      CHECK(r[8] == (n > 7 ? 1u : 0u));
      CHECK(r[9] == 1u);
      CHECK(r[10] == (n <= 4 ? 1u : 0u));
      CHECK(r[11] == v(l < 16 ? 0 : 16));
    }
  }
}

TEST_CASE("cuda_on_cpu: atomics from every thread of every block") {
  const int block = 96, grid = 37;
  const long long total = 1LL * block * grid;
  DeviceBuffer<int> counter(1), imax(1);
  DeviceBuffer<float> fsum(1);
  DeviceBuffer<double> dsum(1);
  DeviceBuffer<unsigned long long> usum(1);
  cudaMemset(counter.ptr, 0, sizeof(int));
  cudaMemset(imax.ptr, 0, sizeof(int));
  cudaMemset(fsum.ptr, 0, sizeof(float));
  cudaMemset(dsum.ptr, 0, sizeof(double));
  cudaMemset(usum.ptr, 0, sizeof(unsigned long long));
  MOESEG_LAUNCH(atomics_all, grid, block, 0, nullptr)(counter.ptr, fsum.ptr, dsum.ptr, imax.ptr, usum.ptr);
  int exp_max = 0;
  double exp_f = 0, exp_d = 0;
  for (long long g = 0; g < total; ++g) {
    exp_f += static_cast<double>(g % 7);
    exp_d += 0.5 * static_cast<double>(g);
    exp_max = std::max(exp_max, static_cast<int>((g * 7919) % 100003));
  }
  CHECK(counter.download()[0] == total);
  CHECK(fsum.download()[0] == static_cast<float>(exp_f));  // < 2^24: exact in any order
  CHECK(dsum.download()[0] == exp_d);
  CHECK(imax.download()[0] == exp_max);
  CHECK(usum.download()[0] == static_cast<unsigned long long>(total * (total - 1) / 2));
}

namespace {
__global__ void float_max(float* m, const float* v, int n) {
  const long long i = moeseg::dev::global_index_x();
  if (i < n) moeseg::dev::atomic_max(m, v[i]);
}
}  // namespace

TEST_CASE("cuda_on_cpu: float atomic_max through the integer order of IEEE floats") {
  for (float sign : {1.f, -1.f}) {
    std::vector<float> v(1000);
    for (int i = 0; i < 1000; ++i) v[i] = sign * static_cast<float>((i * 7919) % 1000 + 1) / 8.f;
    const float expect = *std::max_element(v.begin(), v.end());
    DeviceBuffer<float> d_v(v), d_m(std::vector<float>{-INFINITY});
    MOESEG_LAUNCH(float_max, 4, 256, 0, nullptr)(d_m.ptr, d_v.ptr, 1000);
    CHECK(d_m.download()[0] == expect);
  }
}

TEST_CASE("cuda_on_cpu: dynamic shared memory per block, poisoned between blocks") {
  for (int n : {1, 33, 1000}) {
    const int block = 64, grid = moeseg::dev::ceil_div(n, block);
    const auto in = test_input<float>(static_cast<size_t>(n));
    DeviceBuffer<float> d_in(in), d_out(static_cast<size_t>(n));
    MOESEG_LAUNCH(reverse_segments, grid, block, block * sizeof(float), nullptr)(d_in.ptr, d_out.ptr, n);
    const auto out = d_out.download();
    for (int i = 0; i < n; ++i) {
      const int base = i / block * block, len = std::min(block, n - base);
      CHECK(out[i] == in[base + (len - 1 - (i - base))]);
    }
  }
}

namespace {
__global__ void read_dynamic_then_write(unsigned* out) {
  MOESEG_DYNAMIC_SHARED(unsigned, buf);
  out[blockIdx.x * blockDim.x + threadIdx.x] = buf[threadIdx.x];  // before anything wrote it
  buf[threadIdx.x] = 7;
}
__global__ void big_shared(float* out) {
  MOESEG_DYNAMIC_SHARED(float, buf);
  buf[threadIdx.x] = 1.f;
  out[threadIdx.x] = buf[threadIdx.x];
}
}  // namespace

TEST_CASE("cuda_on_cpu: uninitialised memory reads are visible (cudaMalloc and shared memory)") {
  DeviceBuffer<unsigned> out(2 * 32);
  CHECK(out.download()[5] == 0xffffffffu);  // cudaMalloc memory starts as all-ones bytes
  cudaMemset(out.ptr, 0, 2 * 32 * sizeof(unsigned));
  MOESEG_LAUNCH(read_dynamic_then_write, 2, 32, 32 * sizeof(unsigned), nullptr)(out.ptr);
  for (unsigned x : out.download()) CHECK(x == 0xffffffffu);  // block 1 does not see block 0's 7s
}

TEST_CASE("cuda_on_cpu: 3-D grid and block cover every element once") {
  const int nx = 37, ny = 5, nz = 3;
  DeviceBuffer<int> out(static_cast<size_t>(nx) * ny * nz);
  cudaMemset(out.ptr, 0, out.n * sizeof(int));
  MOESEG_LAUNCH(index3d, dim3(3, 2, 2), dim3(16, 4, 2), 0, nullptr)(out.ptr, nx, ny, nz);
  const auto o = out.download();
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) CHECK(o[(z * ny + y) * nx + x] == 1 + x + 100 * y + 10000 * z);
}

// ---- the runtime's own checks: misuse that hangs or is undefined on a GPU is reported ---------
namespace {
__global__ void early_return_then_sync(float* p, int n) {
  __shared__ float s[64];
  if (static_cast<int>(threadIdx.x) >= n) return;  // the bug: some threads skip the barrier
  s[threadIdx.x] = p[threadIdx.x];
  __syncthreads();
  p[threadIdx.x] = s[n - 1 - static_cast<int>(threadIdx.x)];
}
__global__ void shuffle_after_return(int* out, int n) {
  if (static_cast<int>(threadIdx.x) >= n) return;  // the bug: lanes named in the mask are gone
  out[threadIdx.x] = moeseg::dev::warp_shfl_xor(moeseg::dev::kFullWarpMask, static_cast<int>(threadIdx.x), 1);
}
__global__ void shuffle_vs_barrier(int* out) {
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x == 31) {
    __syncthreads();  // the bug: lane 31 never joins the shuffle that names it
  } else {
    v = moeseg::dev::warp_shfl_xor(moeseg::dev::kFullWarpMask, v, 1);
    __syncthreads();
  }
  out[threadIdx.x] = v;
}
__global__ void overlapping_masks(int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  const unsigned mask = lane < 8 ? 0x000000ffu : moeseg::dev::kFullWarpMask;
  out[lane] = moeseg::dev::warp_shfl_idx(mask, lane, 0);
}
__global__ void mask_without_own_lane(int* out) {
  out[threadIdx.x] = moeseg::dev::warp_shfl_idx(0x00000001u, static_cast<int>(threadIdx.x), 0);
}
__global__ void empty_kernel() {}

std::string launch_error_of(void (*fn)()) {
  try {
    fn();
  } catch (const KernelError& e) {
    return e.what();
  }
  return "";
}

bool matches(const std::string& msg, const std::string& re, std::smatch* m = nullptr) {
  std::smatch local;
  return std::regex_search(msg, m ? *m : local, std::regex(re));
}

// The lanes of a "{a,b,c}" list.
std::vector<int> lanes_of(const std::string& list) {
  std::vector<int> v;
  const std::regex num("[0-9]+");
  for (std::sregex_iterator it(list.begin(), list.end(), num), end; it != end; ++it) v.push_back(std::stoi(it->str()));
  return v;
}
bool all_in(const std::vector<int>& v, int lo, int hi) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [&](int l) { return l >= lo && l <= hi; });
}

// Which of the runtime's reports a mask misuse gave (the order in which the OS runs the lanes
// decides which one is hit first); 0 when the message is none of them. `what` is the primitive,
// `mask` the mask of the lanes that wait for others, which own lanes [alo, ahi]; the lanes that
// never join it are [blo, bhi], and use `other_mask` (or return, when other_mask is empty).
// Every form names the primitive, the masks and the lanes at fault.
int mask_report_kind(const std::string& msg, const std::string& kernel, const std::string& what, const std::string& mask,
                     int alo, int ahi, const std::string& other_mask, int blo, int bhi) {
  const std::string at = "kernel '" + kernel + "' block \\(0,0,0\\) thread \\([0-9]+,0,0\\) \\(warp 0 lane ([0-9]+)\\) ";
  const std::string& prim = what;   // (primitive names hold no regex metacharacters)
  std::smatch m;
  // A waiting lane's mask names lanes that have already returned.
  if (matches(msg, at + "called " + prim + " with mask " + mask +
                       " naming lane\\(s\\) (\\{[0-9,]+\\}) that already returned from the kernel$", &m))
    return all_in({std::stoi(m[1].str())}, alo, ahi) && all_in(lanes_of(m[2].str()), blo, bhi) ? 1 : 0;
  // A lane named in the mask returns while the others wait for it.
  if (matches(msg, at + "returned from the kernel while lanes (\\{[0-9,]+\\}) wait for it in " + prim + " with mask " +
                       mask + ", which names lane ([0-9]+): lanes named in a mask must all call the same primitive "
                       "with the same mask$", &m))
    return all_in({std::stoi(m[1].str())}, blo, bhi) && all_in(lanes_of(m[2].str()), alo, ahi) &&
                   m[3].str() == m[1].str()
               ? 2
               : 0;
  if (other_mask.empty()) return 0;
  // The two groups meet in the primitive with overlapping masks, either one first.
  const std::string tail = ": lanes named in a mask must all call the same primitive with the same mask$";
  if (matches(msg, at + "called " + prim + " with mask " + other_mask + " while lanes (\\{[0-9,]+\\}) wait in " + prim +
                       " with mask " + mask + tail, &m))
    return all_in({std::stoi(m[1].str())}, blo, bhi) && all_in(lanes_of(m[2].str()), alo, ahi) ? 3 : 0;
  if (matches(msg, at + "called " + prim + " with mask " + mask + " while lanes (\\{[0-9,]+\\}) wait in " + prim +
                       " with mask " + other_mask + tail, &m))
    return all_in({std::stoi(m[1].str())}, alo, ahi) && all_in(lanes_of(m[2].str()), blo, bhi) ? 4 : 0;
  return 0;
}
}  // namespace

TEST_CASE("cuda_on_cpu: divergent __syncthreads and exited lanes and deadlock and bad masks are reported") {
  DeviceBuffer<float> p(64);
  DeviceBuffer<int> q(64);
  static float* pf;
  static int* pi;
  pf = p.ptr;
  pi = q.ptr;
  int exit_kinds[5] = {}, overlap_kinds[5] = {};
  for (int rep = 0; rep < 5; ++rep) {  // timing-dependent paths: either arrival order is caught
    std::string msg = launch_error_of([] { MOESEG_LAUNCH(early_return_then_sync, 1, 64, 0, nullptr)(pf, 40); });
    CHECK(msg.find("__syncthreads()") != std::string::npos);
    CHECK(msg.find("divergent barrier") != std::string::npos);
    CHECK_MESSAGE(msg.rfind("kernel 'early_return_then_sync' block (0,0,0) thread (", 0) == 0, "message: '", msg, "'");
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
    CHECK(cudaGetLastError() == cudaSuccess);

    // Lanes 0..19 shuffle with the full mask, lanes 20..31 have returned (or return meanwhile).
    // (Block 0 fails first: the launch stops there.)
    msg = launch_error_of([] { MOESEG_LAUNCH(shuffle_after_return, 2, 32, 0, nullptr)(pi, 20); });
    const int exit_kind = mask_report_kind(msg, "shuffle_after_return", "__shfl_xor_sync", "0xffffffff", 0, 19, "", 20, 31);
    CHECK_MESSAGE(exit_kind != 0, "message: '", msg, "'");
    ++exit_kinds[exit_kind];
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);

    // Lanes 0..30 wait in the shuffle for lane 31, which waits at the barrier for them.
    msg = launch_error_of([] { MOESEG_LAUNCH(shuffle_vs_barrier, 1, 32, 0, nullptr)(pi); });
    CHECK_MESSAGE(msg == "deadlock in kernel 'shuffle_vs_barrier' block (0,0,0): no thread can make progress (0 "
                         "returned from the kernel, 1 wait at __syncthreads(), warp 0 lanes {0,1,2,3,4,5,6,7,8,9,10,"
                         "11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30} wait in __shfl_xor_sync with "
                         "mask 0xffffffff for lanes {31})",
                  "message: '", msg, "'");
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);

    // Lanes 0..7 shuffle with mask 0x000000ff, lanes 8..31 with the full mask, which names 0..7.
    msg = launch_error_of([] { MOESEG_LAUNCH(overlapping_masks, 1, 32, 0, nullptr)(pi); });
    const int kind =
        mask_report_kind(msg, "overlapping_masks", "__shfl_sync", "0xffffffff", 8, 31, "0x000000ff", 0, 7);
    CHECK_MESSAGE(kind != 0, "message: '", msg, "'");
    ++overlap_kinds[kind];
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);

    // Every lane but 0 passes a mask without its own lane.
    msg = launch_error_of([] { MOESEG_LAUNCH(mask_without_own_lane, 1, 32, 0, nullptr)(pi); });
    std::smatch m;
    CHECK_MESSAGE(matches(msg, "^kernel 'mask_without_own_lane' block \\(0,0,0\\) thread \\(([0-9]+),0,0\\) \\(warp 0 "
                               "lane ([0-9]+)\\) called __shfl_sync with mask 0x00000001, which does not name its own "
                               "lane$", &m),
                  "message: '", msg, "'");
    if (!m.empty()) {
      CHECK(m[1].str() == m[2].str());
      CHECK(m[2].str() != "0");
    }
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
    CHECK(cudaGetLastError() == cudaSuccess);
  }
  MESSAGE("reports seen (1 returned lanes named, 2 named lane returned, 3/4 masks meet): shuffle after return "
          << exit_kinds[1] << " " << exit_kinds[2] << "; overlapping masks " << overlap_kinds[1] << " "
          << overlap_kinds[2] << " " << overlap_kinds[3] << " " << overlap_kinds[4]);
  // The runtime is usable again after failed launches.
  check_tiled<96>(1000);
}

TEST_CASE("cuda_on_cpu: launch configuration is validated like on a GPU") {
  CHECK_THROWS_AS(MOESEG_LAUNCH(empty_kernel, 1, 2048, 0, nullptr)(), KernelError);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK_THROWS_AS(MOESEG_LAUNCH(empty_kernel, 0, 32, 0, nullptr)(), KernelError);
  CHECK_THROWS_AS(MOESEG_LAUNCH(empty_kernel, 1, dim3(1, 1, 65), 0, nullptr)(), KernelError);
  cudaGetLastError();
  DeviceBuffer<float> out(64);
  CHECK_THROWS_AS(MOESEG_LAUNCH(big_shared, 1, 64, 64 * 1024, nullptr)(out.ptr), KernelError);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  REQUIRE(cudaFuncSetAttribute(big_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess);
  MOESEG_LAUNCH(big_shared, 1, 64, 64 * 1024, nullptr)(out.ptr);
  CHECK(out.download()[63] == 1.f);
  CHECK_THROWS_AS(__syncthreads(), KernelError);  // not inside a kernel
  CHECK(cudaFree(reinterpret_cast<void*>(&out)) == cudaErrorInvalidDevicePointer);
  cudaGetLastError();
}

TEST_CASE("cuda_on_cpu: launch overhead of a 1M-element vector add with 256-thread blocks") {
  using clock = std::chrono::steady_clock;
  const int n = 1 << 20, block = 256, grid = n / block;
  std::vector<float> a(n), b(n);
  for (int i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = static_cast<float>(2 * i);
  }
  DeviceBuffer<float> da(a), db(b), dc(static_cast<size_t>(n));
  MOESEG_LAUNCH(vector_add, 1, block, 0, nullptr)(da.ptr, db.ptr, dc.ptr, n);  // start the pool threads
  auto t0 = clock::now();
  MOESEG_LAUNCH(vector_add, grid, block, 0, nullptr)(da.ptr, db.ptr, dc.ptr, n);
  const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  const auto c = dc.download();
  for (int i = 0; i < n; i += 4099) CHECK(c[i] == static_cast<float>(3 * i));
  CHECK(c[n - 1] == static_cast<float>(3.0 * (n - 1)));

  t0 = clock::now();
  const int reps = 200;
  for (int r = 0; r < reps; ++r) MOESEG_LAUNCH(empty_kernel, 1, 1, 0, nullptr)();
  const double us1 = std::chrono::duration<double, std::micro>(clock::now() - t0).count() / reps;
  t0 = clock::now();
  for (int r = 0; r < reps; ++r) MOESEG_LAUNCH(empty_kernel, 1, 256, 0, nullptr)();
  const double us256 = std::chrono::duration<double, std::micro>(clock::now() - t0).count() / reps;
  std::printf("cuda_on_cpu: vector_add n=%d block=%d grid=%d: %.1f ms (%.1f us/block); "
              "empty launch 1x1: %.1f us, 1x256: %.1f us\n",
              n, block, grid, ms, 1000.0 * ms / grid, us1, us256);
  // Generous: ~20x the time measured on a 2-core machine, so a sanitizer build still passes.
  CHECK(ms < 60000.0);
}
