// Smoke test of `moeseg bench moe-layer` (bench/moe_layer_bench.cpp) at tiny sizes and one
// repeat: the header carries the sgemm ceiling, there is exactly one line per layer kind, N and
// k with `N=<n> k=<k>`, `sparse/dense <r>x` and `masked/sparse <r>x` (positive, finite), and bad
// lists fail with a message naming the value. Speed is measured by the benchmark, never asserted.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>

#include "tests/support/small_cli_case.h"

namespace {

const char* kTiny = "bench moe-layer --batch 2 --channels 4 --height 8 --width 8 --patch 4 --experts 2,3 "
                    "--k 1,2 --reps 1 --threads 1";

}  // namespace

TEST_CASE("bench_moe_layer prints one line per kind and N and k with positive ratios") {
  int rc = -1;
  const std::string out = moeseg::testing::run_cli_capture(kTiny, rc);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("moe-layer bench: device cpu") != std::string::npos);
  CHECK(std::regex_search(out, std::regex(R"(sgemm [0-9.]+ GFLOP/s)")));
  const std::regex line(R"(^(ConvMoE|PatchMoE P=4) +N=(\d+) k=(\d+) .*dense ([0-9.]+) ms .*sparse ([0-9.]+) ms .*)"
                        R"(masked ([0-9.]+) ms .*sparse/dense ([0-9.]+)x +masked/sparse ([0-9.]+)x +)"
                        R"(experts used (\d+)/(\d+))");
  std::map<std::tuple<std::string, int, int>, int> seen;
  std::istringstream lines(out);
  std::string l;
  while (std::getline(lines, l)) {
    if (!std::regex_search(l, std::regex(R"(N=\d+ k=\d+)"))) continue;   // the header has "M=N=K=2048"
    std::smatch m;
    CAPTURE(l);
    REQUIRE(std::regex_search(l, m, line));
    const int n = std::stoi(m[2]), k = std::stoi(m[3]);
    ++seen[{m[1].str(), n, k}];
    for (int g = 4; g <= 8; ++g) {
      const double v = std::stod(m[g]);
      CHECK(std::isfinite(v));
      CHECK(v > 0.0);
    }
    // The ratios are those of the printed times (rounded to 0.01 ms in print; tiny runs are
    // sub-millisecond, so only a loose check).
    const double dense = std::stod(m[4]), sparse = std::stod(m[5]), masked = std::stod(m[6]);
    if (dense >= 0.1 && sparse >= 0.1) CHECK(std::stod(m[7]) == doctest::Approx(sparse / dense).epsilon(0.2));
    if (sparse >= 0.1 && masked >= 0.1) CHECK(std::stod(m[8]) == doctest::Approx(masked / sparse).epsilon(0.2));
    const int used = std::stoi(m[9]);
    CHECK(std::stoi(m[10]) == n);
    CHECK(used >= 1);
    CHECK(used <= n);
  }
  std::map<std::tuple<std::string, int, int>, int> want;
  for (const char* kind : {"ConvMoE", "PatchMoE P=4"})
    for (int n : {2, 3})
      for (int k : {1, 2}) want[{kind, n, k}] = 1;
  CHECK(seen == want);
}

TEST_CASE("bench_moe_layer refuses k above N and a map that is not a multiple of the patch") {
  int rc = 0;
  std::string out = moeseg::testing::run_cli_capture("bench moe-layer --experts 2 --k 3 --reps 1", rc);
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("k = 3 > N = 2") != std::string::npos, out);
  out = moeseg::testing::run_cli_capture("bench moe-layer --height 10 --patch 4 --reps 1", rc);
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("multiples of --patch 4") != std::string::npos, out);
  out = moeseg::testing::run_cli_capture("bench moe-layer --experts 4,x --reps 1", rc);
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("--experts") != std::string::npos, out);
}
