// `moeseg data synth --out DIR [--seed S] [--height H --width W] [--train N --val N --test N]
//  [--ambiguous N] [--threads T]`: writes the synthetic scenes as an A2D2 tree (see
// data/synthetic_scenes.h) and prints what it wrote and how fast.
#include "tools/cmd_data.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "data/synthetic_scenes.h"

namespace moeseg::cli {

namespace {

void usage_data() {
  std::printf(
      "usage: moeseg data synth --out DIR [options]\n\n"
      "Writes synthetic road scenes in the original A2D2 layout (class_list.json, scene folders,\n"
      "split files highway_/urban_/all_{train,val,test}_gt.txt and ambiguous_test_gt.txt under DIR/splits).\n\n"
      "options:\n"
      "  --out DIR           output root (required)\n"
      "  --seed S            random seed (default 1); the same seed gives identical files\n"
      "  --height H          image height (default 240)\n"
      "  --width W           image width (default 320)\n"
      "  --train N           training images per domain (highway, urban; default 1000)\n"
      "  --val N             validation images per domain (default 150)\n"
      "  --test N            test images per domain (default 250)\n"
      "  --ambiguous N       ambiguous test images (default: same as --test)\n"
      "  --threads T         OpenMP threads (default: all cores); the output does not depend on it\n");
}

long parse_int(const char* flag, const char* v, long lo) {
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  MOESEG_CHECK(end && *end == 0 && end != v && x >= lo, "data synth: ", flag, " expects an integer >= ", lo, ", got '", v, "'");
  return x;
}

int run_synth(int argc, char** argv) {
  data::SynthOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage_data();
      return 0;
    }
    MOESEG_CHECK(i + 1 < argc, "data synth: option ", a, " needs a value (see --help)");
    const char* v = argv[++i];
    if (a == "--out") opt.out = v;
    else if (a == "--seed") opt.seed = static_cast<uint64_t>(parse_int("--seed", v, 0));
    else if (a == "--height") opt.height = static_cast<int>(parse_int("--height", v, 16));
    else if (a == "--width") opt.width = static_cast<int>(parse_int("--width", v, 16));
    else if (a == "--train") opt.train = static_cast<int>(parse_int("--train", v, 0));
    else if (a == "--val") opt.val = static_cast<int>(parse_int("--val", v, 0));
    else if (a == "--test") opt.test = static_cast<int>(parse_int("--test", v, 0));
    else if (a == "--ambiguous") opt.ambiguous_test = static_cast<int>(parse_int("--ambiguous", v, 0));
    else if (a == "--threads") opt.threads = static_cast<int>(parse_int("--threads", v, 1));
    else MOESEG_FAIL("data synth: unknown option '", a, "' (see --help)");
  }
  MOESEG_CHECK(!opt.out.empty(), "data synth: --out DIR is required (see --help)");
  const data::SynthReport r = data::generate_synthetic_a2d2(opt);
  std::printf("wrote %d images (%dx%d, seed %llu) to %s in %.2f s: %.1f images/s\n", r.images, opt.height, opt.width,
              static_cast<unsigned long long>(opt.seed), opt.out.c_str(), r.seconds, r.images_per_second());
  std::printf("splits: %s/splits/{highway,urban,all}_{train,val,test}_gt.txt, ambiguous_test_gt.txt\n", opt.out.c_str());
  return 0;
}

}  // namespace

int run_data(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage_data();
    return argc < 2 ? 1 : 0;
  }
  if (!std::strcmp(argv[1], "synth")) return run_synth(argc - 1, argv + 1);
  std::fprintf(stderr, "moeseg data: unknown subcommand '%s'\n", argv[1]);
  usage_data();
  return 1;
}

}  // namespace moeseg::cli
