// synthetic_bench.cpp — the synthetic scene generator's throughput (see synthetic_bench.h).
//
// generator = generate_synthetic_a2d2 into a fresh folder: render, PNG encode (camera stored,
//             label run-length deflate), write; images/s over its wall time, MB/s = bytes of the
//             files it wrote / that time; also its CPU time per image (on a shared, loaded
//             machine the wall time understates what idle cores would do).
// ceiling   = fwrite + fflush + close of the same number of bytes into the same folder.
// renderer  = render_scene alone, OpenMP over images, MB/s of the RGB + label pixels it makes.
// Each figure is the median of --reps runs after one warm-up run. The files' contents are
// tested in tests/data/test_synthetic.cpp, not here.
#include "bench/synthetic_bench.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "core/cli_args.h"
#include "data/synthetic_scenes.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

uintmax_t tree_bytes(const fs::path& root) {
  uintmax_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

// Seconds to write `bytes` into a new file under `dir` (and close it).
double plain_write_seconds(const fs::path& dir, uintmax_t bytes) {
  std::vector<char> buf(1 << 20, 'x');
  const std::string path = (dir / "plain_write.bin").string();
  const auto t0 = Clock::now();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  for (uintmax_t left = bytes; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uintmax_t>(left, buf.size()));
    if (std::fwrite(buf.data(), 1, n, f) != n) break;
    left -= n;
  }
  std::fflush(f);
  std::fclose(f);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  fs::remove(path);
  return s;
}

}  // namespace

int moeseg_bench_synthetic(int argc, char** argv) {
  using namespace moeseg::data;
  int images = 140, h = 240, w = 320, reps = 3, threads = omp_get_max_threads();
  std::string out;
  moeseg::ArgParser args("moeseg bench synthetic", "[--images N] [--height H] [--width W] [--reps R] [--threads N] [--out DIR]",
                         "The synthetic scene generator: images/s and MB/s written next to a plain file write of the\n"
                         "same bytes, and the renderer alone.");
  args.option("--images", &images, "N", "images per run", 7, 1 << 20)
      .option("--height", &h, "H", "image height", 16, 1 << 14)
      .option("--width", &w, "W", "image width", 16, 1 << 14)
      .option("--reps", &reps, "R", "timed repeats (median)", 1, 1000)
      .option("--threads", &threads, "N", "OpenMP threads", 1, 4096)
      .option("--out", &out, "DIR", "where the runs are written (default: a temporary folder, removed)");
  if (!args.parse(argc, argv)) return 0;
  omp_set_num_threads(threads);
  const fs::path root = out.empty() ? fs::temp_directory_path() / ("moeseg_bench_synthetic_" + std::to_string(::getpid())) : fs::path(out);
  fs::create_directories(root);

  // The generator's split sizes in the proportions of its defaults: per domain train:val:test
  // = 4:1:1 for highway and urban, plus ambiguous test images (2 per highway test image).
  SynthOptions o;
  o.seed = 1;
  o.height = h;
  o.width = w;
  o.threads = threads;
  o.test = o.val = std::max(1, images / 14);
  o.train = 4 * o.val;
  o.ambiguous_test = std::max(1, images - 2 * (o.train + o.val + o.test));
  const int total = 2 * (o.train + o.val + o.test) + o.ambiguous_test;

  std::vector<double> wall, cpu, ceiling;
  uintmax_t bytes = 0;
  for (int r = 0; r <= reps; ++r) {   // r = 0: warm-up
    const fs::path dir = root / ("run" + std::to_string(r));
    fs::remove_all(dir);
    o.out = dir.string();
    const std::clock_t c0 = std::clock();
    const SynthReport rep = generate_synthetic_a2d2(o);
    const double c = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    bytes = tree_bytes(dir);
    const double plain = plain_write_seconds(dir, bytes);
    fs::remove_all(dir);
    if (r == 0) continue;
    wall.push_back(rep.seconds);
    cpu.push_back(c);
    ceiling.push_back(plain);
  }
  const double t = median(wall), c = median(cpu), p = median(ceiling), mb = static_cast<double>(bytes) / 1e6;

  std::vector<double> render;
  const int n_render = std::max(threads, images / 4);
  for (int r = 0; r <= reps; ++r) {
    const auto t0 = Clock::now();
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n_render; ++i) render_scene(static_cast<SceneDomain>(i % 3), 1, 0, static_cast<uint32_t>(i), h, w);
    if (r > 0) render.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double tr = median(render), render_mb = static_cast<double>(n_render) * h * w * 4 / 1e6;   // RGB + class id bytes

  std::printf("synthetic bench: device cpu, %d images %dx%d (uint8 RGB + label), threads %d, median of %d, scratch %s\n",
              total, h, w, threads, reps, root.string().c_str());
  std::printf("generator  %8.3f s  %7.1f images/s  %7.1f MB/s written (%.1f MB)  %.2f ms CPU per image\n", t, total / t,
              mb / t, mb, 1000.0 * c / total);
  std::printf("ceiling    %8.3f s  %7s           %7.1f MB/s plain file write of the same bytes (the generator writes at %.1f%% of it)\n", p, "",
              p > 0 ? mb / p : 0.0, p > 0 ? 100.0 * p / t : 0.0);
  std::printf("renderer   %8.3f s  %7.1f images/s  %7.1f MB/s of pixels (%d images, no encode or write)\n", tr, n_render / tr,
              render_mb / tr, n_render);
  if (out.empty()) fs::remove_all(root);
  return 0;
}
