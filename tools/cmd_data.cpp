// `moeseg data synth --out DIR [--seed S] [--height H --width W] [--train N --val N --test N]
//  [--ambiguous N] [--threads T]`: writes the synthetic scenes as an A2D2 tree (see
// data/synthetic_scenes.h) and prints what it wrote and how fast.
#include "tools/cmd_data.h"

#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/cli_args.h"
#include "core/error.h"
#include "data/synthetic_scenes.h"

namespace moeseg::cli {

namespace {

const char* const kSynthDescription =
    "Writes synthetic road scenes in the original A2D2 layout (class_list.json, scene folders,\n"
    "split files highway_/urban_/all_{train,val,test}_gt.txt and ambiguous_test_gt.txt under DIR/splits).";

int run_synth(int argc, char** argv) {
  data::SynthOptions opt;
  ArgParser args("moeseg data synth", "--out DIR [options]", kSynthDescription);
  args.option("--out", &opt.out, "DIR", "output root")
      .required("--out")
      .action("--seed", "S", "random seed (default 1); the same seed gives identical files",
              [&](const std::string& v) {
                opt.seed = static_cast<uint64_t>(ArgParser::parse_int(v, "moeseg data synth: --seed", 0, INT64_MAX));
              })
      .option("--height", &opt.height, "H", "image height (default 240)", 16, 1 << 14)
      .option("--width", &opt.width, "W", "image width (default 320)", 16, 1 << 14)
      .option("--train", &opt.train, "N", "training images per domain (highway, urban; default 1000)", 0)
      .option("--val", &opt.val, "N", "validation images per domain (default 150)", 0)
      .option("--test", &opt.test, "N", "test images per domain (default 250)", 0)
      .option("--ambiguous", &opt.ambiguous_test, "N", "ambiguous test images (default: same as --test)", 0)
      .option("--threads", &opt.threads, "T", "OpenMP threads (default: all cores); the output does not depend on it", 1, 1024);
  if (!args.parse(argc, argv)) return 0;
  const data::SynthReport r = data::generate_synthetic_a2d2(opt);
  std::printf("wrote %d images (%dx%d, seed %llu) to %s in %.2f s: %.1f images/s\n", r.images, opt.height, opt.width,
              static_cast<unsigned long long>(opt.seed), opt.out.c_str(), r.seconds, r.images_per_second());
  std::printf("splits: %s/splits/{highway,urban,all}_{train,val,test}_gt.txt, ambiguous_test_gt.txt\n", opt.out.c_str());
  return 0;
}

}  // namespace

int run_data(int argc, char** argv) {
  if (argc >= 2 && !std::strcmp(argv[1], "synth")) return run_synth(argc - 1, argv + 1);
  const bool help = argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"));
  if (argc >= 2 && !help) std::fprintf(stderr, "moeseg data: unknown subcommand '%s'\n", argv[1]);
  std::printf("usage: moeseg data synth --out DIR [options]   (see moeseg data synth --help)\n%s\n", kSynthDescription);
  return help ? 0 : 1;
}

}  // namespace moeseg::cli
