// Kernel lab, GPU half (builds with CUDA only): every version of each flagship kernel validated
// on the GPU at the full FRRN-A / DeepLabv3+ shapes against the CPU backend, then timed (median of
// cudaEvent-bracketed launches) with GFLOP/s or GB/s from the counted FLOPs / minimum bytes, the
// percentage of this device's peak, and the cuDNN / cuBLAS baseline on the same shapes. The FRRU
// pieces are memory-bound (kernels/cuda/frru.cu roofline note): GB/s from each version's own
// counted bytes (v1 with its temporaries), the floor = compulsory bytes at DRAM peak, and the
// unfused cuDNN composition (no library kernel does either fused piece).
// Peaks: FP32 = SMs x FP32 lanes per SM (by compute capability) x 2 x peak clock; DRAM = 2 x
// memory clock x bus width, both from cudaDeviceGetAttribute; a table of A100 / H100 / H200 data
// sheet numbers is used when the attributes read 0.
#include <algorithm>
#include <cstdio>

#define MOESEG_CUDA_KERNELS_DEVICE 1   // the nvcc-built kernels (namespace moeseg::cuda)
#include "bench/kernel_lab/lab_gpu.h"
#include "bench/kernel_lab/lab_main.h"
#include "bench/kernel_lab/lab_runs.h"
#include "core/cuda_check.h"

namespace moeseg::lab {
namespace gpu {

double median_ms(const std::function<void()>& launch, int repeats) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  launch();   // warm-up: module load, cuDNN / cuBLAS heuristics, caches
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> t;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    CUDA_CHECK(cudaEventRecord(a));
    launch();
    CUDA_CHECK(cudaEventRecord(b));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

namespace {

struct Peak {
  double fp32_gflops = 0, dram_gbs = 0;
  std::string source;
};

int fp32_lanes_per_sm(int major, int minor) {
  if (major == 8 && minor == 0) return 64;   // A100
  if (major < 8) return 64;
  return 128;                                // GA10x, Ada, Hopper, Blackwell
}

Peak device_peak() {
  int dev = 0, sms = 0, clock_khz = 0, mem_khz = 0, bus_bits = 0, major = 0, minor = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev);
  cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, dev);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  Peak p;
  if (sms > 0 && clock_khz > 0 && mem_khz > 0 && bus_bits > 0) {
    p.fp32_gflops = 2.0 * sms * fp32_lanes_per_sm(major, minor) * clock_khz * 1e-6;
    p.dram_gbs = 2.0 * mem_khz * 1e-6 * bus_bits / 8;
    p.source = "device attributes";
    return p;
  }
  const std::string name = prop.name;
  const struct {
    const char* key;
    double tflops, tbs;
  } table[] = {{"H200", 67.0, 4.8}, {"H100 PCIe", 51.2, 2.0}, {"H100", 67.0, 3.35}, {"A100-SXM4-80GB", 19.5, 2.04},
               {"A100", 19.5, 1.555}};
  for (const auto& t : table)
    if (name.find(t.key) != std::string::npos) {
      p = {t.tflops * 1e3, t.tbs * 1e3, std::string("data sheet (") + t.key + ")"};
      return p;
    }
  p.source = "unknown";
  return p;
}

void print_time(const char* what, double ms, double flops, double bytes, const Peak& peak) {
  if (flops > 0) {
    const double gf = flops / (ms * 1e6);
    std::printf("      %-34s %9.3f ms %9.1f GFLOP/s %5.1f%% of FP32 peak\n", what, ms, gf,
                peak.fp32_gflops > 0 ? 100 * gf / peak.fp32_gflops : 0.0);
  } else {
    const double gb = bytes / (ms * 1e6);
    std::printf("      %-34s %9.3f ms %9.1f GB/s    %5.1f%% of DRAM peak\n", what, ms, gb,
                peak.dram_gbs > 0 ? 100 * gb / peak.dram_gbs : 0.0);
  }
}

void print_baseline(const Baseline& b, double flops, double bytes, const Peak& peak, double prod_ms) {
  if (b.ms <= 0) {
    std::printf("      %-34s (%s)\n", b.name.c_str(), b.note.c_str());
    return;
  }
  print_time(b.name.c_str(), b.ms, flops, bytes, peak);
  std::printf("      %-34s production / baseline time = %.2fx%s%s\n", "", prod_ms / b.ms,
              b.validated ? (b.err.ok() ? "; output ok" : "; output FAILED validation") : "",
              b.note.empty() ? "" : ("; " + b.note).c_str());
}

}  // namespace
}  // namespace gpu

std::string gpu_name() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();   // clear the sticky "no device" error
    return "";
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "";
  return prop.name;
}

int validate_and_time_on_gpu(const GpuOptions& opt) {
  using namespace moeseg::lab::cuda;
  using namespace moeseg::lab::gpu;
  const Peak peak = device_peak();
  std::printf("GPU %s: FP32 peak %.1f TFLOP/s, DRAM peak %.0f GB/s (%s); median of %d launches\n", gpu_name().c_str(),
              peak.fp32_gflops * 1e-3, peak.dram_gbs, peak.source.c_str(), opt.repeats);
  int failures = 0;
  uint64_t seed = 1000;
  auto wanted = [&](const char* k) { return opt.only.empty() || opt.only == k; };

  if (wanted("conv"))
    for (const ConvProblem& p : conv_problems(/*small=*/false)) {
      const ConvData d = make_conv_data(p, seed++);
      ConvRun run(p, d);
      double prod_ms = 0;
      std::vector<double> ms;
      for (const Version& v : kConvVersions) {
        run.poison();
      run.launch(v.id);
        const ErrorStats e = run.check(p, d);
        print_check("conv", p.name, v.id, v.name, e);
        failures += !e.ok();
        ms.push_back(median_ms([&] { run.launch(v.id); }, opt.repeats));
        if (v.id == 2) prod_ms = ms.back();
      }
      for (size_t i = 0; i < ms.size(); ++i)
        print_time(("v" + std::to_string(kConvVersions[i].id) + " " + kConvVersions[i].name).c_str(), ms[i], p.flops(),
                   0, peak);
      if (opt.baselines)
        for (const Baseline& b : conv_baselines(p, d, run.x(), run.w(), opt.repeats)) {
          print_baseline(b, p.flops(), 0, peak, prod_ms);
          failures += b.validated && !b.err.ok();
        }
    }
  if (wanted("gate"))
    for (const GateProblem& p : gate_problems(false)) {
      const GateData d = make_gate_data(p, seed++);
      GateRun run(p, d);
      double prod_ms = 0;
      for (const Version& v : kGateVersions) {
        run.poison();
      run.launch(v.id);
        const ErrorStats e = run.check(d);
        print_check("gate", p.name, v.id, v.name, e);
        failures += !e.ok();
        const double ms = median_ms([&] { run.launch(v.id); }, opt.repeats);
        if (v.id == 2) prod_ms = ms;
        print_time(("v" + std::to_string(v.id) + " " + v.name).c_str(), ms, 0, p.min_bytes(), peak);
      }
      if (opt.baselines) {
        const Baseline b = gate_baseline(p, d, run.experts(), opt.repeats);
        print_baseline(b, 0, p.min_bytes(), peak, prod_ms);
        failures += b.validated && !b.err.ok();
      }
    }
  if (wanted("xent"))
    for (const CeProblem& p : ce_problems(false)) {
      const CeData d = make_ce_data(p, seed++);
      CeRun run(p, d);
      double prod_ms = 0;
      for (const Version& v : kCeVersions) {
        run.poison();
      run.launch(v.id);
        const ErrorStats e = run.check(d);
        print_check("xent", p.name, v.id, v.name, e);
        failures += !e.ok();
        const double ms = median_ms([&] { run.launch(v.id); }, opt.repeats);
        if (v.id == 2) prod_ms = ms;
        print_time(("v" + std::to_string(v.id) + " " + v.name).c_str(), ms, 0, p.min_bytes(), peak);
      }
      if (opt.baselines)
        // Its own traffic: logits read + log-probabilities written.
        print_baseline(ce_baseline(p, run.logits(), opt.repeats), 0, 8.0 * p.pixels() * p.C, peak, prod_ms);
    }
  if (wanted("frru")) {
    const auto floor_line = [&](double bytes) {
      if (peak.dram_gbs > 0)
        std::printf("      %-34s %9.3f ms (roofline bytes %.1f MB at DRAM peak)\n", "floor", bytes / (peak.dram_gbs * 1e6),
                    bytes * 1e-6);
    };
    for (const FrruProblem& p : frru_pool_problems(false)) {
      const FrruPoolData d = make_frru_pool_data(p, seed++);
      FrruPoolRun run(p, d);
      double prod_ms = 0;
      for (const Version& v : kFrruPoolVersions) {
        run.poison();
        run.launch(v.id);
        const ErrorStats e = run.check(d);
        print_check("pcat", p.name, v.id, v.name, e);
        failures += !e.ok();
        const double ms = median_ms([&] { run.launch(v.id); }, opt.repeats);
        if (v.id == 2) prod_ms = ms;
        // v1's bytes include its pooled temporary's write and read.
        print_time(("v" + std::to_string(v.id) + " " + v.name).c_str(), ms, 0,
                   v.id == 1 ? pool_concat_unfused_bytes(p) : pool_concat_bytes(p), peak);
      }
      floor_line(pool_concat_bytes(p));
      if (opt.baselines) {
        const Baseline b = frru_pool_baseline(p, d, run.y(), run.z(), opt.repeats);
        print_baseline(b, 0, frru_pool_baseline_bytes(p), peak, prod_ms);
        failures += b.validated && !b.err.ok();
      }
    }
    for (const FrruProblem& p : frru_upadd_problems(false)) {
      const FrruUpData d = make_frru_upadd_data(p, seed++);
      FrruUpRun run(p, d);
      double prod_ms = 0;
      for (const Version& v : kFrruUpVersions) {
        run.poison();
        run.launch(v.id);
        const ErrorStats e = run.check(d);
        print_check("upadd", p.name, v.id, v.name, e);
        failures += !e.ok();
        const double ms = median_ms([&] { run.launch(v.id); }, opt.repeats);
        if (v.id == 2) prod_ms = ms;
        // v2 counts its low-res workspace round trip, v1 also its full-resolution temporary's.
        print_time(("v" + std::to_string(v.id) + " " + v.name).c_str(), ms, 0,
                   v.id == 1 ? upadd_unfused_bytes(p) : upadd_fused_bytes(p), peak);
      }
      floor_line(upadd_bytes(p));
      if (opt.baselines) {
        const Baseline b = frru_upadd_baseline(p, d, run.y(), run.z(), run.w(), run.b(), opt.repeats);
        print_baseline(b, 0, frru_upadd_baseline_bytes(p), peak, prod_ms);
        failures += b.validated && !b.err.ok();
      }
    }
  }
  return failures;
}

}  // namespace moeseg::lab
